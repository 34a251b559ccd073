"""A per-request limit is one row of the resources table plus its pricing: every consumer
follows the table (``new_limit_script.py`` adds one and checks each), and the published
schemas hold exactly the table's limits and figures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from splitllm.instance import example_path, parse_instance
from splitllm.errors import InputErrors
from splitllm.jsonio import read_json
from splitllm.resources import COUPLED, REQUEST_LIMITS, RESOURCES
from splitllm.schema_check import published_schema, table_parts

SCRIPT = Path(__file__).with_name("new_limit_script.py")


def test_a_new_limit_reaches_every_consumer() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok ") and int(done.stdout.split()[1]) >= 40, done.stdout


def test_without_the_row_the_limit_is_an_unknown_key() -> None:
    data = read_json(example_path("tiny"))
    data["requests"][0]["slo"]["client_time_s"] = 1.0
    with pytest.raises(InputErrors, match=r"requests\[0\]\.slo\.client_time_s: unknown key"):
        parse_instance(data)


@pytest.mark.parametrize("name", ["instance", "solution"])
def test_published_schemas_hold_the_table(name: str) -> None:
    """Each place the table fills in the schema lists exactly the table's rows (and, in a
    solution's request entries, the id, admitted flag and placement), each described."""
    schema = published_schema(name)
    for path, parts in table_parts(name).items():
        node = schema
        for key in path:
            node = node[key]
        assert set(parts) <= set(node), f"{'.'.join(path)} lacks {sorted(set(parts) - set(node))}"
        extra = set(node) - set(parts) - {"id", "admitted", "placement", "admitted_weight", "iteration_time_s"}
        assert not extra, f"{'.'.join(path)} has {sorted(extra)}, which the resources table does not"
        assert all(node[key].get("description") for key in parts)
    if name == "instance":
        assert len(next(iter(table_parts(name).values()))) == sum(r.limit_field.startswith("slo.") for r in REQUEST_LIMITS)
    else:
        assert {len(p) for p in table_parts(name).values()} == {len(RESOURCES), len(COUPLED)}
