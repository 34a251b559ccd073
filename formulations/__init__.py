"""Formulations of the placement problem (docs/formulations.md).

- :mod:`splitllm.formulations.chain_graph` — F1, the layer-chain graph of one request.
- :mod:`splitllm.formulations.compact` — F2, the compact MILP (PuLP).
- :mod:`splitllm.formulations.column` — F3, the column (extended) MILP (PuLP).
- :mod:`splitllm.formulations.cpsat` — F4, the CP-SAT model (OR-Tools).
"""
