"""Model shapes shared by the profiler, the profile importer and the instance generator.

A :class:`ModelShape` holds the architecture numbers of a model (layers, hidden size,
heads, MLP width, vocabulary) and derives from them everything the rest of the package
needs: the block list of an instance (``embed``, ``L`` x ``layer``, ``head``
with ``weight_bytes`` and ``kv_bytes_per_token``), the hidden-state and token sizes, and
the FLOPs and bytes of each block that the roofline parts of the importer use.

The numbers are those of the published model configurations (Hugging Face
``config.json`` of each model). ``head`` is the final norm plus the LM head (or, for the
encoder ``bert-base``, the pooler plus a 2-label classifier) plus sampling.

Examples
--------
>>> shape = get_shape("llama-2-7b")
>>> shape.n_layers, shape.head_dim, shape.kv_bytes_per_token(2)
(32, 128, 16384)
>>> round(shape.total_params() / 1e9, 2)
6.74
>>> [b["kind"] for b in shape.blocks(2)][:3], len(shape.blocks(2))
(['embed', 'layer', 'layer'], 34)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from splitllm.errors import InputError

#: Bytes of one element for the dtypes the package names.
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "q4_k_m": 0.6}
#: Bytes of one token id on the wire (int32).
TOKEN_BYTES = 4


@dataclass(frozen=True)
class ModelShape:
    """Architecture numbers of one model; see the module docstring.

    ``arch`` is ``"llama"`` (RMSNorm, RoPE, gated SiLU MLP, no biases), ``"phi"``
    (LayerNorm, parallel attention and MLP, GELU, biases), ``"gpt2"`` (pre-LayerNorm,
    learned positions, GELU, biases, tied LM head) or ``"bert"`` (post-LayerNorm encoder,
    learned positions and token types, pooler + classifier head).
    """

    name: str
    arch: str
    n_layers: int
    hidden: int
    n_heads: int
    n_kv_heads: int
    ffn: int
    vocab: int
    max_context: int
    learned_positions: int = 0
    n_labels: int = 0
    hf_id: str = ""

    @property
    def head_dim(self) -> int:
        return self.hidden // self.n_heads

    @property
    def kv_dim(self) -> int:
        """Width of K (and of V) per token: ``n_kv_heads * head_dim``."""
        return self.n_kv_heads * self.head_dim

    @property
    def gated_mlp(self) -> bool:
        return self.arch == "llama"

    @property
    def biases(self) -> bool:
        return self.arch != "llama"

    @property
    def encoder(self) -> bool:
        """True for encoder-only shapes (no KV cache, no decode: ``output_tokens = 1``)."""
        return self.arch == "bert"

    def layer_gemm_params(self) -> int:
        """Weights of the matrix products of one layer (QKV, output, MLP)."""
        attn = self.hidden * (self.hidden + 2 * self.kv_dim) + self.hidden * self.hidden
        mlp = self.hidden * self.ffn * (3 if self.gated_mlp else 2)
        return attn + mlp

    def layer_params(self) -> int:
        """All weights of one layer: GEMMs plus biases and norms."""
        norms = {"llama": 2 * self.hidden, "phi": 2 * self.hidden, "gpt2": 4 * self.hidden, "bert": 4 * self.hidden}
        bias = (self.hidden + 2 * self.kv_dim) + self.hidden + self.ffn + self.hidden if self.biases else 0
        return self.layer_gemm_params() + norms[self.arch] + bias

    def embed_params(self) -> int:
        """Token (and position, token-type, embedding-norm) tables."""
        extra = {"bert": 2 * self.hidden + 2 * self.hidden}.get(self.arch, 0)
        return (self.vocab + self.learned_positions) * self.hidden + extra

    def head_params(self) -> int:
        """Final norm plus LM head (or pooler plus classifier for ``bert``)."""
        if self.encoder:
            return self.hidden * self.hidden + self.hidden + self.hidden * self.n_labels + self.n_labels
        norm = self.hidden if self.arch == "llama" else 2 * self.hidden
        bias = self.vocab if self.arch == "phi" else 0
        return norm + self.vocab * self.hidden + bias

    def head_gemm_params(self) -> int:
        """Weights of the head's matrix product(s) for one token."""
        if self.encoder:
            return self.hidden * self.hidden + self.hidden * self.n_labels
        return self.vocab * self.hidden

    def total_params(self) -> int:
        return self.embed_params() + self.n_layers * self.layer_params() + self.head_params()

    def kv_bytes_per_token(self, dtype_bytes: float) -> int:
        """KV-cache bytes one token adds to one layer (0 for an encoder: nothing is cached)."""
        return 0 if self.encoder else int(2 * self.kv_dim * dtype_bytes)

    def attention_flops(self, tokens: int) -> float:
        """FLOPs of ``softmax(QK^T)V`` for a prompt of ``tokens`` (causal, or full for an encoder)."""
        pairs = tokens * tokens if self.encoder else tokens * (tokens + 1) / 2
        return 4.0 * pairs * self.hidden

    def decode_attention_flops(self, context: int) -> float:
        """FLOPs of one query token attending over ``context`` cached tokens."""
        return 4.0 * context * self.hidden

    def blocks(self, dtype_bytes: float) -> list[dict[str, Any]]:
        """The instance block list: ``embed``, ``layer0 .. layer{L-1}``, ``head``."""
        kv = self.kv_bytes_per_token(dtype_bytes)
        layer = {"kind": "layer", "weight_bytes": int(self.layer_params() * dtype_bytes), "kv_bytes_per_token": kv}
        return (
            [{"name": "embed", "kind": "embed", "weight_bytes": int(self.embed_params() * dtype_bytes), "kv_bytes_per_token": 0}]
            + [{"name": f"layer{i}", **layer} for i in range(self.n_layers)]
            + [{"name": "head", "kind": "head", "weight_bytes": int(self.head_params() * dtype_bytes), "kv_bytes_per_token": 0}]
        )

    def instance_model(self, dtype: str = "float16") -> dict[str, Any]:
        """The ``model`` object of an instance file (docs/formats.md) for weights of ``dtype``."""
        size = dtype_bytes(dtype)
        return {
            "name": self.name,
            "activation_bytes_per_token": int(self.hidden * size),
            "token_bytes": TOKEN_BYTES,
            "blocks": self.blocks(size),
        }


