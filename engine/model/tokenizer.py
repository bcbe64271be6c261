"""One tokenizer type for every model source: a `tokenizers.Tokenizer` plus the chat template.

GGUF files carry their vocabulary, merges and chat template as metadata (a SentencePiece
vocabulary carries scores instead of merges: see `_sentencepiece_bpe`); MLX folders carry a
`tokenizer.json` (or something transformers can turn into one). Both end up here, so prompt
rendering and verbalizer lookup have a single path. A model file is untrusted input: its chat
template is rendered in a sandbox with resource limits (`engine.model.chat_template`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from jinja2.exceptions import TemplateError
from tokenizers import AddedToken, Regex, decoders, models, normalizers, pre_tokenizers
from tokenizers import Tokenizer as _HFTokenizer

from engine.model.chat_template import ChatTemplate

# Pre-tokenizer regexes, as llama.cpp applies them for each `tokenizer.ggml.pre` (llama-vocab.cpp).
_GPT2_REGEX = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_QWEN2_REGEX = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_REGEX = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_GPT2_WORDS = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
PRE_TOKENIZER_REGEXES: dict[str, list[str]] = {
    "default": [r"[\p{P}\$\+<=>\^~\|]+", _GPT2_WORDS, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "gpt-2": [_GPT2_REGEX],
    "smollm": [r"\p{N}", _GPT2_REGEX],
    "qwen2": [_QWEN2_REGEX],
    "llama3": [_LLAMA3_REGEX],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", _GPT2_WORDS, r"[0-9][0-9][0-9]"],
    "chatglm4": [_LLAMA3_REGEX],
    "poro": [r" ?[^(\s|.,!?…。，、।۔،)]+"],
    "viking": [r" ?[^(\s|.,!?…。，、।۔،)]+", r"\p{N}"],
}
# llama.cpp's spellings of `tokenizer.ggml.pre` -> the regex family above (llama-vocab.cpp).
PRE_TOKENIZER_ALIASES: dict[str, str] = {
    "default": "default",
    **dict.fromkeys(
        ["llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "dbrx", "smaug-bpe"],
        "llama3",
    ),
    **dict.fromkeys(
        ["gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
         "exaone4", "mpt", "olmo", "jais", "trillion", "granite-docling"],
        "gpt-2",
    ),
    **dict.fromkeys(
        ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"], "smollm"
    ),
    **dict.fromkeys(["qwen2", "deepseek-r1-qwen", "kormo", "megrez", "stablelm2", "hunyuan"], "qwen2"),
    "falcon": "falcon",
    **dict.fromkeys(["glm4", "chatglm-bpe"], "chatglm4"),
    **dict.fromkeys(["poro-chat", "bloom", "gpt3-finnish"], "poro"),
    "viking": "viking",
}
# Names whose whole pre-tokenized word is looked up before merging (llama.cpp's ignore_merges).
_IGNORE_MERGES = {"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"}
# llama3-family names turn add_bos on unless the file says otherwise.
_ADD_BOS_DEFAULT = _IGNORE_MERGES
_SENTINEL = "\ue000\ue001verdict\ue001\ue000"  # a control token of our own (private-use characters)
TOKEN_TYPE_CONTROL = 3
TOKEN_TYPE_USER_DEFINED = 4


class TokenizerError(ValueError):
    """The model's tokenizer can't be built or used."""


class Tokenizer:
    """Text <-> ids and chat-template rendering for one model."""

    def __init__(
        self,
        backend: _HFTokenizer,
        *,
        chat_template: Optional[str] = None,
        bos_token: Optional[str] = None,
        eos_token: Optional[str] = None,
        add_bos: bool = False,
    ) -> None:
        self.backend = backend
        self.chat_template = chat_template
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.add_bos = add_bos
        self.bos_id = backend.token_to_id(bos_token) if bos_token else None
        self._special: Optional[frozenset[int]] = None
        self._plain: Optional[_HFTokenizer] = None
        self.name = "the model"  # the loader names the file, for error messages
        self._template: Optional[ChatTemplate] = None

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_gguf_metadata(cls, meta: dict[str, Any]) -> "Tokenizer":
        """Build the tokenizer a GGUF file describes: byte-level BPE (`gpt2`) or SentencePiece
        BPE (`llama`, as Gemma files have it)."""
        kind = str(meta.get("tokenizer.ggml.model", ""))
        tokens: list[str] = list(meta["tokenizer.ggml.tokens"])
        types = [int(t) for t in _as_list(meta.get("tokenizer.ggml.token_type", []))]
        pre = str(meta.get("tokenizer.ggml.pre", "default"))  # llama.cpp's default when missing
        if kind == "llama":
            backend = _sentencepiece_bpe(meta, tokens)
        elif kind == "gpt2":
            backend = _byte_level_bpe(meta, tokens, pre)
        else:
            raise TokenizerError(
                f"GGUF tokenizer model {kind!r} is not supported; supported: 'gpt2' (byte-level BPE), "
                "'llama' (SentencePiece BPE)"
            )
        added = [
            AddedToken(tokens[i], special=(t == TOKEN_TYPE_CONTROL), normalized=False)
            for i, t in enumerate(types)
            if t in (TOKEN_TYPE_CONTROL, TOKEN_TYPE_USER_DEFINED)
        ]
        backend.add_tokens(added)

        def token_at(key: str) -> Optional[str]:
            idx = meta.get(key)
            if idx is None:
                return None
            try:
                i = int(_scalar(idx))
            except (TypeError, ValueError):
                raise TokenizerError(f"GGUF {key} is {idx!r}, not a token id") from None
            if not 0 <= i < len(tokens):
                raise TokenizerError(f"GGUF {key} is {i}, outside the vocabulary of {len(tokens)} tokens")
            return tokens[i]

        return cls(
            backend,
            chat_template=meta.get("tokenizer.chat_template"),
            bos_token=token_at("tokenizer.ggml.bos_token_id"),
            eos_token=token_at("tokenizer.ggml.eos_token_id"),
            add_bos=bool(_scalar(meta.get("tokenizer.ggml.add_bos_token", pre in _ADD_BOS_DEFAULT))),
        )

    @classmethod
    def from_folder(cls, folder: Path) -> "Tokenizer":
        """Load `tokenizer.json` and the chat template from a Hugging Face style model folder."""
        folder = Path(folder)
        config: dict[str, Any] = {}
        if (folder / "tokenizer_config.json").exists():
            config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        if (folder / "tokenizer.json").exists():
            backend = _HFTokenizer.from_file(str(folder / "tokenizer.json"))
        else:  # sentencepiece-only folders: let transformers convert them once
            from transformers import AutoTokenizer

            backend = AutoTokenizer.from_pretrained(str(folder)).backend_tokenizer
        template = config.get("chat_template")
        if (folder / "chat_template.jinja").exists():
            template = (folder / "chat_template.jinja").read_text(encoding="utf-8")
        if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
            named = {t.get("name"): t.get("template") for t in template}
            template = named.get("default") or next(iter(named.values()), None)

        def token_text(value: Any) -> Optional[str]:
            return value.get("content") if isinstance(value, dict) else value

        return cls(
            backend,
            chat_template=template,
            bos_token=token_text(config.get("bos_token")),
            eos_token=token_text(config.get("eos_token")),
            add_bos=bool(config.get("add_bos_token", False)),
        )

    # --- use ----------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str, *, special: bool = True) -> list[int]:
        """Token ids of `text`. With ``special=False`` control-token text in it stays plain text,
        so a document can't inject `<|im_end|>` and end its own turn."""
        return self.encode_with_offsets(text, special=special)[0]

    def encode_with_offsets(self, text: str, *, special: bool = True) -> tuple[list[int], list[tuple[int, int]]]:
        """Token ids of `text` and each token's character span in it."""
        if special:
            encoding = self.backend.encode(text, add_special_tokens=False)
        else:
            self.backend.encode_special_tokens = True
            try:
                encoding = self.backend.encode(text, add_special_tokens=False)
            finally:
                self.backend.encode_special_tokens = False
        return encoding.ids, encoding.offsets

    def encode_prompt(
        self, text: str, literal: Sequence[tuple[int, int]] = ()
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """Ids of a whole rendered prompt, as one string, and each token's character span.

        Control tokens count only outside the `literal` character ranges (the document, the
        question: user text), so a document can't end its turn with a `<|im_end|>` of its own.
        The BOS id leads when the model asks for it. Without such look-alikes this is exactly one
        tokenization of the whole text. With them, the text is cut at the template's own control
        tokens and each piece tokenized as it would be inside the whole string (tokenizers split
        at control tokens first), by a copy of the tokenizer that knows no control tokens.
        """
        encoding = self.backend.encode(text, add_special_tokens=False)
        ids, offsets = list(encoding.ids), list(encoding.offsets)
        special = self.special_ids()

        def look_alike(token: int, span: tuple[int, int]) -> bool:
            if token not in special or text[span[0] : span[1]] != self.backend.id_to_token(token):
                return False  # e.g. <unk> for a character the vocabulary lacks
            return any(a < span[1] and span[0] < b for a, b in literal)

        if any(look_alike(i, o) for i, o in zip(ids, offsets)):
            cuts = [(i, o) for i, o in zip(ids, offsets) if i in special and not look_alike(i, o)]
            ids, offsets = [], []
            start = 0
            for token, (token_start, token_end) in cuts + [(None, (len(text), len(text)))]:
                piece_ids, piece_offsets = self._encode_piece(text[start:token_start], start)
                ids += piece_ids
                offsets += piece_offsets
                if token is not None:
                    ids.append(token)
                    offsets.append((token_start, token_end))
                start = token_end
        if self.add_bos and self.bos_id is not None and ids[:1] != [self.bos_id]:
            ids, offsets = [self.bos_id] + ids, [(0, 0)] + offsets
        return ids, offsets

    def _encode_piece(self, piece: str, start: int) -> tuple[list[int], list[tuple[int, int]]]:
        """`piece` as it tokenizes at `start` of a longer text, control-token text as plain text."""
        if not piece:
            return [], []
        lead = _SENTINEL if start else ""  # a piece after a control token is not the text's first
        encoding = self._plain_backend().encode(lead + piece, add_special_tokens=False)
        shift = start - len(lead)
        pairs = [(i, (a + shift, b + shift)) for i, (a, b) in zip(encoding.ids, encoding.offsets) if a >= len(lead)]
        return [i for i, _ in pairs], [o for _, o in pairs]

    def _plain_backend(self) -> _HFTokenizer:
        if self._plain is None:
            data = json.loads(self.backend.to_str())
            taken = [*self.backend.get_vocab(with_added_tokens=True).values(), *self.backend.get_added_tokens_decoder()]
            sentinel_id = max(max(taken), self.backend.get_vocab_size(with_added_tokens=True)) + 1
            kept = [t for t in data.get("added_tokens", []) if not t.get("special")]
            kept.append({"id": sentinel_id, "content": _SENTINEL, "single_word": False, "lstrip": False,
                         "rstrip": False, "normalized": False, "special": True})
            data["added_tokens"] = kept
            self._plain = _HFTokenizer.from_str(json.dumps(data))
        return self._plain

    def special_ids(self) -> frozenset[int]:
        """Ids of the control tokens (end of turn, BOS, EOS, ...)."""
        if self._special is None:
            decoder = self.backend.get_added_tokens_decoder()
            self._special = frozenset(i for i, token in decoder.items() if token.special)
        return self._special

    def decode(self, ids: Sequence[int]) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=False)

    def render_chat(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        """Render `messages` with the model's own chat template, opening the assistant turn."""
        if not self.chat_template:
            raise TokenizerError(f"{self.name}: this model has no chat template")
        try:
            if self._template is None:
                self._template = ChatTemplate(self.chat_template)
            return self._template.render(
                messages,
                add_generation_prompt=True,
                bos_token=self.bos_token or "",
                eos_token=self.eos_token or "",
                **kwargs,
            )
        except TemplateError as exc:
            problem = " ".join(str(exc).split()) or type(exc).__name__
            raise TokenizerError(f"{self.name}: the chat template failed: {problem}") from exc


def _byte_level_bpe(meta: dict[str, Any], tokens: list[str], pre: str) -> _HFTokenizer:
    """The byte-level BPE of a `gpt2` GGUF vocabulary: its merges, after llama.cpp's
    pre-tokenizer regexes for `pre`."""
    family = PRE_TOKENIZER_ALIASES.get(pre)
    if family is None:
        raise TokenizerError(
            f"GGUF pre-tokenizer {pre!r} is not supported (llama.cpp's name for how text is split "
            "before BPE); supported: " + ", ".join(sorted(PRE_TOKENIZER_ALIASES))
        )
    merges = [tuple(m.split(" ", 1)) for m in meta["tokenizer.ggml.merges"]]
    vocab = {tok: i for i, tok in enumerate(tokens)}
    backend = _HFTokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=pre in _IGNORE_MERGES))
    splits = [pre_tokenizers.Split(Regex(rx), behavior="isolated", invert=False) for rx in PRE_TOKENIZER_REGEXES[family]]
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        splits + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]
    )
    backend.decoder = decoders.ByteLevel()
    return backend


