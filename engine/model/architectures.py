"""The architecture allow-list: which model families the runtime scores, checked at load time.

An architecture is allowed only when all of it runs through our path: the segment KV cache
(`engine.runtime.kv`, full causal attention, no sliding windows), the batched prefill, and the
last-position output head (`engine.runtime.local`), which applies the final norm and the
(tied or untied) output projection and nothing else. So an architecture whose own forward does
more after the last layer (Gemma 2's logit soft-capping, Granite's logit scaling, Cohere's
logit scale) or attends through sliding windows (Gemma 2/3, Phi-3 "small" and "mini" long-context
variants, Mistral 7B v0.1) is refused with its name, until our path implements what it needs.

Each allowed architecture is tested against stock mlx-lm and for "cached + batched == each
prompt alone" (tests/test_loading.py, tests/test_scoring.py).
"""
from __future__ import annotations

from typing import Any, Mapping

SUPPORTED_ARCHITECTURES = ("llama", "qwen2", "qwen3")

# Why the commonly met others are refused (shown to the user).
REFUSED = {
    "gemma": "its embedding scaling and GELU MLP are not in our path",
    "gemma2": "its logit soft-capping and sliding-window attention are not in our path",
    "gemma3": "its sliding-window attention is not supported by our KV cache",
    "gemma3_text": "its sliding-window attention is not supported by our KV cache",
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


def check_architecture(name: str, config: Mapping[str, Any] | None = None) -> None:
    """Raise `ArchitectureError` unless `name` (GGUF `general.architecture` or config.json's
    `model_type`) is allowed and its config asks for nothing our forward path leaves out."""
    if name not in SUPPORTED_ARCHITECTURES:
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
    if sliding and config.get("use_sliding_window", True) and (not context or sliding < context):
        raise ArchitectureError(
            f"architecture {name!r} with sliding-window attention ({sliding}) is not supported by our KV cache"
        )


def check_built_model(model: Any, name: str) -> None:
    """A second guard once mlx-lm has built the model: no layer may use sliding-window attention."""
    layers = getattr(getattr(model, "model", None), "layers", [])
    if any(getattr(block, "use_sliding", False) for block in layers):
        raise ArchitectureError(f"architecture {name!r}: sliding-window attention layers are not supported")
