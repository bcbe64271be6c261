"""The local model runtime: MLX and mlx-lm, and nothing above them.

Owns: where models come from (`sources`, no MLX), which device MLX runs on and the optional
fast BLAS (`device`), our CPU kernels and the model classes that use them (`kernels`), model
loading, GGUF reading and the tokenizer built
from its metadata (`loading`, `gguf`, `tokenizer`), prompt layouts cut into cacheable segments
(`prompt`), the segment KV cache (`kv`) and the local `ScoringBackend` (`local`).
This is the only package that knows mlx-lm's internals; it holds the architecture allow-list.
May import: MLX, mlx-lm, gguf-py, huggingface_hub, tokenizers, jinja2, numpy, `engine.types`, `engine.scoring`.
Never Qt, never `engine.intake`, `engine.confidence` or the interfaces.
"""
