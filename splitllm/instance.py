"""The problem: instance files (docs/formats.md), validated and compiled into numpy arrays.

Loading checks the file against the published JSON Schema, then the cross-references
the schema cannot express, and compiles every request's per-block costs into arrays
(requests x blocks) once. Every solver and the evaluator read those arrays.

Examples
--------
>>> from splitllm.instance import load_instance, example_path
>>> inst = load_instance(example_path("tiny"))
>>> inst.n_requests, inst.n_blocks
(2, 3)
>>> inst.arrays.work.shape
(2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from splitllm.errors import InputError, InputErrors
from splitllm.jsonio import read_json
from splitllm.profiles import SECONDS_MAX, Profile, parse_profile
from splitllm.resources import COUPLED, REQUEST_LIMITS, Objective, Resource
from splitllm.schema_check import schema_errors

COST_KEYS = ("server_prefill_s", "server_decode_s", "client_prefill_s", "client_decode_s")
Array = NDArray[np.float64]


@dataclass(frozen=True)
class Block:
    kind: str
    weight_bytes: float
    kv_bytes_per_token: float
    name: str = ""


@dataclass(frozen=True)
class Model:
    blocks: tuple[Block, ...]
    activation_bytes_per_token: float
    token_bytes: float
    name: str = ""


@dataclass(frozen=True)
class Client:
    name: str
    memory_bytes: float
    uplink_bytes_per_s: float
    downlink_bytes_per_s: float
    rtt_s: float
    device: str | None = None


@dataclass(frozen=True)
class Server:
    device: str | None = None
    work_capacity_s: float | None = None
    kv_capacity_bytes: float | None = None


@dataclass(frozen=True)
class Request:
    id: str | int
    client: str
    prompt_tokens: int
    output_tokens: int
    slo: dict[str, float] = field(default_factory=dict)
    weight: float = 1.0
    costs: dict[str, tuple[float, ...]] | None = None
    arrival_s: float = 0.0  # seconds from the start; only the serving simulation reads it


@dataclass(frozen=True, eq=False)
class Arrays:
    """Everything the solvers need, compiled once (R requests x B blocks; seconds, bytes).

    ``*_decode`` are exact mean seconds per decode step; ``work`` is the server work of a
    block run on the server (prefill plus all decode steps). Crossing times are per
    request: the ``*_prefill`` ones carry the whole prompt's activations, the ``*_decode``
    ones one token's. ``limits`` holds each per-request limit of
    :data:`splitllm.resources.REQUEST_LIMITS` by key, also read as ``<key>_limit``
    (``arrays.ttft_limit``). Absent SLOs and capacities are ``inf``.
    """

    prompt_tokens: NDArray[np.int64]
    output_tokens: NDArray[np.int64]
    weight: Array
    server_prefill: Array
    server_decode: Array
    client_prefill: Array
    client_decode: Array
    work: Array
    kv: Array
    client_mem: Array
    limits: dict[str, Array]
    prompt_up: Array
    act_up_prefill: Array
    act_down_prefill: Array
    first_token_down: Array
    act_up_decode: Array
    act_down_decode: Array
    token_up_decode: Array
    token_down_decode: Array
    work_capacity: float
    kv_capacity: float

    def __getattr__(self, name: str) -> Array:
        """``<key>_limit``: the per-request limit of resource ``key``."""
        key = name.removesuffix("_limit")
        if name.endswith("_limit") and key in self.__dict__.get("limits", {}):
            return self.limits[key]
        raise AttributeError(f"Arrays has no attribute {name!r}")

    def limit(self, resource: Resource) -> Array | float:
        """The limit on ``resource``: one per request, or the server's capacity (``inf`` = none)."""
        if resource.scope == "request":
            return self.limits[resource.key]
        return getattr(self, resource.limit_attr)  # type: ignore[no-any-return]

    def request_limits(self, r: int | NDArray[np.int64]) -> dict[str, Array | float]:
        """Every per-request limit of request ``r`` (or of each request of an array), by
        resource key; ``inf`` where the instance sets none."""
        return {res.key: self.limit(res)[r] for res in REQUEST_LIMITS}  # type: ignore[index]

    def usage(self, resource: Resource) -> Array:
        """Per-block use (requests x blocks) of a coupled resource by a block on the server."""
        return getattr(self, resource.key)  # type: ignore[no-any-return]


@dataclass(frozen=True, eq=False)
class Instance:
    """A validated instance and its compiled arrays."""

    name: str
    objective: Objective
    model: Model
    server: Server
    clients: dict[str, Client]
    requests: tuple[Request, ...]
    profiles: dict[str, Profile]
    arrays: Arrays
    source: dict[str, Any] = field(repr=False, default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "objective", Objective(self.objective))  # also from a plain string

    @property
    def n_requests(self) -> int:
        return len(self.requests)

    @property
    def n_blocks(self) -> int:
        return len(self.model.blocks)

    @property
    def coupled(self) -> bool:
        """True when requests share a finite server capacity."""
        return any(np.isfinite(self.arrays.limit(res)) for res in COUPLED)


