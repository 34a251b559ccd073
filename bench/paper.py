"""The SplitLLM paper's experiment (Mudvari, Jiang, Tassiulas 2024), reproduced on measured costs.

The paper places the layers of one request between a client and a GPU server with a DP
that minimises server work under a latency SLA, and reports about 1/3 less server work
than running everything on the server and 19% less than a greedy placement. Here:

* **models**: BERT-base and GPT-2 with single-pass requests (``o = 1``, the paper's
  setting), and Llama-2-7B autoregressive (``o = 128``: prefill and decode);
* **server**: an A100 80GB; Llama-2-7B from vidur's measured ops (bundled profile),
  GPT-2 and BERT derived from the same GPU's measured ops (:mod:`splitllm.bench.gpu_derived`);
* **clients**: for GPT-2 and BERT, this machine's CPU, measured by ``splitllm profile``
  (bundled in ``instances/profiles/``; a derived Apple M1
  profile stands in when neither exists), and, as a faster client, a derived Apple M1
  Max; for Llama-2-7B a derived RTX 4090 (see each profile's provenance);
* **sweep**: SLO tightness ``f`` (each request's SLO is ``f`` times its own all-server
  latency: E2E for ``o = 1``, TTFT and TPOT for Llama) x link (:data:`LINKS`: bandwidth
  each way with a round-trip time to match), three prompt lengths per instance;
* **solvers**: ``all-server``, ``greedy``, ``dp`` (exact) and ``dp-grid`` (the paper's DP)
  at two grid steps, every cell run and verified by the benchmark runner.

``run_paper`` writes the instances, the runner's ``results.csv``, ``summary.md`` and
plots, and ``paper.md`` with the paper-style figures and ``paper_*.png``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from splitllm.bench.report import format_value, greedy_gains, markdown_table, save_figure, shifted_geometric_mean, work_reduction, write_report
from splitllm.bench.runner import RESULTS_CSV, bench_session, read_results, run_bench
from splitllm.evaluator import request_metrics
from splitllm.instance import parse_instance
from splitllm.instances.bundled import bundled_json, list_bundled
from splitllm.instances.models import get_shape
from splitllm.jsonio import read_json, write_atomic, write_json

Record = dict[str, Any]

SLO_FACTORS = (1.1, 1.25, 1.5, 2.0, 3.0, 5.0)
#: Links swept: Mbit/s each way and round-trip time (cellular, Wi-Fi, an edge LAN).
LINKS = ((10.0, 0.040), (100.0, 0.010), (1000.0, 0.002))
QUICK_SLO_FACTORS, QUICK_LINKS = (1.5, 3.0), ((100.0, 0.010),)
DP_GRID = ("dp-grid", "dp-grid:grid_step=0.05")
SOLVERS = ("all-server", "greedy", "dp", *DP_GRID)
SERVER = "a100-80gb"
#: The paper's headline figures (abstract of arXiv:2410.10759).
PAPER_REDUCTION, PAPER_VS_GREEDY = 1 / 3, 0.19


@dataclass(frozen=True)
class Setting:
    """One (model, client) part of the experiment; ``label`` names its instances."""

    label: str
    model: str
    client: str
    client_memory_bytes: float
    prompts: tuple[int, ...]
    output_tokens: int
    fallback_client: str = ""


SINGLE_PASS, LLAMA_PROMPTS = (32, 128, 512), (128, 512, 1024)
SETTINGS = (
    Setting("bert-base", "bert-base", "cpu", 16e9, SINGLE_PASS, 1, fallback_client="apple-m1-q4"),
    Setting("gpt2", "gpt2", "cpu", 16e9, SINGLE_PASS, 1, fallback_client="apple-m1-q4"),
    Setting("bert-base@m1-max", "bert-base", "apple-m1-max", 64e9, SINGLE_PASS, 1),
    Setting("gpt2@m1-max", "gpt2", "apple-m1-max", 64e9, SINGLE_PASS, 1),
    Setting("llama-2-7b", "llama-2-7b", "rtx-4090", 24e9, LLAMA_PROMPTS, 128),
)


# --- profiles ----------------------------------------------------------------------------


def server_profile(model: str) -> dict[str, Any]:
    """The bundled A100 profile of ``model``: measured (vidur) for Llama-2-7B, derived by
    :mod:`splitllm.bench.gpu_derived` for GPT-2 and BERT."""
    return bundled_json(SERVER, model)


def _measured(paths: list[Path], setting: Setting) -> dict[str, Any] | None:
    for path in paths:
        data = read_json(path)
        if data.get("model") == setting.model and data.get("source") == "measured" and str(data.get("device", "")).startswith(setting.client):
            return dict(data)
    return None


def client_profile(setting: Setting) -> dict[str, Any]:
    """The client profile: a *measured* profile of a ``setting.client*`` device for the model,
    bundled; else the bundled (or derived) fallback device."""
    from splitllm.instances.bundled import profiles_dir

    candidates = sorted(profiles_dir().glob(f"*_{setting.model}.json"))
    measured = _measured(candidates, setting)
    if measured is not None:
        return measured
    device = setting.fallback_client or setting.client
    if (device, setting.model) in list_bundled():
        return bundled_json(device, setting.model)
    from splitllm.instances.derived import derived_profile

    return derived_profile(device, setting.model).to_json()


# --- instances ---------------------------------------------------------------------------


def _base_instance(setting: Setting, server: dict[str, Any], client: dict[str, Any], link: tuple[float, float]) -> dict[str, Any]:
    rate, rtt = link[0] * 1e6 / 8, link[1]
    return {
        "format": "splitllm/instance",
        "version": 1,
        "name": "",
        "objective": "min_server_work",
        "model": get_shape(setting.model).instance_model("float16"),
        "devices": {"server": server, "client": client},
        "server": {"device": "server"},
        "clients": {
            "client": {
                "device": "client", "memory_bytes": setting.client_memory_bytes,
                "uplink_bytes_per_s": rate, "downlink_bytes_per_s": rate, "rtt_s": rtt,
            }
        },
        "requests": [
            {"id": f"p{p}", "client": "client", "prompt_tokens": p, "output_tokens": setting.output_tokens}
            for p in setting.prompts
        ],
    }


def with_slos(data: dict[str, Any], factor: float) -> dict[str, Any]:
    """Set each request's SLO to ``factor`` x its all-server latency (evaluator figures)."""
    arrays = parse_instance(data).arrays
    rows = np.arange(len(data["requests"]))
    m = request_metrics(arrays, rows, np.ones((rows.size, arrays.work.shape[1]), dtype=bool))
    for i, request in enumerate(data["requests"]):
        if request["output_tokens"] == 1:
            request["slo"] = {"e2e_s": factor * float(m.e2e[i])}
        else:
            request["slo"] = {"ttft_s": factor * float(m.ttft[i]), "tpot_s": factor * float(m.tpot[i])}
    return data


