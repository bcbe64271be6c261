"""The local model runtime: MLX and mlx-lm, and nothing above them.

Owns: where models come from (`sources`, no MLX), which device MLX runs on and the optional
fast BLAS (`device`), our CPU kernels and the model classes that use them (`kernels`), model
loading (`loading`), GGUF files checked in Python (`gguf_file`, also for the model list), their tensor types turned into
MLX's (`gguf_quants`) and their models built (`gguf`), the tokenizer built from metadata
(`tokenizer`), the architecture allow-list (`architectures`, no MLX), model fingerprints and
presets (`fingerprint`), prompt layouts cut into cacheable segments (`prompt`), the segment KV
cache (`kv`) and the local `ScoringBackend` (`local`).
This is the only package that knows mlx-lm's internals.
May import: MLX, mlx-lm, gguf-py, huggingface_hub, tokenizers, jinja2, numpy, tqdm, `engine.types`,
`engine.scoring`, `engine.folders`, `engine.atomic`.
Never Qt, never `engine.intake`, `engine.confidence` or the interfaces.
"""