def transfer_time(n_bytes: Array | float, bytes_per_s: Array | float, rtt_s: Array | float) -> Array:
    """Seconds to move ``n_bytes`` over a link: ``n / bandwidth + rtt / 2``."""
    return np.asarray(n_bytes, dtype=float) / np.asarray(bytes_per_s, dtype=float) + np.asarray(rtt_s) / 2


def example_path(name: str) -> Path:
    """Path of a bundled example instance, e.g. ``example_path("tiny")``."""
    return Path(str(resources.files("splitllm.instances").joinpath(f"examples/{name}.json")))


def load_instance(path: str | Path) -> Instance:
    """Read, validate and compile an instance file; bad input raises :class:`InputErrors`."""
    return parse_instance(read_json(path))


def parse_instance(data: Any) -> Instance:
    """Validate and compile an instance given as a parsed JSON object."""
    errors = schema_errors(data)
    if errors:
        raise InputErrors(errors)
    model = _parse_model(data["model"])
    clients = {name: _parse_client(name, c) for name, c in data["clients"].items()}
    server = Server(**data["server"])
    requests = tuple(_parse_request(r) for r in data["requests"])
    profiles = {name: parse_profile(p, f"devices.{name}") for name, p in data.get("devices", {}).items()}
    _check_references(model, server, clients, requests, profiles)
    arrays = _compile(model, server, clients, requests, profiles)
    return Instance(
        name=str(data.get("name", "")),
        objective=Objective(data["objective"]),
        model=model,
        server=server,
        clients=clients,
        requests=requests,
        profiles=profiles,
        arrays=arrays,
        source=data,
    )


def _parse_model(data: dict[str, Any]) -> Model:
    blocks = tuple(Block(**b) for b in data["blocks"])
    return Model(blocks, data["activation_bytes_per_token"], data["token_bytes"], data.get("name", ""))


def _parse_client(name: str, data: dict[str, Any]) -> Client:
    return Client(name=name, **data)


def _parse_request(data: dict[str, Any]) -> Request:
    costs = data.get("costs")
    return Request(
        id=data["id"],
        client=data["client"],
        prompt_tokens=int(data["prompt_tokens"]),
        output_tokens=int(data["output_tokens"]),
        slo=dict(data.get("slo", {})),
        weight=float(data.get("weight", 1.0)),
        costs=None if costs is None else {k: tuple(map(float, v)) for k, v in costs.items()},
        arrival_s=float(data.get("arrival_s", 0.0)),
    )


def _check_references(
    model: Model,
    server: Server,
    clients: dict[str, Client],
    requests: tuple[Request, ...],
    profiles: dict[str, Profile],
) -> None:
    """What the schema cannot say: names that must exist, lengths that must match."""
    errors: list[InputError] = []
    kinds = {b.kind for b in model.blocks}
    for name, profile in profiles.items():
        missing = sorted(kinds - set(profile.kinds))
        if missing:
            errors.append(InputError(f"devices.{name}.kinds", f"has no costs for block kind {missing[0]!r}"))
    needs_devices = any(r.costs is None for r in requests)
    if server.device is not None and server.device not in profiles:
        errors.append(InputError("server.device", f"unknown device {server.device!r}"))
    elif needs_devices and server.device is None:
        errors.append(InputError("server.device", "required: some requests have no explicit costs"))
    for name, client in clients.items():
        if client.device is not None and client.device not in profiles:
            errors.append(InputError(f"clients.{name}.device", f"unknown device {client.device!r}"))
    seen: dict[str | int, int] = {}
    for i, request in enumerate(requests):
        if request.id in seen:
            errors.append(InputError(f"requests[{i}].id", f"duplicate id {request.id!r} (also requests[{seen[request.id]}])"))
        seen.setdefault(request.id, i)
        client = clients.get(request.client)
        if client is None:
            errors.append(InputError(f"requests[{i}].client", f"unknown client {request.client!r}"))
        elif request.costs is None and client.device is None:
            errors.append(InputError(f"clients.{request.client}.device", f"required: requests[{i}] has no explicit costs"))
        for key, values in (request.costs or {}).items():
            if len(values) != len(model.blocks):
                errors.append(
                    InputError(f"requests[{i}].costs.{key}", f"must have {len(model.blocks)} entries (one per block), got {len(values)}")
                )
    if errors:
        raise InputErrors(errors)


