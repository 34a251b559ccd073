"""``python -m splitllm.cli``: the ``splitllm`` command."""

from splitllm.cli.app import main

if __name__ == "__main__":
    main()
