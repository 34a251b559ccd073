"""The device profiles that ship with the package, under ``instances/profiles/``.

Each file is ``<device>_<model>.json`` in the ``splitllm/profile`` format (``splitllm.profiles``).

Examples
--------
>>> profile = bundled_profile("a100-80gb", "llama-2-7b")
>>> profile.source, sorted(profile.kinds)
('measured', ['embed', 'head', 'layer'])
>>> ("a100-80gb", "llama-2-7b") in list_bundled()
True
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from splitllm.errors import InputError
from splitllm.jsonio import read_json, write_json
from splitllm.profiles import Profile, parse_profile


def profiles_dir() -> Path:
    """The folder of bundled profiles (in the source tree for an editable install)."""
    return Path(str(resources.files("splitllm.instances").joinpath("profiles")))


def profile_filename(device: str, model: str) -> str:
    return f"{device}_{model}.json"


def list_bundled() -> list[tuple[str, str]]:
    """Sorted ``(device, model)`` pairs of every bundled profile."""
    pairs = (path.stem.split("_", 1) for path in profiles_dir().glob("*_*.json"))
    return sorted((device, model) for device, model in pairs)


def bundled_json(device: str, model: str, option: str = "--device") -> dict:  # type: ignore[type-arg]
    """The JSON object of a bundled profile; a missing one raises :class:`InputError`."""
    path = profiles_dir() / profile_filename(device, model)
    if not path.is_file():
        have = sorted(d for d, m in list_bundled() if m == model)
        raise InputError(option, f"no bundled profile of {device!r} for {model!r}; available: {', '.join(have) or 'none'}")
    return read_json(path)  # type: ignore[no-any-return]


def bundled_profile(device: str, model: str, option: str = "--device") -> Profile:
    """The bundled profile of ``device`` for ``model``, validated."""
    return parse_profile(bundled_json(device, model, option), profile_filename(device, model))


def write_profile(profile: Profile, out_dir: Path) -> Path:
    """Write ``profile`` as ``out_dir/<device>_<model>.json`` (atomically) and return the path."""
    path = Path(out_dir) / profile_filename(profile.device, profile.model)
    write_json(path, profile.to_json())
    return path
