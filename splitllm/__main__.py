"""``python -m splitllm ...``: the ``splitllm`` command."""

from splitllm.cli import main

if __name__ == "__main__":
    main(prog_name="splitllm")
