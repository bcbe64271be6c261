"""Read and check a GGUF file's header in Python, before any native code parses it.

MLX's native GGUF parser (gguflib) asserts on bad input, and an assert calls `abort()`, which no
Python `except` can catch; before mlx 0.32.1 it also read tensor data past the end of the file.
So every GGUF goes through `read_header` first: the magic and version, each metadata entry (its
type, and every length against the bytes actually left in the file), each tensor's dimensions
and type, and each tensor's data range against the file size. Anything wrong raises
`GGUFFormatError` with one line that names the problem. The parsed metadata (plain Python values;
numeric arrays as numpy arrays) and tensor table are what the loader uses afterwards.

`read_gguf_info` is the same parse for listing models (architecture, quantization, name): it
decodes only the keys it needs and skips the rest (the vocabulary's arrays), every length still
checked against the file.
"""
from __future__ import annotations

import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Optional, Union

import numpy as np

GGUF_MAGIC = b"GGUF"
GGUF_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_TENSORS = 1 << 20  # real models have a few thousand
MAX_KEYS = 1 << 16
MAX_KEY_BYTES = 1 << 16

# GGUF metadata value types: (struct format, numpy dtype) for the fixed-size ones.
_SCALARS = {
    0: ("<B", np.uint8), 1: ("<b", np.int8), 2: ("<H", np.uint16), 3: ("<h", np.int16),
    4: ("<I", np.uint32), 5: ("<i", np.int32), 6: ("<f", np.float32), 7: ("<?", np.bool_),
    10: ("<Q", np.uint64), 11: ("<q", np.int64), 12: ("<d", np.float64),
}
_STRING, _ARRAY = 8, 9


class GGUFFormatError(ValueError):
    """The file is not a well-formed GGUF; the message names the problem in one line."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a GGUF file: numpy-order shape (rows last-but-one), type id, data range."""

    name: str
    shape: tuple[int, ...]
    type_id: int
    type_name: str
    offset: int  # absolute, in bytes from the start of the file
    nbytes: int


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    data_offset: int
    file_size: int
    tensor_info_offset: int = 0  # where the metadata ends and the tensor table starts
    alignment: int = DEFAULT_ALIGNMENT

    @property
    def architecture(self) -> str:
        return str(self.metadata.get("general.architecture", ""))

    def tensor_types(self) -> set[str]:
        return {t.type_name for t in self.tensors}