def _sentencepiece_bpe(meta: dict[str, Any], tokens: list[str]) -> _HFTokenizer:
    """llama.cpp's SentencePiece tokenizer (`llm_tokenizer_spm`) as a `tokenizers` BPE.

    llama.cpp writes spaces as U+2581, starts from the text's characters and repeatedly joins
    the adjacent pair whose join is a vocabulary entry of the highest score; what remains unknown
    becomes byte tokens (<0xNN>). So every split of every entry into two entries is a merge,
    ranked by the joined entry's score: a BPE over those merges joins the same pairs in the same
    order. (Ties between two splits of one entry are ordered by where they are in llama.cpp and
    by the split here; a vocabulary's scores are distinct otherwise.)
    """
    if _scalar(meta.get("tokenizer.ggml.add_space_prefix", True)):
        raise TokenizerError("GGUF SentencePiece tokenizer with add_space_prefix (Llama 2, Mistral) is not supported")
    if meta.get("tokenizer.ggml.merges"):
        raise TokenizerError("GGUF SentencePiece tokenizer with a merges list is not supported")
    scores = _as_list(meta.get("tokenizer.ggml.scores", []))
    if len(scores) != len(tokens):
        raise TokenizerError("GGUF SentencePiece tokenizer needs one score per token (tokenizer.ggml.scores)")
    vocab = {tok: i for i, tok in enumerate(tokens)}
    ranked = []
    for i, token in enumerate(tokens):
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in vocab and right in vocab:
                ranked.append((-float(scores[i]), i, cut, left, right))
    ranked.sort()
    unknown = meta.get("tokenizer.ggml.unknown_token_id")
    backend = _HFTokenizer(models.BPE(
        vocab=vocab, merges=[(left, right) for *_, left, right in ranked], byte_fallback=True,
        unk_token=tokens[int(_scalar(unknown))] if unknown is not None else None,
    ))
    backend.normalizer = normalizers.Replace(" ", "\u2581")
    backend.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    return backend


def _scalar(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _as_list(value: Any) -> list:
    return value.tolist() if hasattr(value, "tolist") else list(value)
