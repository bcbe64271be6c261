"""Models from the Hugging Face Hub: `org/repo` (an MLX repo) and `org/repo:QUANT` (a GGUF file).

Downloads go through `huggingface_hub` into its standard cache, one file at a time with a
progress callback and a cancel check. `HF_ENDPOINT`, `HF_HUB_CACHE`/`HF_HOME` and
`HF_HUB_OFFLINE` are read when a download starts (huggingface_hub itself reads them once, at
import), so a process can change them between downloads. Offline, or when the hub can't be
reached, the repo's cached snapshot is used; a tag then picks among the cached GGUF files.

The tag picks a GGUF file the way llama.cpp's `-hf org/repo:TAG` does: the file whose
quantization label (the end of its name: `…-Q4_K_M.gguf`) equals the tag, case-insensitively;
without a tag a GGUF-only repo gives Q4_K_M, else its first GGUF file.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from engine.model.sources import ModelError

DEFAULT_REVISION = "main"
DEFAULT_GGUF_TAG = "Q4_K_M"
# What mlx-lm's own loader fetches from an MLX repo (mlx_lm.utils.DEFAULT_ALLOW_PATTERNS).
MLX_PATTERNS = ("*.json", "model*.safetensors", "*.py", "tokenizer.model", "*.tiktoken", "tiktoken.model",
                "*.txt", "*.jsonl", "*.jinja")
_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.\-]*/[\w.\-]+?)(?::(?P<tag>[\w.\-]+))?$")
_QUANT = re.compile(r"[-_.](?P<q>(?:I?Q\d[A-Z0-9_]*|BF16|F16|F32|TQ\d_\d|MXFP4[A-Z0-9_]*))$", re.IGNORECASE)
_SPLIT = re.compile(r"-(\d{5})-of-(\d{5})$")

Progress = Callable[[int, Optional[int]], None]  # (bytes done, bytes in all or None)


class HubError(ModelError):
    """A hub model can't be resolved or downloaded; the message is one line a user can act on."""


class RepoNotFound(HubError):
    """The hub has no such repo (or revision)."""


class DownloadCancelled(HubError):
    """The user cancelled a download (a partial file is not kept)."""


@dataclass(frozen=True)
class HubRef:
    """`org/repo` or `org/repo:TAG`."""

    repo: str
    tag: Optional[str] = None

    def __str__(self) -> str:
        return f"{self.repo}:{self.tag}" if self.tag else self.repo


def parse_ref(spec: str) -> Optional[HubRef]:
    """The hub reference in `spec`, or None when it doesn't look like one."""
    match = _REF.match(spec.strip())
    if not match or ".." in spec or spec.startswith(("/", ".", "~")):
        return None
    return HubRef(match["repo"], match["tag"])


