"""Device profiles: measured cost of each block kind on one device.

A profile maps a block ``kind`` to two curves, ``prefill`` (tokens -> seconds) and
``decode`` (context -> seconds per step). Between points a curve is piecewise-linear,
below the first point it is the first value, above the last it extends the last segment.
The mean decode cost over ``o - 1`` steps is an exact sum over integer contexts, done in
closed form per segment (prefix sums), never sampled.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from splitllm.errors import InputError
from splitllm.jsonio import read_json
from splitllm.schema_check import instance_schema, profile_schema_errors

PROFILE_FORMAT = "splitllm/profile"
SOURCES = ("measured", "derived", "roofline")


def _point_ranges() -> tuple[float, float]:
    """Largest x (tokens, context) and y (seconds) of a curve point, from the published schema."""
    x_def, y_def = instance_schema()["$defs"]["curve"]["items"]["prefixItems"]
    return float(x_def["maximum"]), float(instance_schema()["$defs"]["seconds"]["maximum"])


X_MAX, SECONDS_MAX = _point_ranges()


@dataclass(frozen=True)
class Curve:
    """A piecewise-linear function of a token count, as the profile format defines it.

    Examples
    --------
    >>> c = Curve.from_points([[1, 1.0], [3, 2.0]])
    >>> [float(v) for v in c.value([0, 1, 2, 3, 5])]
    [1.0, 1.0, 1.5, 2.0, 3.0]
    >>> float(c.integer_sum(1, 4))  # f(1) + f(2) + f(3) + f(4)
    7.0
    """

    xs: NDArray[np.float64]
    ys: NDArray[np.float64]

    @classmethod
    def from_points(cls, points: list[list[float]], path: str = "") -> Curve:
        """Build a curve from ``[[x, y], ...]`` with strictly increasing ``x``."""
        if not isinstance(points, list) or not points:
            raise InputError(path, "must be a non-empty list of [x, y] points")
        for i, point in enumerate(points):
            if (
                not isinstance(point, list)
                or len(point) != 2
                or not all(_is_finite_number(v) and v >= 0 for v in point)
                or point[0] > X_MAX
                or point[1] > SECONDS_MAX
            ):
                shown = repr(point) if isinstance(point, list) and len(point) == 2 else type(point).__name__
                raise InputError(
                    f"{path}[{i}]", f"must be [x, y] with 0 <= x <= {X_MAX:g} and 0 <= y <= {SECONDS_MAX:g} s, got {shown[:60]}"
                )
        xs = np.array([p[0] for p in points], dtype=float)
        ys = np.array([p[1] for p in points], dtype=float)
        bad = np.nonzero(np.diff(xs) <= 0)[0]
        if bad.size:
            i = int(bad[0]) + 1
            raise InputError(f"{path}[{i}][0]", f"x must increase strictly, got {xs[i]:g} after {xs[i - 1]:g}")
        return cls(xs, ys)

    def _segment(self, x: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Intercept and slope of the linear piece that covers each ``x``."""
        intercept, slope = self._piece_params()
        piece = np.clip(np.searchsorted(self.xs, x, side="right"), 0, self.xs.size - 1)
        return intercept[piece], slope[piece]

    def value(self, x: ArrayLike) -> NDArray[np.float64]:
        """Evaluate the curve at ``x`` (array-like)."""
        x = np.asarray(x, dtype=float)
        intercept, slope = self._segment(x)
        return intercept + slope * x

    def integer_sum(self, lo: ArrayLike, hi: ArrayLike) -> NDArray[np.float64]:
        """Exact ``sum(f(c) for c in range(lo, hi + 1))`` for integer ``lo <= hi + 1``.

        Works per linear piece with the arithmetic-series formula, so its cost does not
        grow with ``hi - lo``. An empty range sums to 0.
        """
        lo = np.asarray(lo, dtype=float)
        hi = np.asarray(hi, dtype=float)
        return self._prefix(hi) - self._prefix(lo - 1)

    def _prefix(self, n: NDArray[np.float64]) -> NDArray[np.float64]:
        """``sum(f(c) for c in range(0, n + 1))`` for integer ``n >= -1``."""
        # Integer starts of the pieces: the clamp from 0, segment k from ceil(xs[k]).
        starts = np.concatenate([[0.0], np.ceil(self.xs[:-1])])
        ends = np.concatenate([starts[1:] - 1, [np.inf]])
        intercept, slope = self._piece_params()
        whole = _linear_sum(intercept[:-1], slope[:-1], starts[:-1], ends[:-1])
        before = np.concatenate([[0.0], np.cumsum(whole)])
        piece = np.clip(np.searchsorted(starts, n, side="right") - 1, 0, starts.size - 1)
        partial = _linear_sum(intercept[piece], slope[piece], starts[piece], n)
        return np.where(n < 0, 0.0, before[piece] + partial)

    def _piece_params(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Intercept and slope of piece 0 (clamp) and each segment (last extended)."""
        if self.xs.size == 1:
            return np.array([self.ys[0]]), np.array([0.0])
        slopes = np.diff(self.ys) / np.diff(self.xs)
        intercepts = self.ys[:-1] - slopes * self.xs[:-1]
        return np.concatenate([[self.ys[0]], intercepts]), np.concatenate([[0.0], slopes])

    def to_points(self) -> list[list[float]]:
        return [[float(x), float(y)] for x, y in zip(self.xs, self.ys)]


def _linear_sum(
    intercept: NDArray[np.float64], slope: NDArray[np.float64], lo: NDArray[np.float64], hi: NDArray[np.float64]
) -> NDArray[np.float64]:
    """``sum(intercept + slope * c for integer c in [lo, hi])``; 0 when ``hi < lo``."""
    count = np.maximum(hi - lo + 1, 0.0)
    safe_hi = np.where(count > 0, hi, lo)
    return np.where(count > 0, count * intercept + slope * (lo + safe_hi) * count / 2, 0.0)


@dataclass(frozen=True)
class KindCosts:
    """The two curves of one block kind."""

    prefill: Curve
    decode: Curve

    def decode_mean(self, prompt_tokens: ArrayLike, output_tokens: ArrayLike) -> NDArray[np.float64]:
        """Exact mean decode seconds per step over steps ``t = 1 .. o-1`` at context ``p + t``.

        Zero when ``o = 1`` (there are no decode steps).

        Examples
        --------
        >>> k = KindCosts(Curve.from_points([[0, 0.0], [1, 1.0]]), Curve.from_points([[0, 0.0], [10, 10.0]]))
        >>> float(k.decode_mean(4, 3)[()])  # contexts 5 and 6
        5.5
        """
        p = np.asarray(prompt_tokens, dtype=float)
        o = np.asarray(output_tokens, dtype=float)
        steps = o - 1
        total = self.decode.integer_sum(p + 1, p + steps)
        return np.where(steps > 0, total / np.maximum(steps, 1), 0.0)


@dataclass(frozen=True)
class BatchedTables:
    """A profile's batched section (format version 2): the server's iteration costs.

    ``lin`` maps block kind to seconds as a function of the tokens one iteration runs at
    that block; ``attention`` holds the per-item attention model's numbers;
    ``engines`` each serving engine's fitted ``overhead_s``, ``overhead_per_seq_s`` and
    ``kernel_scale``; ``prefill_lin`` (optional) per kind the seconds of prefill tokens,
    measured on prompts (see docs/batched-model.md for the pricing rule).
    :func:`splitllm.batched.costs_from_tables` turns it into the model's costs.
    """

    lin: Mapping[str, Curve]
    attention: Mapping[str, float]
    engines: Mapping[str, Mapping[str, float]]
    memory_bytes: float
    weight_bytes: float
    kv_bytes_per_token: float
    source: str = "measured"
    provenance: str = ""
    prefill_lin: Mapping[str, Curve] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "source": self.source,
            "provenance": self.provenance,
            "lin": {kind: curve.to_points() for kind, curve in self.lin.items()},
            "attention": dict(self.attention),
            "engines": {name: dict(fit) for name, fit in self.engines.items()},
            "memory_bytes": self.memory_bytes,
            "weight_bytes": self.weight_bytes,
            "kv_bytes_per_token": self.kv_bytes_per_token,
        }
        if self.prefill_lin:  # optional: files without it load as before
            out["prefill_lin"] = {kind: curve.to_points() for kind, curve in self.prefill_lin.items()}
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any], path: str) -> BatchedTables:
        """From a schema-valid ``batched`` object; curve errors name ``path``."""
        lin = {kind: Curve.from_points(points, f"{path}.lin.{kind}") for kind, points in data["lin"].items()}
        numbers = ("memory_bytes", "weight_bytes", "kv_bytes_per_token")
        engines = {name: dict(fit) for name, fit in data["engines"].items()}
        prefill = {kind: Curve.from_points(points, f"{path}.prefill_lin.{kind}")
                   for kind, points in data.get("prefill_lin", {}).items()}
        return cls(lin, dict(data["attention"]), engines, *(float(data[k]) for k in numbers),
                   source=data.get("source", "measured"), provenance=data.get("provenance", ""), prefill_lin=prefill)


@dataclass(frozen=True)
class Profile:
    """A device profile; ``kinds`` maps block kind to its curves; ``batched`` (format
    version 2, servers only) its batched iteration costs."""

    device: str
    model: str
    dtype: str
    batch_size: int
    source: str
    provenance: str
    kinds: Mapping[str, KindCosts]
    batched: BatchedTables | None = None

    def costs(self, kind: str) -> KindCosts:
        return self.kinds[kind]

    def to_json(self) -> dict[str, Any]:
        """The profile as the JSON object of the profile format."""
        out: dict[str, Any] = {
            "format": PROFILE_FORMAT,
            "version": 1 if self.batched is None else 2,
            "device": self.device,
            "model": self.model,
            "dtype": self.dtype,
            "batch_size": self.batch_size,
            "source": self.source,
            "provenance": self.provenance,
            "kinds": {
                kind: {"prefill": c.prefill.to_points(), "decode": c.decode.to_points()}
                for kind, c in self.kinds.items()
            },
        }
        if self.batched is not None:
            out["batched"] = self.batched.to_json()
        return out


def _is_finite_number(value: Any) -> bool:
    """True for a JSON number that is not NaN/Infinity (bools are not numbers)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_profile(data: Any, path: str = "") -> Profile:
    """Validate a profile's JSON object and build a :class:`Profile`.

    Errors name the JSON path below ``path`` (e.g. ``devices.a100.kinds.layer.decode[2]``).
    """
    where = (lambda key: f"{path}.{key}" if path else key)  # noqa: E731
    if not isinstance(data, dict):
        raise InputError(path, "must be an object (a device profile)")
    errors = profile_schema_errors(data, path, limit=1)
    if errors:  # the published ranges, the same as for profiles inside an instance
        raise errors[0]
    allowed = {"format", "version", "device", "model", "dtype", "batch_size", "source", "provenance", "kinds", "batched"}
    for key in data:
        if key not in allowed:
            raise InputError(where(key), "unknown key")
    if data.get("format", PROFILE_FORMAT) != PROFILE_FORMAT:
        raise InputError(where("format"), f"must be {PROFILE_FORMAT!r}, got {data.get('format')!r}")
    version = data.get("version", 1)
    if version not in (1, 2):
        raise InputError(where("version"), f"must be 1 or 2, got {version!r}")
    if "batched" in data and version != 2:
        raise InputError(where("batched"), "needs profile format version 2")
    source = data.get("source", "measured")
    if source not in SOURCES:
        raise InputError(where("source"), f"must be one of {', '.join(SOURCES)}, got {source!r}")
    for key in ("device", "model", "dtype", "provenance"):
        if key in data and not isinstance(data[key], str):
            raise InputError(where(key), f"must be a string, got {type(data[key]).__name__}")
    kinds_data = data.get("kinds")
    if not isinstance(kinds_data, dict) or not kinds_data:
        raise InputError(where("kinds"), "must be a non-empty object of block kinds")
    kinds: dict[str, KindCosts] = {}
    for kind, curves in kinds_data.items():
        kpath = where(f"kinds.{kind}")
        if not isinstance(curves, dict) or set(curves) != {"prefill", "decode"}:
            raise InputError(kpath, "must be an object with exactly 'prefill' and 'decode'")
        kinds[kind] = KindCosts(
            Curve.from_points(curves["prefill"], f"{kpath}.prefill"),
            Curve.from_points(curves["decode"], f"{kpath}.decode"),
        )
    return Profile(
        device=str(data.get("device", "")),
        model=str(data.get("model", "")),
        dtype=str(data.get("dtype", "")),
        batch_size=int(data.get("batch_size", 1)),
        source=source,
        provenance=str(data.get("provenance", "")),
        kinds=kinds,
        batched=BatchedTables.from_json(data["batched"], where("batched")) if "batched" in data else None,
    )


def load_profile(path: str | Path) -> Profile:
    """Read and validate a profile file."""
    return parse_profile(read_json(path), "")