def _profile_costs(
    profile: Profile, device: str, model: Model, prompt: NDArray[np.int64], output: NDArray[np.int64]
) -> tuple[Array, Array]:
    """Prefill seconds and mean decode seconds per step, (requests x blocks), from a profile."""
    prefill = np.zeros((prompt.size, len(model.blocks)))
    decode = np.zeros_like(prefill)
    for kind in {b.kind for b in model.blocks}:
        cols = [j for j, b in enumerate(model.blocks) if b.kind == kind]
        curves = profile.costs(kind)
        kind_prefill = curves.prefill.value(prompt)
        kind_decode = curves.decode_mean(prompt, output)
        for values, what in ((kind_prefill, "prefill"), (kind_decode, "decode")):
            if not np.all(np.isfinite(values)):
                raise InputError(f"devices.{device}.kinds.{kind}.{what}", "gives a non-finite cost for the token counts of this instance")
            if np.any(values < 0):
                raise InputError(
                    f"devices.{device}.kinds.{kind}.{what}",
                    "extrapolates below zero for the token counts of this instance",
                )
            if not np.all(values <= SECONDS_MAX):  # keeps every sum of costs finite
                raise InputError(
                    f"devices.{device}.kinds.{kind}.{what}",
                    f"extrapolates above {SECONDS_MAX:g} s for the token counts of this instance",
                )
        prefill[:, cols] = kind_prefill[:, None]
        decode[:, cols] = kind_decode[:, None]
    return prefill, decode


def _compile(
    model: Model,
    server: Server,
    clients: dict[str, Client],
    requests: tuple[Request, ...],
    profiles: dict[str, Profile],
) -> Arrays:
    n_req, n_blk = len(requests), len(model.blocks)
    prompt = np.array([r.prompt_tokens for r in requests], dtype=np.int64)
    output = np.array([r.output_tokens for r in requests], dtype=np.int64)
    costs = {key: np.zeros((n_req, n_blk)) for key in COST_KEYS}

    # Profile costs, one vectorised pass per (device, side) over the requests that use it.
    profiled = np.array([r.costs is None for r in requests])
    if profiled.any():
        idx = np.nonzero(profiled)[0]
        pre, dec = _profile_costs(profiles[server.device or ""], server.device or "", model, prompt[idx], output[idx])
        costs["server_prefill_s"][idx], costs["server_decode_s"][idx] = pre, dec
        for name, client in clients.items():
            cidx = idx[[requests[i].client == name for i in idx]]
            if cidx.size:
                device = client.device or ""
                pre, dec = _profile_costs(profiles[device], device, model, prompt[cidx], output[cidx])
                costs["client_prefill_s"][cidx], costs["client_decode_s"][cidx] = pre, dec
    for i, request in enumerate(requests):
        for key, values in (request.costs or {}).items():
            costs[key][i] = values

    kv_per_token = np.array([b.kv_bytes_per_token for b in model.blocks])
    weights = np.array([b.weight_bytes for b in model.blocks])
    kv = kv_per_token[None, :] * (prompt + output)[:, None].astype(float)
    client_of = [clients[r.client] for r in requests]
    up = np.array([c.uplink_bytes_per_s for c in client_of], dtype=float)
    down = np.array([c.downlink_bytes_per_s for c in client_of], dtype=float)
    rtt = np.array([c.rtt_s for c in client_of], dtype=float)
    act, tok = model.activation_bytes_per_token, model.token_bytes

    return Arrays(
        prompt_tokens=prompt,
        output_tokens=output,
        weight=np.array([r.weight for r in requests], dtype=float),
        server_prefill=costs["server_prefill_s"],
        server_decode=costs["server_decode_s"],
        client_prefill=costs["client_prefill_s"],
        client_decode=costs["client_decode_s"],
        work=costs["server_prefill_s"] + (output - 1)[:, None] * costs["server_decode_s"],
        kv=kv,
        client_mem=weights[None, :] + kv,
        limits={res.key: _request_limit(res, requests, client_of) for res in REQUEST_LIMITS},
        prompt_up=transfer_time(prompt * tok, up, rtt),
        act_up_prefill=transfer_time(prompt * act, up, rtt),
        act_down_prefill=transfer_time(prompt * act, down, rtt),
        first_token_down=transfer_time(tok, down, rtt),
        act_up_decode=transfer_time(act, up, rtt),
        act_down_decode=transfer_time(act, down, rtt),
        token_up_decode=transfer_time(tok, up, rtt),
        token_down_decode=transfer_time(tok, down, rtt),
        work_capacity=float(server.work_capacity_s if server.work_capacity_s is not None else np.inf),
        kv_capacity=float(server.kv_capacity_bytes if server.kv_capacity_bytes is not None else np.inf),
    )


def _request_limit(res: Resource, requests: tuple[Request, ...], client_of: list[Client]) -> Array:
    """Each request's limit on ``res``, read from its ``limit_field``: ``slo.<name>``
    (absent: ``inf``) or ``clients.<client>.<name>``."""
    where, _, name = res.limit_field.rpartition(".")
    if where == "slo":
        return np.array([r.slo.get(name, np.inf) for r in requests], dtype=float)
    if where == "clients.<client>":
        return np.array([getattr(c, name) for c in client_of], dtype=float)
    raise ValueError(f"{res.key}: no per-request limit is read from {res.limit_field!r}")