class _Cursor:
    """Bounds-checked little-endian reads from a buffer."""

    def __init__(self, buf: Any, size: int, name: str) -> None:
        self.buf, self.size, self.pos, self.name = buf, size, 0, name

    def fail(self, what: str) -> GGUFFormatError:
        return GGUFFormatError(f"{self.name}: not a valid GGUF file: {what}")

    def need(self, n: int, what: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(f"{what} runs past the end of the file (truncated or corrupt) at byte {self.pos}")

    def scalar(self, fmt: str, what: str) -> Any:
        n = struct.calcsize(fmt)
        self.need(n, what)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return value

    def string(self, what: str, limit: int | None = None) -> str:
        length = self.scalar("<Q", what)
        if limit is not None and length > limit:
            raise self.fail(f"{what} is {length} bytes long (at most {limit} allowed)")
        self.need(length, what)
        raw = bytes(self.buf[self.pos : self.pos + length])
        self.pos += length
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, key: str) -> Any:
        if vtype in _SCALARS:
            return self.scalar(_SCALARS[vtype][0], f"value of {key!r}")
        if vtype == _STRING:
            return self.string(f"string value of {key!r}")
        if vtype == _ARRAY:
            etype = self.scalar("<I", f"array type of {key!r}")
            count = self.scalar("<Q", f"array length of {key!r}")
            if etype in _SCALARS:
                fmt, dtype = _SCALARS[etype]
                nbytes = count * struct.calcsize(fmt)
                self.need(nbytes, f"array {key!r} ({count} items)")
                arr = np.frombuffer(self.buf, dtype=np.dtype(dtype).newbyteorder("<"), count=count, offset=self.pos)
                self.pos += nbytes
                return arr.copy()
            if etype == _STRING:
                self.need(count * 8, f"array {key!r} ({count} strings)")  # each string has an 8-byte length
                return [self.string(f"item of {key!r}") for _ in range(count)]
            raise self.fail(f"array {key!r} has element type {etype} (nested or unknown)")
        raise self.fail(f"metadata {key!r} has unknown value type {vtype}")

    def skip(self, vtype: int, key: str) -> None:
        """Step over a value as `value` would read it, with the same checks, decoding nothing."""
        if vtype in _SCALARS:
            n = struct.calcsize(_SCALARS[vtype][0])
            self.need(n, f"value of {key!r}")
            self.pos += n
        elif vtype == _STRING:
            self._skip_string(f"string value of {key!r}")
        elif vtype == _ARRAY:
            etype = self.scalar("<I", f"array type of {key!r}")
            count = self.scalar("<Q", f"array length of {key!r}")
            if etype in _SCALARS:
                nbytes = count * struct.calcsize(_SCALARS[etype][0])
                self.need(nbytes, f"array {key!r} ({count} items)")
                self.pos += nbytes
            elif etype == _STRING:
                self.need(count * 8, f"array {key!r} ({count} strings)")
                for _ in range(count):
                    self._skip_string(f"item of {key!r}")
            else:
                raise self.fail(f"array {key!r} has element type {etype} (nested or unknown)")
        else:
            raise self.fail(f"metadata {key!r} has unknown value type {vtype}")

    def _skip_string(self, what: str) -> None:
        length = self.scalar("<Q", what)
        self.need(length, what)
        self.pos += length


