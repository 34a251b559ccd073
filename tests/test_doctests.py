"""Every docstring example in the package runs."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import splitllm


def modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(splitllm.__path__, "splitllm."):
        names.append(info.name)
    for sub in ("formulations", "solvers", "instances", "bench", "serving"):
        package = importlib.import_module(f"splitllm.{sub}")
        names += [info.name for info in pkgutil.walk_packages(package.__path__, f"splitllm.{sub}.")]
    return sorted(set(names))


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra (torch) that is not installed
        pytest.skip(f"{name}: {exc}")
    failures, _ = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert failures == 0