# --- settings read at call time --------------------------------------------------------------
def _env_true(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def is_offline() -> bool:
    """`HF_HUB_OFFLINE` (or `TRANSFORMERS_OFFLINE`) is set."""
    return _env_true("HF_HUB_OFFLINE") or _env_true("TRANSFORMERS_OFFLINE")


def endpoint() -> str:
    """`HF_ENDPOINT`, else huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def cache_dir() -> Path:
    """The hub cache, with huggingface_hub's precedence: HF_HUB_CACHE, HF_HOME/hub, XDG, ~/.cache."""
    explicit = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if explicit:
        return Path(os.path.expandvars(explicit)).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return Path(os.path.expandvars(home)).expanduser() / "hub"


def repo_folder(repo: str) -> Path:
    """The cache folder of a model repo (`models--org--name`)."""
    return cache_dir() / ("models--" + repo.replace("/", "--"))


def repo_of_snapshot(path: Path) -> Optional[str]:
    """`org/repo` when `path` is (inside) a snapshot folder of the hub cache, else None."""
    parts = Path(path).parts
    for i in range(len(parts) - 2):
        if parts[i].startswith("models--") and parts[i + 1] == "snapshots":
            return parts[i][len("models--"):].replace("--", "/", 1)
    return None


# --- choosing files ---------------------------------------------------------------------------
def quant_label(filename: str) -> Optional[str]:
    """The quantization label at the end of a GGUF file name (`Qwen2.5-0.5B-Q4_K_M.gguf` -> Q4_K_M)."""
    stem = _SPLIT.sub("", Path(filename).name[: -len(".gguf")] if filename.lower().endswith(".gguf") else filename)
    match = _QUANT.search(stem)
    return match["q"].upper() if match else None


def _gguf_files(files: list[str]) -> list[str]:
    return sorted(f for f in files if f.lower().endswith(".gguf") and "mmproj" not in Path(f).name.lower())


def pick_gguf(files: list[str], tag: Optional[str]) -> list[str]:
    """The GGUF file(s) of a repo that `tag` names (split parts together), or [] if none."""
    ggufs = _gguf_files(files)
    if tag is None:
        tag = DEFAULT_GGUF_TAG if any(quant_label(f) == DEFAULT_GGUF_TAG for f in ggufs) else None
        if tag is None:
            return ggufs[:1]
    wanted = tag.upper()
    matches = [f for f in ggufs if quant_label(f) == wanted]
    if not matches:
        return []
    first = matches[0]
    stem = _SPLIT.sub("", first[: -len(".gguf")])
    return [f for f in matches if _SPLIT.sub("", f[: -len(".gguf")]) == stem]


def is_mlx_repo(files: list[str]) -> bool:
    names = {Path(f).name for f in files}
    return "config.json" in names and any(n.endswith(".safetensors") for n in names)


def _select(ref: HubRef, files: list[str]) -> list[str]:
    from fnmatch import fnmatch

    if ref.tag is None and is_mlx_repo(files):
        return [f for f in files if "/" not in f and any(fnmatch(f, p) for p in MLX_PATTERNS)]
    chosen = pick_gguf(files, ref.tag)
    if not chosen:
        labels = sorted({quant_label(f) or Path(f).name for f in _gguf_files(files)})
        if ref.tag is None:
            raise HubError(f"{ref.repo} has neither MLX weights (config.json + .safetensors) nor GGUF files")
        available = f"; available: {', '.join(labels)}" if labels else " (it has no GGUF files)"
        raise HubError(f"{ref.repo} has no GGUF file for {ref.tag!r}{available}")
    if len(chosen) > 1:
        raise HubError(f"{ref}: split GGUF files ({len(chosen)} parts) are not supported; choose a smaller quant")
    return chosen


# --- listing ----------------------------------------------------------------------------------
@dataclass
class _Listing:
    commit: str
    sizes: dict[str, Optional[int]]  # path in repo -> bytes


def _remote_listing(ref: HubRef, revision: str) -> _Listing:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    api = HfApi(endpoint=endpoint())
    info = api.model_info(ref.repo, revision=revision)
    commit = info.sha or revision
    sizes = {f.path: (f.lfs.size if f.lfs else f.size)
             for f in api.list_repo_tree(ref.repo, revision=commit, recursive=True) if isinstance(f, RepoFile)}
    return _Listing(commit, sizes)


def _cached_listing(ref: HubRef, revision: str) -> Optional[_Listing]:
    folder = repo_folder(ref.repo)
    commit = revision
    ref_file = folder / "refs" / revision
    if ref_file.is_file():
        commit = ref_file.read_text().strip()
    snapshot = folder / "snapshots" / commit
    if not snapshot.is_dir():
        return None
    sizes = {p.relative_to(snapshot).as_posix(): p.stat().st_size
             for p in snapshot.rglob("*") if p.is_file()}
    return _Listing(commit, sizes)


# --- downloading ------------------------------------------------------------------------------
class _Sink:
    """Adds up the bytes of every file of one download; raises DownloadCancelled when asked."""

    def __init__(self, total: Optional[int], progress: Optional[Progress], cancel: Optional[Callable[[], bool]]):
        self.total, self.done, self.progress, self.cancel = total, 0, progress, cancel

    def add(self, n: int) -> None:
        self.done += n
        if self.progress:
            self.progress(self.done, self.total)
        if self.cancel and self.cancel():
            raise DownloadCancelled("download cancelled")

    def bar_class(self) -> type:
        """A tqdm subclass for huggingface_hub's `tqdm_class`: every bar it makes feeds this sink
        and draws nothing (the caller's `progress` shows the download as a whole)."""
        from tqdm import tqdm

        sink = self

        class HubBar(tqdm):
            def __init__(self, *args, **kwargs) -> None:
                kwargs["disable"] = True
                super().__init__(*args, **kwargs)
                if kwargs.get("initial"):  # a resumed download: the bytes already on disk
                    sink.add(int(kwargs["initial"]))

            def update(self, n: float = 1) -> Optional[bool]:
                sink.add(int(n))
                return super().update(n)

            # huggingface_hub's aggregated-bar protocol (Xet downloads): with these, it reports
            # network bytes here instead of making a second bar whose `update` would count them
            # as bytes written. We count bytes written only.
            def update_transfer(self, n: float = 1) -> None:
                pass

            def set_transfer_postfix_str(self, *args, **kwargs) -> None:
                pass

        return HubBar


def download(spec: str, *, progress: Optional[Progress] = None, cancel: Optional[Callable[[], bool]] = None,
             revision: str = DEFAULT_REVISION) -> Path:
    """Download (or find in the cache) the model `spec` names; return a GGUF file or an MLX folder.

    ``progress(done, total)`` is called as bytes arrive; ``cancel()`` returning True stops the
    download with :class:`DownloadCancelled`. Offline (`HF_HUB_OFFLINE=1`) or when the hub can't
    be reached, the cached snapshot is used.
    """
    ref = parse_ref(spec)
    if ref is None:
        raise HubError(f"{spec!r} is not a Hugging Face repo id (org/repo or org/repo:QUANT)")
    listing, reason = None, ""
    if not is_offline():
        try:
            listing = _remote_listing(ref, revision)
        except Exception as exc:  # not found, no network, a proxy page: try the cache, else say why
            listing, reason = None, _explain(exc, ref)
            if _is_not_found(exc):
                raise RepoNotFound(reason) from exc
    cached = listing is None
    if cached:
        listing = _cached_listing(ref, revision)
        if listing is None:
            why = reason or "HF_HUB_OFFLINE is set"
            raise HubError(f"{ref} is not in the Hugging Face cache ({cache_dir()}) and can't be downloaded: {why}")
    files = _select(ref, sorted(listing.sizes))
    sizes = [listing.sizes.get(f) for f in files]
    sink = _Sink(None if None in sizes else sum(sizes), progress, cancel)
    paths = [_download_file(ref, f, revision, listing.commit, cached, sink) for f in files]
    if ref.tag is None and is_mlx_repo(files):
        return paths[0].parent
    return paths[0]


def _download_file(ref: HubRef, filename: str, revision: str, commit: str, cached: bool, sink: _Sink) -> Path:
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(
            ref.repo, filename, revision=commit if cached else revision, cache_dir=str(cache_dir()),
            endpoint=endpoint(), local_files_only=cached, tqdm_class=sink.bar_class(),
        )
    except DownloadCancelled:
        raise
    except Exception as exc:
        raise HubError(f"{ref}: could not download {filename}: {_explain(exc, ref)}") from exc
    return Path(path)


def _is_not_found(exc: Exception) -> bool:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    return isinstance(exc, (RepositoryNotFoundError, RevisionNotFoundError))


def _explain(exc: Exception, ref: HubRef) -> str:
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(exc, RepositoryNotFoundError):
        return f"{ref.repo} was not found on {endpoint()} (or it is private/gated: log in with `hf auth login`)"
    if isinstance(exc, RevisionNotFoundError):
        return f"{ref.repo} has no revision {DEFAULT_REVISION!r}"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:200]}"
