"""Serving simulation: one batched GPU server and its clients over requests that arrive in time."""

from splitllm.serving.simulator import SimConfig, SimResult, simulate

__all__ = ["SimConfig", "SimResult", "simulate"]