def write_instances(folder: Path, quick: bool = False) -> dict[str, dict[str, Any]]:
    """Write every instance of the sweep and ``manifest.json``; return the manifest."""
    factors, links = (QUICK_SLO_FACTORS, QUICK_LINKS) if quick else (SLO_FACTORS, LINKS)
    manifest: dict[str, dict[str, Any]] = {}
    for setting in SETTINGS:
        server, client = server_profile(setting.model), client_profile(setting)
        for link in links:
            for factor in factors:
                data = with_slos(_base_instance(setting, server, client, link), factor)
                data["name"] = f"{setting.label}_slo{factor:g}_{link[0]:g}mbps"
                path = folder / f"{data['name']}.json"
                write_json(path, data)
                manifest[str(path)] = {
                    "model": setting.label, "slo_factor": factor, "uplink_mbps": link[0], "rtt_ms": link[1] * 1e3,
                    "server": server["device"], "server_source": server["source"],
                    "client": client["device"], "client_source": client["source"],
                }
    write_json(folder / "manifest.json", manifest)
    return manifest


# --- figures -----------------------------------------------------------------------------


def _per_instance(records: Sequence[Record]) -> dict[str, dict[str, Record]]:
    table: dict[str, dict[str, Record]] = defaultdict(dict)
    for record in records:
        table[record["path"]][record["solver"]] = record
    return table


def _pct(values: list[float], digits: int = 1) -> str:
    """Mean of finite fractions as a percentage; ``-`` when there are none."""
    finite = [v for v in values if np.isfinite(v)]
    return format_value(float(np.mean(finite)) if finite else None, f".{digits}%")


