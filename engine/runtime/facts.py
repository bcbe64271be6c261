"""What a model file says about itself without loading its weights: the tokenizer (with the chat
template), the name Verdict knows it by, its context length and depth.

A remote backend renders prompts on this side of the wire, so it needs the model's tokenizer but
never its weights; this module reads only metadata (gguf-py for GGUF files, JSON for folders)
and imports no MLX.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

from engine.runtime.sources import ModelError
from engine.runtime.tokenizer import Tokenizer, TokenizerError


class FactsError(ModelError):
    """The model file can't be read; the message is one line a user can act on."""


@dataclass
class ModelFacts:
    """A model's tokenizer and the facts scoring needs about it."""

    tokenizer: Tokenizer
    name: str  # as `engine.runtime.loading.load_model` names the same file
    context_length: int
    n_layers: int
    path: Path


def read_model_facts(path: Union[str, Path]) -> ModelFacts:
    """The tokenizer and facts of an MLX folder or a .gguf file. Raises FactsError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FactsError(f"model not found: {path}")
    try:
        if path.is_dir():
            return _folder_facts(path)
        if path.suffix.lower() == ".gguf":
            return _gguf_facts(path)
    except TokenizerError as exc:
        raise FactsError(str(exc)) from exc
    except (ValueError, KeyError, OSError) as exc:
        raise FactsError(f"{path.name}: could not read the model's tokenizer ({exc})") from exc
    raise FactsError(f"{path.name}: expected an MLX model folder or a .gguf file")


def gguf_metadata(path: Path) -> dict[str, Any]:
    """The key-value metadata of a GGUF file as plain Python values (gguf-py; no tensors read)."""
    from gguf import GGUFReader

    reader = GGUFReader(str(path))
    return {key: field.contents() for key, field in reader.fields.items() if not key.startswith("GGUF.")}


def _gguf_facts(path: Path) -> ModelFacts:
    meta = gguf_metadata(path)
    arch = meta.get("general.architecture", "llama")
    return ModelFacts(
        tokenizer=Tokenizer.from_gguf_metadata(meta),
        name=path.stem,
        context_length=int(meta.get(f"{arch}.context_length", 4096)),
        n_layers=int(meta.get(f"{arch}.block_count", 0)),
        path=path,
    )


def _folder_facts(folder: Path) -> ModelFacts:
    if not (folder / "config.json").exists():
        raise FactsError(f"{folder} is not an MLX model folder (no config.json)")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config = {**config.get("text_config", {}), **config}
    return ModelFacts(
        tokenizer=Tokenizer.from_folder(folder),
        name=str(config.get("name") or folder.name),
        context_length=int(config.get("max_position_embeddings") or config.get("context_length") or 2048),
        n_layers=int(config.get("num_hidden_layers", 0)),
        path=folder,
    )
