#!/usr/bin/env bash
# The real default model on a lent NVIDIA GPU, through MLX's CUDA backend: `verdict bench` (the
# engine against stock mlx-lm prefill and generate-then-parse on the same prompts, and the cold
# start) and the GPU configuration's margins against the CPU's float32 path.
#
# A lent machine reaches no network and takes at most 64 MiB per call, while MLX's CUDA wheel is
# 90 MB and the default model 98 MB. So the files travel in parts over several calls:
#
#   here:        scripts/device_check.sh stage            # wheels and model into .device/part-*
#   per part:    scripts/device_check.sh receive .device/part-aa    (carry: [".device/part-aa"])
#                ... one call per part, back to back (a warm machine keeps .device-recv/ between calls)
#   last:        scripts/device_check.sh run              # checks, installs, measures; results in $OUT
#
# `run` takes about 3 minutes on an H100 (most of it the CPU's float32 reference and the cold
# starts) and writes $OUT/summary.txt, $OUT/bench.txt, $OUT/bench.json, $OUT/gpu_config.json.
set -euo pipefail
cd "$(dirname "$0")/.."

STAGE=.device
RECEIVED=.device-recv
PART_BYTES=$((50 * 1024 * 1024))  # with the tree itself (~7 MB), under the 64 MiB a call carries
PY_VERSION=3.12                    # the device image's python3
WHEELS=(mlx==0.32.4 mlx-cuda-13==0.32.4 mlx-lm==0.32.2 gguf==0.19.0)

stage() {
    local python=${PYTHON:-.venv/bin/python}
    [ -x "$python" ] || python=/work/main/.venv/bin/python
    rm -rf "$STAGE" && mkdir -p "$STAGE/files/wheels"
    "$python" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
        --python-version "$PY_VERSION" --implementation cp \
        --platform manylinux_2_35_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$STAGE/files/wheels" "${WHEELS[@]}"
    model=$(PYTHONPATH=$PWD "$python" -m engine.cli models fetch-default)
    cp -p "$model" "$STAGE/files/"
    (cd "$STAGE/files" && sha256sum wheels/*.whl ./*.gguf > SHA256SUMS)
    tar -C "$STAGE" -cf - files | split -b "$PART_BYTES" - "$STAGE/part-"
    rm -rf "$STAGE/files"
    echo "staged $(ls "$STAGE" | wc -l) parts in $STAGE/ (make one device call per part, then 'run'):"
    for part in "$STAGE"/part-*; do
        echo "  carry [\"$part\"]  command: scripts/device_check.sh receive $part"
    done
}

receive() {
    local part=$1
    [ -f "$part" ] || { echo "device_check: no part $part (name it in carry)" >&2; exit 2; }
    mkdir -p "$RECEIVED"
    cp "$part" "$RECEIVED/"
    echo "received $(basename "$part"); now here: $(ls "$RECEIVED" | tr '\n' ' ')"
}

run() {
    local out=${OUT:-/tmp/device-check-out} python=${PYTHON:-python3}
    mkdir -p "$out"
    local work=/tmp/verdict-device
    rm -rf "$work" && mkdir -p "$work"
    cat "$RECEIVED"/part-* | tar -C "$work" -xf -
    (cd "$work/files" && sha256sum -c --quiet SHA256SUMS) || { echo "device_check: a part is missing or damaged" >&2; exit 1; }
    "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$work/site" "$work"/files/wheels/*.whl
    mkdir -p resources/models && cp "$work"/files/*.gguf resources/models/
    # The image's CUDA 13 libraries (cuBLAS, NVRTC, cuDNN) live in its own site-packages/nvidia.
    local nvidia_libs
    nvidia_libs=$("$python" -c 'import glob, site; print(":".join(sorted(glob.glob(site.getsitepackages()[0] + "/nvidia/*/lib"))))')
    export PYTHONPATH="$PWD:$work/site" LD_LIBRARY_PATH="$nvidia_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export VERDICT_DATA_DIR="$work/data" VERDICT_CACHE_DIR="$work/cache" PYTHONUNBUFFERED=1
    {
        echo "== $(date -u +%FT%TZ) $(nvidia-smi -L 2>/dev/null | head -1)"
        "$python" -c 'import mlx.core as mx; print("mlx", mx.__version__, "default device:", mx.default_device()); \
            a = mx.ones((1024, 1024), dtype=mx.float16); mx.eval(a @ a); print("a float16 matmul ran on", mx.default_device())'
        echo "== verdict bench (the engine, stock mlx-lm prefill and generate+parse; cold starts)"
        timeout 300 "$python" -m engine.cli bench --documents 200 --baseline-docs 20 --cold-starts 3 \
            --curve-tokens 8192 --json "$out/bench.json" | tee "$out/bench.txt" || echo "(verdict bench failed: exit $?)"
        echo "== the GPU's float16 margins against the CPU's float32 path (6 documents)"
        local gpu cpu
        gpu=$(timeout 120 "$python" scripts/gpu_config_margins.py gpu-config | tail -1) || echo "(gpu-config failed)"
        cpu=$(timeout 120 "$python" scripts/gpu_config_margins.py cpu-float32 | tail -1) || echo "(cpu-float32 failed)"
        printf '{"gpu": %s, "cpu": %s}\n' "${gpu:-null}" "${cpu:-null}" > "$out/gpu_config.json"
        "$python" -c 'import json, sys; r = json.load(open(sys.argv[1])); g, c = r["gpu"], r["cpu"]; \
            print(g["device"], g["dtype"], "vs", c["device"], c["dtype"]); \
            print("max |margin difference|: %.5f; max |probability difference|: %.5f" % ( \
                max(abs(a - b) for a, b in zip(g["margins"], c["margins"])), \
                max(abs(a - b) for a, b in zip(g["probabilities"], c["probabilities"]))))' "$out/gpu_config.json" \
            || echo "(no comparison: a side failed)"
        echo "== tests/test_gpu_config.py (the suite's own check, on this GPU)"
        timeout 200 "$python" -m pytest -q -p no:cacheprovider tests/test_gpu_config.py || echo "(the test failed: exit $?)"
    } 2>&1 | tee "$out/summary.txt"
}

case "${1:-}" in
    stage) stage ;;
    receive) receive "${2:?usage: device_check.sh receive PART}" ;;
    run) run ;;
    *) echo "usage: scripts/device_check.sh stage | receive PART | run" >&2; exit 2 ;;
esac
