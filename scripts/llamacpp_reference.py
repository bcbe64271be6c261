#!/usr/bin/env python3
"""External reference from llama.cpp (via llama-cpp-python) for a GGUF model.

Usage (llama-cpp-python in its own venv: `make .venv-llama-cpp/.installed`):
    .venv-llama-cpp/bin/python scripts/llamacpp_reference.py IN.json OUT.json MODEL.gguf

tests/golden/gemma3_llamacpp.json was made with it (prompts rendered by our plain layout for the
eight samples and two questions; the golden adds each prompt's question and document names).

IN.json:  {"texts": [str, ...], "prompts": [str, ...], "probe_ids": [int, ...]}
OUT.json: {"model", "engine", "tokenization": [{"text", "ids", "ids_no_special"}],
           "prompts": [{"text", "ids", "top20", "at"}]}

Every prompt is evaluated from an empty context: llm.reset() plus an explicit KV/memory
clear, so no KV of an earlier prompt is reused.
"""
import hashlib
import json
import os
import sys

import numpy as np
import llama_cpp
from llama_cpp import Llama

N_CTX = 2048


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def clear_context(llm):
    """Forget every earlier token: reset the Python-side counters and clear the KV memory."""
    llm.reset()
    llm._ctx.kv_cache_clear()  # llama_memory_clear(mem, True)


def last_logits(llm, n_vocab):
    """Raw logits of the last evaluated position, straight from llama_get_logits_ith(-1).

    (llama-cpp-python 0.3.36 no longer copies logits into llm.scores when logits_all=False.)
    """
    ptr = llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(n_vocab,)).astype(np.float64).copy()


def eval_prompt(llm, ids, n_vocab):
    clear_context(llm)
    llm.eval(ids)
    assert llm.n_tokens == len(ids), (llm.n_tokens, len(ids))
    return last_logits(llm, n_vocab)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    in_path, out_path, model_path = sys.argv[1:4]
    with open(in_path, encoding="utf-8") as f:
        spec = json.load(f)
    texts = spec.get("texts", [])
    prompts = spec.get("prompts", [])
    probe_ids = [int(i) for i in spec.get("probe_ids", [])]

    llm = Llama(model_path=model_path, n_ctx=N_CTX, n_batch=N_CTX, logits_all=False,
                verbose=False, n_threads=2)
    n_vocab = llm.n_vocab()

    tokenization = []
    for text in texts:
        b = text.encode("utf-8")
        tokenization.append({
            "text": text,
            "ids": [int(t) for t in llm.tokenize(b, add_bos=False, special=True)],
            "ids_no_special": [int(t) for t in llm.tokenize(b, add_bos=False, special=False)],
        })

    out_prompts = []
    first_logits = None
    for text in prompts:
        ids = [int(t) for t in llm.tokenize(text.encode("utf-8"), add_bos=True, special=True)]
        if len(ids) > N_CTX:
            raise ValueError(f"prompt has {len(ids)} tokens > n_ctx {N_CTX}")
        logits = eval_prompt(llm, ids, n_vocab)
        if first_logits is None:
            first_logits = (ids, logits)
        order = np.argsort(-logits, kind="stable")[:20]
        out_prompts.append({
            "text": text,
            "ids": ids,
            "top20": [[int(i), float(logits[i])] for i in order],
            "at": {str(i): float(logits[i]) for i in probe_ids},
        })

    # Self-check: re-evaluating the first prompt after all the others must give the same logits
    # (shows that no KV of earlier prompts leaks into a later evaluation).
    repeat_check = None
    if first_logits is not None:
        again = eval_prompt(llm, first_logits[0], n_vocab)
        repeat_check = float(np.max(np.abs(again - first_logits[1])))

    out = {
        "model": {"file": os.path.basename(model_path), "sha256": sha256_of(model_path)},
        "engine": f"llama.cpp via llama-cpp-python {llama_cpp.__version__}, n_ctx {N_CTX}, CPU",
        "n_vocab": n_vocab,
        "context_clear": "llm.reset() + llama_memory_clear(mem, True) before each prompt",
        "repeat_max_abs_diff": repeat_check,
        "tokenization": tokenization,
        "prompts": out_prompts,
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