def figures(records: Sequence[Record], manifest: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Per model (and ``all``): dp and greedy reduction vs all-server, dp gain over greedy."""
    gains = greedy_gains(records)
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for path, cells in _per_instance(records).items():
        model = manifest[path]["model"]
        for solver, key in (("dp", "dp_reduction"), ("greedy", "greedy_reduction")):
            value = work_reduction(cells[solver]) if solver in cells else None
            if value is not None:
                for group in (model, "all"):
                    out[group][key].append(value)
        if "dp" in cells and id(cells["dp"]) in gains:
            for group in (model, "all"):
                out[group]["dp_vs_greedy"].append(gains[id(cells["dp"])])
    return out


def _excess(work: float, optimum: float) -> float:
    """Relative extra server work over the optimum (0 when both are 0)."""
    if optimum == 0:
        return 0.0 if work == 0 else float("inf")
    return work / optimum - 1


def grid_rows(records: Sequence[Record], manifest: dict[str, dict[str, Any]]) -> list[list[str]]:
    """dp against dp-grid per model: optimum found, extra server work, time."""
    rows = []
    per_instance = _per_instance(records)
    for solver in ("dp", *DP_GRID):
        for model in [s.label for s in SETTINGS]:
            cells = [c for p, c in per_instance.items() if manifest[p]["model"] == model and solver in c and "dp" in c]
            if not cells:
                continue
            extra = [
                _excess(c[solver]["server_work_s"], c["dp"]["server_work_s"])
                for c in cells
                if c[solver].get("server_work_s") is not None and c["dp"].get("server_work_s") is not None
            ]
            matched = sum(e <= 1e-6 for e in extra)
            times = [c[solver]["time_s"] for c in cells if c[solver].get("time_s") is not None]
            rows.append(
                [solver, model, f"{len(extra)}/{len(cells)}", f"{matched}/{len(cells)}",
                 _pct(extra), _pct([max((e for e in extra if np.isfinite(e)), default=np.nan)]), format_value(shifted_geometric_mean(times, 0.001) * 1e3, ".2f")]
            )
    return rows


def paper_markdown(records: Sequence[Record], manifest: dict[str, dict[str, Any]], command: str | None) -> str:
    """The text of ``paper.md``."""
    figs = figures(records, manifest)
    devices = sorted({(m["model"], m["server"], m["server_source"], m["client"], m["client_source"]) for m in manifest.values()})
    rows = [["paper (SplitLLM, abstract)", f"{100 * PAPER_REDUCTION:.0f}% (about 1/3)", "-", f"{100 * PAPER_VS_GREEDY:.0f}%"]]
    for group in [s.label for s in SETTINGS] + ["all"]:
        f = figs.get(group, {})
        rows.append([f"ours: {group}", _pct(f.get("dp_reduction", [])), _pct(f.get("greedy_reduction", [])), _pct(f.get("dp_vs_greedy", []))])
    parts = [
        "# SplitLLM paper experiment: ours beside the paper's",
        "",
        f"Command: `{command}`" if command else "",
        "",
        f"Sweep: SLO factor {', '.join(f'{x:g}' for x in sorted({m['slo_factor'] for m in manifest.values()}))} x the "
        f"all-server latency; uplink = downlink {', '.join(f'{x:g}' for x in sorted({m['uplink_mbps'] for m in manifest.values()}))} "
        f"Mbit/s each way (RTT {', '.join(f'{rtt:g}' for _, rtt in sorted({(m['uplink_mbps'], m['rtt_ms']) for m in manifest.values()}))} ms). Means over the instances of the sweep (each instance: three prompt lengths).",
        "",
        markdown_table(("", "dp: server work saved vs all-server", "greedy: saved vs all-server", "dp: saved vs greedy"), rows),
        "",
        "## Devices",
        "",
        markdown_table(("model", "server", "source", "client", "source"), [list(d) for d in devices]),
        "",
        "## dp (exact) vs dp-grid (the paper's DP)",
        "",
        markdown_table(("solver", "model", "solutions", "reached dp's optimum", "mean extra server work", "max extra",
                        "time SGM (ms, shift 1 ms)"), grid_rows(records, manifest)),
        "",
        "## By SLO factor and bandwidth (dp: saved vs all-server / vs greedy)",
        "",
        markdown_table(*_sweep_table(records, manifest)),
    ]
    return "\n".join(parts) + "\n"


def _sweep_table(records: Sequence[Record], manifest: dict[str, dict[str, Any]]) -> tuple[list[str], list[list[str]]]:
    gains = greedy_gains(records)
    uplinks = sorted({m["uplink_mbps"] for m in manifest.values()})
    header = ["model", "SLO factor"] + [f"{u:g} Mbit/s" for u in uplinks]
    cells: dict[tuple[str, float, float], str] = {}
    for path, by_solver in _per_instance(records).items():
        info, dp = manifest[path], by_solver.get("dp")
        reduction = work_reduction(dp) if dp else None
        if reduction is not None:
            gain = gains.get(id(dp))
            cells[(info["model"], info["slo_factor"], info["uplink_mbps"])] = f"{_pct([reduction], 0)} / {_pct([gain] if gain is not None else [], 0)}"
    rows = []
    for setting in SETTINGS:
        for factor in sorted({m["slo_factor"] for m in manifest.values()}):
            rows.append([setting.label, f"{factor:g}"] + [cells.get((setting.label, factor, u), "-") for u in uplinks])
    return header, rows


def plot_paper(records: Sequence[Record], manifest: dict[str, dict[str, Any]], path: Path) -> None:
    """Per model: server work saved vs all-server (dp solid, greedy dashed) against SLO factor."""
    from matplotlib.figure import Figure

    models = [s.label for s in SETTINGS]
    uplinks = sorted({m["uplink_mbps"] for m in manifest.values()})
    ncols = 3
    nrows = -(-len(models) // ncols)
    fig = Figure(figsize=(4.4 * ncols, 3.6 * nrows))
    axes = fig.subplots(nrows, ncols, sharey=True, squeeze=False)
    for ax in axes.flat[len(models):]:
        ax.set_visible(False)
    per_instance = _per_instance(records)
    for ax, model in zip(axes.flat, models):
        for k, uplink in enumerate(uplinks):
            chosen = sorted((m["slo_factor"], p) for p, m in manifest.items() if m["model"] == model and m["uplink_mbps"] == uplink)
            # Each link a little to the side, dp and greedy in their own marker: equal curves stay visible.
            shift = 1 + 0.02 * (k - (len(uplinks) - 1) / 2)
            for solver, style, marker in (("dp", "-", "o"), ("greedy", "--", "s")):
                points = [(f, work_reduction(per_instance[p][solver])) for f, p in chosen if solver in per_instance.get(p, {})]
                points = [(f * shift, 100 * v) for f, v in points if v is not None]
                if points:
                    ax.plot(*zip(*points), style, marker=marker, ms=4, mfc="none" if solver == "greedy" else None,
                            alpha=0.8, color=f"C{k}", label=f"{solver}, {uplink:g} Mbit/s")
        ax.axhline(100 * PAPER_REDUCTION, color="black", lw=0.8, ls=":", label="paper: about 1/3")
        ax.set_xticks([1, 2, 3, 4, 5])
        ax.set_title(model)
        ax.set_xlabel("SLO = factor x all-server latency")
        ax.grid(True, alpha=0.3)
    for row in axes:
        row[0].set_ylabel("server work saved vs all-server (%)")
    axes.flat[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    save_figure(fig, path)


def run_paper(
    out: str | Path,
    *,
    time_limit: float = 60.0,
    jobs: int = 2,
    dask_scheduler: str | None = None,
    quick: bool = False,
    progress: bool = True,
    command: str | None = None,
) -> list[Path]:
    """Write the instances, run the benchmark (resumable), write the reports; return the paths."""
    out = Path(out)
    folder = out / "instances"
    with bench_session(out, dask_scheduler):  # checks and the lock before anything is written
        read_results(out / RESULTS_CSV)
        manifest = write_instances(folder, quick)
        records = run_bench([folder], list(SOLVERS), out, time_limit, jobs=jobs, dask_scheduler=dask_scheduler, progress=progress)
        records = [r for r in records if r["path"] in manifest]
        written = write_report(out, records, command=command)
        write_atomic(out / "paper.md", paper_markdown(records, manifest, command))
        plot_paper(records, manifest, out / "paper_savings.png")
    return [out / "results.csv", *written, out / "paper.md", out / "paper_savings.png"]