def is_gguf(path: Union[str, os.PathLike]) -> bool:
    """True when the file starts with the GGUF magic bytes (whatever its name)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


def read_header(path: Union[str, Path], keys: Optional[Collection[str]] = None) -> GGUFHeader:
    """Parse and check a GGUF file's header, metadata and tensor table (no tensor data read).
    ``keys``: decode only these metadata keys (and ``general.alignment``); skip the others."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    path = Path(path)
    name = path.name
    size = path.stat().st_size
    if size < 24:
        raise GGUFFormatError(f"{name}: not a valid GGUF file: only {size} bytes")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cur = _Cursor(buf, size, name)
        if bytes(buf[:4]) != GGUF_MAGIC:
            raise GGUFFormatError(f"{name}: not a GGUF file (no GGUF magic bytes)")
        cur.pos = 4
        version = cur.scalar("<I", "version")
        if version not in GGUF_VERSIONS:
            raise cur.fail(f"version {version} is not supported (supported: 2, 3)")
        n_tensors = cur.scalar("<Q", "tensor count")
        n_keys = cur.scalar("<Q", "metadata count")
        if n_tensors > MAX_TENSORS:
            raise cur.fail(f"it declares {n_tensors} tensors")
        if n_keys > MAX_KEYS:
            raise cur.fail(f"it declares {n_keys} metadata entries")

        metadata: dict[str, Any] = {}
        for _ in range(n_keys):
            key = cur.string("metadata key", MAX_KEY_BYTES)
            if key in metadata:
                raise cur.fail(f"metadata key {key!r} appears twice")
            vtype = cur.scalar("<I", f"type of {key!r}")
            if keys is None or key in keys or key == "general.alignment":
                metadata[key] = cur.value(vtype, key)
            else:
                cur.skip(vtype, key)
                metadata[key] = None  # present (a second one is still a duplicate), not decoded

        alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
        if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
            raise cur.fail(f"general.alignment {alignment!r} is not a power of two")

        tensor_info_offset = cur.pos
        raw_tensors = []
        seen: set[str] = set()
        for _ in range(n_tensors):
            tname = cur.string("tensor name", MAX_KEY_BYTES)
            if tname in seen:
                raise cur.fail(f"tensor {tname!r} appears twice")
            seen.add(tname)
            n_dims = cur.scalar("<I", f"dimensions of {tname!r}")
            if not 1 <= n_dims <= MAX_DIMS:
                raise cur.fail(f"tensor {tname!r} has {n_dims} dimensions")
            dims = [cur.scalar("<Q", f"dimensions of {tname!r}") for _ in range(n_dims)]
            type_id = cur.scalar("<I", f"type of {tname!r}")
            offset = cur.scalar("<Q", f"offset of {tname!r}")
            raw_tensors.append((tname, dims, type_id, offset))
        data_offset = -(-cur.pos // alignment) * alignment

    tensors = []
    for tname, dims, type_id, offset in raw_tensors:
        try:
            qtype = GGMLQuantizationType(type_id)
            block, block_bytes = GGML_QUANT_SIZES[qtype]
        except (ValueError, KeyError):
            raise GGUFFormatError(f"{name}: tensor {tname!r} has unknown type id {type_id}") from None
        count = 1
        for d in dims:
            if d < 1 or d > 1 << 40:
                raise GGUFFormatError(f"{name}: tensor {tname!r} has a dimension of {d}")
            count *= d
        if dims[0] % block:
            raise GGUFFormatError(f"{name}: tensor {tname!r} rows of {dims[0]} don't fill {qtype.name} blocks of {block}")
        nbytes = count // block * block_bytes
        if offset % alignment:
            raise GGUFFormatError(f"{name}: tensor {tname!r} offset {offset} is not aligned to {alignment}")
        start = data_offset + offset
        if start + nbytes > size:
            raise GGUFFormatError(
                f"{name}: tensor {tname!r} data ({nbytes} bytes at {start}) runs past the end of the "
                f"file ({size} bytes): truncated or corrupt"
            )
        tensors.append(TensorInfo(tname, tuple(reversed(dims)), type_id, qtype.name, start, nbytes))
    return GGUFHeader(path, version, metadata, tensors, data_offset, size, tensor_info_offset, alignment)


def tensor_bytes(header: GGUFHeader, info: TensorInfo) -> np.ndarray:
    """A read-only memory map of one tensor's raw bytes, shaped (rows..., bytes per row)."""
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, block_bytes = GGML_QUANT_SIZES[GGMLQuantizationType(info.type_id)]
    row_bytes = info.shape[-1] // block * block_bytes
    data = np.memmap(header.path, dtype=np.uint8, mode="r", offset=info.offset, shape=(info.nbytes,))
    return data.reshape(*info.shape[:-1], row_bytes)


@dataclass(frozen=True)
class GGUFInfo:
    """What a model list shows of a GGUF file."""

    architecture: Optional[str]
    quant: Optional[str]  # "Q4_K_M" from general.file_type, else the most common weight type
    name: Optional[str]  # general.name
    tensor_types: tuple[str, ...]  # every tensor type in the file, sorted


_INFO_KEYS = frozenset(("general.architecture", "general.file_type", "general.name"))


def read_gguf_info(path: Union[str, os.PathLike]) -> GGUFInfo:
    """The architecture, quantization and name of a GGUF file, from its checked header."""
    header = read_header(path, keys=_INFO_KEYS)
    meta = header.metadata
    weights = Counter(t.type_name for t in header.tensors if len(t.shape) >= 2)
    return GGUFInfo(
        architecture=_text(meta.get("general.architecture")),
        quant=_file_type_name(meta.get("general.file_type")) or (weights.most_common(1)[0][0] if weights else None),
        name=_text(meta.get("general.name")),
        tensor_types=tuple(sorted(header.tensor_types())),
    )


def _text(value: Any) -> Optional[str]:
    return value if isinstance(value, str) else None


def _file_type_name(value: Any) -> Optional[str]:
    from gguf import LlamaFileType

    if not isinstance(value, int) or isinstance(value, bool):
        return None
    try:
        name = LlamaFileType(value).name
    except ValueError:
        return None
    if name == "GUESSED":
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")
