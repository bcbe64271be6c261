"""What a GGUF file is, from its header: magic bytes, architecture, quantization, name.

gguf-py's `GGUFReader` parses every metadata value, one numpy view per token of the
vocabulary (3.9 s for the default model's 49k tokens on a 2-core machine), which is too slow
to list a folder of models. This reader walks the same layout with gguf-py's own type codes
and enums but only decodes scalars and strings; arrays are skipped by their sizes. It reads
the header and tensor table, never tensor data, and checks each length against the file size.
Full validation before loading is `engine.runtime.gguf`'s job.
"""
from __future__ import annotations

import mmap
import os
import struct
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

GGUF_MAGIC = b"GGUF"
_MAX_KV = 1 << 20  # far above any real file; a bigger count is a damaged header
_MAX_TENSORS = 1 << 20
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class GGUFHeaderError(ValueError):
    """The file starts like a GGUF but its header can't be read; the message says where."""


@dataclass(frozen=True)
class GGUFInfo:
    """Facts from a GGUF header."""

    architecture: Optional[str]
    quant: Optional[str]  # "Q4_K_M" from general.file_type, else the most common weight type
    name: Optional[str]  # general.name
    tensor_types: tuple[str, ...]  # every tensor type in the file, sorted


def is_gguf(path: Union[str, os.PathLike]) -> bool:
    """True when the file starts with the GGUF magic bytes (whatever its name)."""
    try:
        with open(path, "rb") as fh:
            return fh.read(4) == GGUF_MAGIC
    except OSError:
        return False


class _Cursor:
    def __init__(self, buf: Any, size: int) -> None:
        self.buf, self.size, self.pos = buf, size, 0

    def take(self, n: int) -> int:
        start = self.pos
        if n < 0 or start + n > self.size:
            raise GGUFHeaderError(f"header runs past the end of the file (offset {start}, {n} bytes)")
        self.pos += n
        return start

    def scalar(self, fmt: str) -> Any:
        return struct.unpack_from(fmt, self.buf, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        length = self.scalar("<Q")
        start = self.take(length)
        return bytes(self.buf[start:start + length]).decode("utf-8", errors="replace")

    def skip_value(self, vtype: int) -> None:
        if vtype in _SCALARS:
            self.take(struct.calcsize(_SCALARS[vtype]))
        elif vtype == _STRING:
            self.take(self.scalar("<Q"))
        elif vtype == _ARRAY:
            itype, count = self.scalar("<I"), self.scalar("<Q")
            if itype in _SCALARS:
                self.take(struct.calcsize(_SCALARS[itype]) * count)
            else:
                for _ in range(count):
                    self.skip_value(itype)
        else:
            raise GGUFHeaderError(f"unknown metadata value type {vtype} at offset {self.pos}")


def read_gguf_info(path: Union[str, os.PathLike]) -> GGUFInfo:
    """The architecture, quantization and name of a GGUF file, from its header only."""
    import gguf

    path = Path(path)
    size = path.stat().st_size
    if size < 24:
        raise GGUFHeaderError(f"{path.name}: too short for a GGUF file ({size} bytes)")
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        cur = _Cursor(buf, size)
        if bytes(buf[cur.take(4):4]) != GGUF_MAGIC:
            raise GGUFHeaderError(f"{path.name}: not a GGUF file")
        version = cur.scalar("<I")
        if version not in (2, 3):
            raise GGUFHeaderError(f"{path.name}: GGUF version {version} is not supported (2 or 3)")
        n_tensors, n_kv = cur.scalar("<Q"), cur.scalar("<Q")
        if n_kv > _MAX_KV or n_tensors > _MAX_TENSORS:
            raise GGUFHeaderError(f"{path.name}: implausible header ({n_kv} metadata keys, {n_tensors} tensors)")
        wanted = {"general.architecture", "general.file_type", "general.name"}
        meta: dict[str, Any] = {}
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.scalar("<I")
            if key in wanted and vtype == _STRING:
                meta[key] = cur.string()
            elif key in wanted and vtype in _SCALARS:
                meta[key] = cur.scalar(_SCALARS[vtype])
            else:
                cur.skip_value(vtype)
        weight_types: Counter[str] = Counter()
        all_types: set[str] = set()
        for _ in range(n_tensors):
            cur.string()
            n_dims = cur.scalar("<I")
            if n_dims > 8:
                raise GGUFHeaderError(f"{path.name}: a tensor with {n_dims} dimensions")
            cur.take(8 * n_dims)
            raw_type = cur.scalar("<I")
            cur.take(8)
            try:
                name = gguf.GGMLQuantizationType(raw_type).name
            except ValueError:
                name = f"type {raw_type}"
            all_types.add(name)
            if n_dims >= 2:
                weight_types[name] += 1
    return GGUFInfo(
        architecture=meta.get("general.architecture"),
        quant=_file_type_name(meta.get("general.file_type")) or _most_common(weight_types),
        name=meta.get("general.name"),
        tensor_types=tuple(sorted(all_types)),
    )


def _file_type_name(value: Any) -> Optional[str]:
    import gguf

    if not isinstance(value, int):
        return None
    try:
        name = gguf.LlamaFileType(value).name
    except ValueError:
        return None
    if name == "GUESSED":
        return None
    return name.removeprefix("MOSTLY_").removeprefix("ALL_")


def _most_common(counter: Counter) -> Optional[str]:
    return counter.most_common(1)[0][0] if counter else None
