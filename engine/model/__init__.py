"""What a model is, without running it: no MLX, no weights in memory.

Owns: where models come from (`sources`: the embedded default, a `--model` value made a local
path; `catalog`: models already on disk; `hub`: Hugging Face downloads), the one GGUF header
parser (`gguf_file`), the architecture allow-list (`architectures`), the one content fingerprint
of a model and its preset (`fingerprint`), the tokenizer built from metadata (`tokenizer`, with
its chat template in `chat_template`), prompt layouts cut into cacheable segments (`prompt`), a
model's facts read without weights (`facts`, for remote servers) and the recommended models
(`recommended`).
May import: gguf-py, huggingface_hub, tokenizers (transformers for a sentencepiece-only folder),
jinja2, numpy, tqdm, `engine.folders`, `engine.atomic`. Never MLX or mlx-lm, never
`engine.runtime`, never Qt, `engine.intake`, `engine.confidence` or the interfaces.
"""
