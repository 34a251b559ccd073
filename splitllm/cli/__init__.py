"""The ``splitllm`` command line: thin click commands that delegate to the library.

:mod:`.app` holds the root group and the solve commands; each other module adds its
commands (:data:`COMMANDS`): :mod:`.data`, :mod:`.bench`, :mod:`.export`, :mod:`.fidelity`,
:mod:`.simulate`. :mod:`.errors` turns bad input into one line and exit code 2.
"""

from splitllm.cli.app import main

__all__ = ["main"]
