"""Print the default model's margins and general-probe probabilities on six short documents as JSON.

    python scripts/gpu_config_margins.py cpu-float32 [MODEL]  # MLX's CPU device: the float32 path
    python scripts/gpu_config_margins.py gpu-config [MODEL]   # the GPU's preparation: quantized
        # weights, float16 compute (on the GPU where MLX has one, else VERDICT_FORCE_GPU_CONFIG=1)

MODEL defaults to the installed default model.

One mode per process, because the weights are prepared once per load for one device. The test
`tests/test_gpu_config.py` and the device script `scripts/device_check.sh` compare the two.
"""
from __future__ import annotations

import json
import sys
from typing import Optional

from engine.runtime import device

QUESTION = "Does this ask the reader to pay money?"
DOCUMENTS = [
    "Invoice 4471: EUR 312.50 is due by Friday. Please pay by bank transfer.",
    "Grandma's apple pie: peel six apples, add cinnamon and bake for forty minutes.",
    "Your subscription renews on 1 March; the card ending 4242 will be charged $9.99.",
    "The meeting moved to room 3B on Thursday at ten. Bring the slides.",
    "Reminder: the parking fine of 40 dollars must be paid within 14 days.",
    "The hiking trail follows the river for five miles before climbing to the ridge.",
]


def main(mode: str, model: Optional[str] = None) -> int:
    if mode not in ("cpu-float32", "gpu-config"):
        print(f"usage: {sys.argv[0]} cpu-float32|gpu-config [MODEL]", file=sys.stderr)
        return 2
    device.start()
    import mlx.core as mx

    if mode == "cpu-float32":
        mx.set_default_device(mx.cpu)  # on a machine with a GPU too: the reference is the CPU's float32 path
    from engine import Classifier

    clf = Classifier.load(model)
    margins = [v.margin for v in clf.score(QUESTION, DOCUMENTS)]
    probabilities = [v.probability for v in clf.classify(QUESTION, DOCUMENTS)]
    print(json.dumps({"mode": mode, "device": str(mx.default_device()), "dtype": str(clf.backend.lm.compute_dtype),
                      "margins": margins, "probabilities": probabilities}))
    return 0


if __name__ == "__main__":
    sys.exit(main(*(sys.argv[1:3] or [""])))
