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
from typing import Optional, Union

from engine.model.sources import ModelError
from engine.model.tokenizer import Tokenizer, TokenizerError


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
    fingerprint: str  # as `load_model` computes it: the same file gets the same saved calibrators
    preset: Optional[str] = None  # the prompt preset the model's own names call for


def read_model_facts(path: Union[str, Path]) -> ModelFacts:
    """The tokenizer and facts of an MLX folder or a .gguf file. Raises FactsError."""
    path = Path(path).expanduser()
    if not path.exists():
        raise FactsError(f"model not found: {path}")
    from engine.model.gguf_file import GGUFFormatError
    from engine.model.gguf_file import is_gguf

    try:
        if path.is_dir():
            facts = _folder_facts(path)
        elif is_gguf(path):
            facts = _gguf_facts(path)
        else:
            raise FactsError(f"{path.name}: expected an MLX model folder or a GGUF file")
    except TokenizerError as exc:
        raise FactsError(f"{path.name}: {exc}") from exc
    except GGUFFormatError as exc:
        raise FactsError(str(exc)) from exc
    except (ValueError, KeyError, OSError) as exc:
        raise FactsError(f"{path.name}: could not read the model's tokenizer ({exc})") from exc
    facts.tokenizer.name = path.name
    return facts


def _gguf_facts(path: Path) -> ModelFacts:
    from engine.model.fingerprint import detect_preset, model_fingerprint
    from engine.model.gguf_file import read_header

    meta = read_header(path).metadata  # checked in Python; no tensor is read
    arch = str(meta.get("general.architecture", "llama"))
    names = [path.name, meta.get("general.name"), meta.get("general.basename"), meta.get("general.finetune")]
    return ModelFacts(
        tokenizer=Tokenizer.from_gguf_metadata(meta),
        name=path.stem,
        context_length=int(meta.get(f"{arch}.context_length", 4096)),
        n_layers=int(meta.get(f"{arch}.block_count", 0)),
        path=path,
        fingerprint=model_fingerprint(path),
        preset=detect_preset(arch, names),
    )


def _folder_facts(folder: Path) -> ModelFacts:
    if not (folder / "config.json").exists():
        raise FactsError(f"{folder} is not an MLX model folder (no config.json)")
    from engine.model.fingerprint import detect_preset, model_fingerprint
    from engine.model.hub import repo_of_snapshot

    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config = {**config.get("text_config", {}), **config}
    names = [folder.name, config.get("name"), config.get("_name_or_path"), repo_of_snapshot(folder)]
    return ModelFacts(
        tokenizer=Tokenizer.from_folder(folder),
        name=str(config.get("name") or folder.name),
        context_length=int(config.get("max_position_embeddings") or config.get("context_length") or 2048),
        n_layers=int(config.get("num_hidden_layers", 0)),
        path=folder,
        fingerprint=model_fingerprint(folder),
        preset=detect_preset(str(config.get("model_type", "")), names),
    )
