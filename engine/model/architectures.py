"""The architecture allow-list: which model families the runtime scores, checked at load time.

An architecture is allowed only when all of it runs through our path: the segment KV cache
(`engine.runtime.kv`, full causal attention, no sliding windows), the batched prefill, and the
last-position output head (`engine.runtime.local`), which applies the final norm and the
(tied or untied) output projection and nothing else. So an architecture whose own forward does
more after the last layer (Gemma 2's logit soft-capping, Granite's logit scaling, Cohere's
logit scale) or attends through sliding windows (Gemma 2, Phi-3 "small" and "mini" long-context
variants, Mistral 7B v0.1) is refused with its name, until our path implements what it needs.

Gemma 3 is the one sliding-window family allowed: its output head is the plain tied projection,
and every prompt is held to its window (`prompt_limit`), so each layer's window holds the whole
prompt and full causal attention is exactly what its local layers compute. Its embedding scale
(`embedding_scale`) is the one step of its forward outside its blocks and norm.

Each allowed architecture is tested against stock mlx-lm and for "cached + batched == each
prompt alone" (tests/test_loading.py, tests/test_scoring.py; Gemma 3 in tests/test_gemma3.py).
"""
from __future__ import annotations

from typing import Any, Mapping, Optional

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3", "gemma3")
# Where a GGUF file's `general.architecture` and mlx-lm's `model_type` differ; a folder whose
# config says "gemma3" is the multimodal wrapper (its text model nested), refused.
MODEL_TYPE_OF_GGUF = {"gemma3": "gemma3_text"}
_FOLDER_TYPES = ("llama", "qwen2", "qwen3", "gemma3_text")
_WINDOWED = ("gemma3_text",)  # sliding-window layers, run with every prompt inside the window

# Why the commonly met others are refused (shown to the user).
REFUSED = {
    "gemma": "its embedding scaling and GELU MLP are not in our path",
    "gemma2": "its logit soft-capping and sliding-window attention are not in our path",
    "gemma3": "a multimodal Gemma 3 folder; its text-only form (model_type gemma3_text) and Gemma 3 "
    "GGUF files are supported",
    "phi3": "its fused QKV/gate-up tensors and sliding-window attention are not in our path",
    "granite": "its logit and residual scaling are not in our path",
    "cohere": "its logit scale is not in our path",
    "mistral": "its sliding-window attention is not supported by our KV cache (Mistral GGUFs "
    "written as 'llama' load as llama)",
}

# Config keys of an otherwise allowed model_type that change the forward pass beyond our path.
_FORWARD_EXTRAS = (
    "final_logit_softcapping", "attn_logit_softcapping", "logits_scaling", "logit_scale",
    "embedding_multiplier", "residual_multiplier", "attention_multiplier",
)


class ArchitectureError(ValueError):
    """The model's architecture isn't one the runtime scores correctly; the message says why."""


def supported_list() -> str:
    return ", ".join(SUPPORTED_ARCHITECTURES)


def is_supported(name: str, gguf: bool) -> bool:
    """Whether the runtime scores this GGUF `general.architecture` (`gguf`) or folder `model_type`."""
    return name in (SUPPORTED_ARCHITECTURES if gguf else _FOLDER_TYPES)


def model_type_of(name: str, gguf: bool) -> str:
    """mlx-lm's `model_type` for a GGUF architecture or a folder's `model_type`."""
    return MODEL_TYPE_OF_GGUF.get(name, name) if gguf else name


def check_architecture(name: str, config: Mapping[str, Any] | None = None, *, gguf: bool = False) -> None:
    """Raise `ArchitectureError` unless `name` (GGUF `general.architecture` with `gguf`, else
    config.json's or mlx-lm's `model_type`) is allowed and its config asks for nothing our forward
    path leaves out."""
    if not is_supported(name, gguf):
        why = REFUSED.get(name)
        reason = f" ({why})" if why else ""
        raise ArchitectureError(
            f"architecture {name!r} is not supported{reason}; supported: {supported_list()}"
        )
    for key in _FORWARD_EXTRAS:
        value = (config or {}).get(key)
        if value not in (None, 0, 1, 1.0, False):
            raise ArchitectureError(
                f"architecture {name!r} with {key}={value!r} is not supported: the output head would "
                f"skip it; supported: {supported_list()} without it"
            )
    config = config or {}
    sliding, context = config.get("sliding_window"), config.get("max_position_embeddings")
    if model_type_of(name, gguf) in _WINDOWED:
        return
    if sliding and config.get("use_sliding_window", True) and (not context or sliding < context):
        raise ArchitectureError(
            f"architecture {name!r} with sliding-window attention ({sliding}) is not supported by our KV cache"
        )


def prompt_limit(model_type: str, config: Mapping[str, Any], context: int) -> int:
    """The most tokens one prompt may hold: the context, or for a sliding-window family the
    window, inside which its local layers attend to every earlier token (the window counts the
    token itself: llama.cpp masks keys `window` or more positions back)."""
    if model_type in _WINDOWED and config.get("sliding_window"):
        return min(context, int(config["sliding_window"]))
    return context


def embedding_scale(model_type: str, hidden_size: int) -> Optional[float]:
    """What the family multiplies its token embeddings by (None: nothing). Gemma's sqrt(hidden size)
    is taken through bfloat16, as mlx-lm and the bfloat16 training do: 25.25 for 640, where
    llama.cpp uses 25.30 (either scale is as close to llama.cpp's logits, within its 8-bit
    activations' noise)."""
    if model_type in _WINDOWED:
        return _bfloat16(hidden_size**0.5)
    return None


def _bfloat16(x: float) -> float:
    """`x` rounded to bfloat16 (nearest, ties to even), as a float."""
    import numpy as np

    bits = int(np.array(x, dtype=np.float32).view(np.uint32))
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return float(np.array(bits, dtype=np.uint32).view(np.float32))


def check_built_model(model: Any, name: str) -> None:
    """A second guard once mlx-lm has built the model: no layer may use sliding-window attention
    (Gemma 3's local layers are not flagged so: its prompts are held to the window instead)."""
    layers = getattr(getattr(model, "model", None), "layers", [])
    if any(getattr(block, "use_sliding", False) for block in layers):
        raise ArchitectureError(f"architecture {name!r}: sliding-window attention layers are not supported")
