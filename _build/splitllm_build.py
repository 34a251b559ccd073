"""splitllm's build backend: setuptools, with one addition to editable installs.

setuptools installs an editable splitllm through an import finder that it appends to
``sys.meta_path``, after Python's path-based finder (the package folders are mapped:
``formulations/`` is ``splitllm.formulations``, and so on). Python started in a folder
that holds a directory named ``splitllm`` without an ``__init__.py`` -- the folder a
clone was made in, since git names the clone ``splitllm`` -- then imports that directory
as an empty namespace package before the finder is asked, and ``from splitllm import
load_instance`` fails. The editable wheel built here also holds ``FRONT_PTH``, a ``.pth``
file (read after setuptools' own, by name) that moves splitllm's finder to the front of
``sys.meta_path``: it answers for ``splitllm`` and its subpackages only, so every other
import is looked up as before. Every other hook is setuptools' own.
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F401,F403  (every hook as setuptools has it, but build_editable)

#: Sorted after setuptools' ``__editable__.splitllm-<version>.pth``, so the finder is there.
FRONT_PTH = "splitllm-editable-first.pth"
# One line: a .pth line that starts with "import" is executed at interpreter start.
FRONT_LINE = ("import sys; sys.meta_path.sort(key=lambda finder: not "
              "getattr(finder, '__module__', '').startswith('__editable___splitllm_'))\n")


def build_editable(wheel_directory: str, config_settings: dict[str, Any] | None = None,
                   metadata_directory: str | None = None) -> str:
    """setuptools' editable wheel, plus :data:`FRONT_PTH` (listed in its RECORD)."""
    name = _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
    _add_file(Path(wheel_directory) / name, FRONT_PTH, FRONT_LINE.encode())
    return name


def _add_file(wheel: Path, arcname: str, data: bytes) -> None:
    """Add ``arcname`` to the wheel and its RECORD (sha256, size), rewriting the zip."""
    with zipfile.ZipFile(wheel) as source:
        entries = [(info, source.read(info)) for info in source.infolist()]
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    tmp = wheel.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as target:
        target.writestr(arcname, data)
        for info, content in entries:
            if info.filename.endswith(".dist-info/RECORD"):
                content = f"{arcname},sha256={digest},{len(data)}\n".encode() + content
            target.writestr(info, content)
    tmp.replace(wheel)
