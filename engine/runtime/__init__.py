"""The local model runtime: MLX and mlx-lm, and nothing above them.

Owns: which device MLX runs on and the optional fast BLAS (`device`, `numpy_blas`), our CPU
kernels and the model classes that use them (`kernels`, `model_classes`), model loading
(`loading`), GGUF tensor types turned into MLX's (`gguf_quants`) and GGUF models built (`gguf`),
converted weights kept in the cache (`weight_cache`), the segment KV cache (`kv`), the local
`ScoringBackend` (`local`) and a model written as an MLX folder (`export`).
This is the only package that knows MLX and mlx-lm's internals; what needs no MLX (files,
tokenizer, prompts, fingerprints) lives in `engine.model`.
May import: MLX, mlx-lm, gguf-py, numpy, `engine.model`, `engine.types`, `engine.scoring`,
`engine.folders`, `engine.atomic`.
Never Qt, never `engine.intake`, `engine.confidence` or the interfaces.
"""