SHAPES: dict[str, ModelShape] = {
    s.name: s
    for s in (
        ModelShape("llama-2-7b", "llama", 32, 4096, 32, 32, 11008, 32000, 4096, hf_id="meta-llama/Llama-2-7b-hf"),
        ModelShape("llama-2-70b", "llama", 80, 8192, 64, 8, 28672, 32000, 4096, hf_id="meta-llama/Llama-2-70b-hf"),
        ModelShape("llama-1-30b", "llama", 60, 6656, 52, 52, 17920, 32000, 2048, hf_id="huggyllama/llama-30b"),
        ModelShape("llama-3-8b", "llama", 32, 4096, 32, 8, 14336, 128256, 8192, hf_id="meta-llama/Meta-Llama-3-8B"),
        ModelShape("mistral-7b", "llama", 32, 4096, 32, 8, 14336, 32000, 32768, hf_id="mistralai/Mistral-7B-v0.1"),
        ModelShape("phi-2", "phi", 32, 2560, 32, 32, 10240, 51200, 2048, hf_id="microsoft/phi-2"),
        ModelShape("gpt2", "gpt2", 12, 768, 12, 12, 3072, 50257, 1024, learned_positions=1024, hf_id="gpt2"),
        ModelShape(
            "bert-base", "bert", 12, 768, 12, 12, 3072, 30522, 512, learned_positions=512 + 2, n_labels=2,
            hf_id="bert-base-uncased",
        ),
    )
}
#: Short names accepted wherever a model is named.
ALIASES = {"llama": "llama-2-7b", "llama2": "llama-2-7b", "mistral": "mistral-7b", "bert": "bert-base"}


def get_shape(name: str, option: str = "--model") -> ModelShape:
    """The shape called ``name`` (or an alias); unknown names raise :class:`InputError`.

    Examples
    --------
    >>> get_shape("mistral").n_kv_heads
    8
    """
    key = ALIASES.get(name.lower(), name.lower())
    if key not in SHAPES:
        raise InputError(option, f"unknown model {name!r}; known: {', '.join(sorted(SHAPES))}")
    return SHAPES[key]


def dtype_bytes(dtype: str, option: str = "--dtype") -> float:
    """Bytes per element of ``dtype``; unknown names raise :class:`InputError`."""
    if dtype not in DTYPE_BYTES:
        raise InputError(option, f"unknown dtype {dtype!r}; known: {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


def shape_from_config(config: dict[str, Any], name: str = "custom", option: str = "--model") -> ModelShape:
    """A shape from a JSON object with the :class:`ModelShape` field names.

    Examples
    --------
    >>> shape_from_config({"arch": "llama", "n_layers": 2, "hidden": 64, "n_heads": 4,
    ...                    "n_kv_heads": 4, "ffn": 128, "vocab": 100, "max_context": 256}).hidden
    64
    """
    fields = set(ModelShape.__dataclass_fields__)
    unknown = sorted(set(config) - fields)
    if unknown:
        raise InputError(f"{option}.{unknown[0]}", "unknown key")
    if config.get("arch") not in ("llama", "phi", "gpt2", "bert"):
        raise InputError(f"{option}.arch", f"must be llama, phi, gpt2 or bert, got {config.get('arch')!r}")
    try:
        shape = ModelShape(**{"name": name, **config})
    except TypeError as exc:
        raise InputError(option, f"incomplete model config: {exc}") from None
    for key in ("n_layers", "hidden", "n_heads", "n_kv_heads", "ffn", "vocab", "max_context"):
        value = getattr(shape, key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise InputError(f"{option}.{key}", f"must be an integer >= 1, got {value!r}")
    if shape.hidden % shape.n_heads or shape.n_heads % shape.n_kv_heads:
        raise InputError(f"{option}.n_heads", "hidden must divide by n_heads and n_heads by n_kv_heads")
    return shape
