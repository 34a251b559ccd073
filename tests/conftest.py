import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import sweeps  # noqa: E402


def pytest_configure(config: pytest.Config) -> None:
    sweeps.FULL = sweeps.slow_pass(config.option.markexpr or "")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """In the slow pass every sweep runs its full size, so it is selected as ``slow``
    (before ``-m`` deselects; in the default pass it runs its quick size)."""
    if sweeps.FULL:
        for item in items:
            if item.get_closest_marker("sweep") is not None:
                item.add_marker(pytest.mark.slow)
