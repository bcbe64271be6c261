#!/usr/bin/env python3
"""Write a re-quantized copy of a GGUF model: every Q4_1 tensor is dequantized and quantized again
as Q4_0 (or Q8_0) with gguf-py; everything else is copied. Used to check that a label-free
threshold holds on a model variant whose weights differ.

Usage: python scripts/requantize_gguf.py IN.gguf OUT.gguf [--to Q4_0]
"""
from __future__ import annotations

import argparse
import sys

import gguf
import numpy as np


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("source")
    parser.add_argument("target")
    parser.add_argument("--to", default="Q4_0", choices=("Q4_0", "Q8_0"))
    args = parser.parse_args()
    to = getattr(gguf.GGMLQuantizationType, args.to)
    reader = gguf.GGUFReader(args.source)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    writer = gguf.GGUFWriter(args.target, arch=arch, endianess=reader.endianess)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), kind, sub_type=sub)
    tensors = []
    for tensor in reader.tensors:
        data, qtype = tensor.data, tensor.tensor_type
        if qtype == gguf.GGMLQuantizationType.Q4_1:
            weights = gguf.quants.dequantize(data, qtype)
            data, qtype = gguf.quants.quantize(weights.astype(np.float32), to), to
        tensors.append((tensor.name, data, qtype))
        writer.add_tensor_info(tensor.name, data.shape, data.dtype, data.nbytes, qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, data, _ in tensors:
        writer.write_tensor_data(data)
    writer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
