"""`verdict bench`: this engine against the slow ways, measured in one run on one model.

Methods, all with the same loaded weights and backend settings:
  (a) naive      the full prompt for each document and question, one at a time, no cache,
                 the model's ordinary forward pass (output head on every position)
  (b) generate   the model generates up to 32 tokens (greedy, mlx-lm's KV cache) for "answer yes
                 or no, then one sentence why" and the first yes/no word is parsed, the way it
                 is commonly done
  (c) engine     `Classifier.score_iter`: shared parts cached, documents batched, last position only
Scenarios: one short question; a long instructions part (a ~700-token rubric with worked
examples); five questions per document; and one and five questions with each prompt stopped at
the layer the model's general probe reads (`--probe-only`; the engine alone, as the slow methods
would read the same prompts again). The slow methods run on the first `baseline_docs`
documents (they are sequential, so their rate doesn't depend on how many there are); the engine
runs on all of them. Also: a cold start (one short document through `verdict classify` in a new
process, a few times), the peak memory of reading a 200,000-row table as `--table-in` does, peak
memory, and prompt tokens/s of the engine for document lengths
from 128 to 16,384 tokens (past the window size a document is scored as several windows), with
each length's rate as a share of the 512-token rate. And, where a llama.cpp server binary is
found, llama.cpp on the same GGUF and documents for one and five questions (`bench_llama`).
"""
from __future__ import annotations

import json
import re
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from engine.runtime import device

device.start()  # the fast BLAS before MLX, as loading a model does: the baselines get it too

import mlx.core as mx  # noqa: E402

from engine.classifier import Classifier  # noqa: E402
from engine.model.sources import resources_dir  # noqa: E402
from engine.model.prompt import Layout, PromptEncoder, build_template  # noqa: E402
from engine.cli.scenarios import DEFAULT_SCENARIOS, PEER_OF, PROBE_ONLY, QUESTIONS, SCENARIOS  # noqa: E402
from engine.types import Document  # noqa: E402

GENERATE_SUFFIX = " Answer yes or no, then explain why in one sentence."
CURVE_LENGTHS = (128, 256, 512, 1024, 2048, 4096, 16384)


@dataclass
class Measurement:
    scenario: str
    method: str
    documents: int
    seconds: float
    prompt_tokens: int
    questions: int

    @property
    def docs_per_second(self) -> float:
        return self.documents / self.seconds

    @property
    def tokens_per_second(self) -> float:
        return self.prompt_tokens / self.seconds


def corpus_text(folder: Optional[Path] = None) -> list[str]:
    """Real text: the user's folder, or the Debian package descriptions shipped in resources/."""
    if folder:
        from engine.intake import load_documents

        return [d.text for d in load_documents([folder]) if d.text.strip() and not d.error]
    texts = []
    for path in sorted((resources_dir() / "labeled").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            texts.append(json.loads(line)["text"])
    return texts


def documents_of_length(clf: Classifier, texts: Sequence[str], n: int, tokens: int) -> list[Document]:
    """`n` documents of `tokens` tokens each, cut from the running text of `texts`."""
    tok = clf.backend.lm.tokenizer
    stream: list[int] = []
    docs: list[Document] = []
    i = 0
    while len(docs) < n:
        while len(stream) < tokens:
            stream += tok.encode("\n\n" + texts[i % len(texts)], special=False)
            i += 1
        docs.append(Document(id=f"doc{len(docs)}", text=tok.decode(stream[:tokens]).strip()))
        stream = stream[tokens:]
    return docs


def run_engine(clf: Classifier, questions: Sequence[str], docs: list[Document], probe_only: bool = False
               ) -> tuple[float, int]:
    """Seconds and prompt tokens of `Classifier.score_iter` over `docs`; `probe_only`: each prompt
    stopped at the layer the questions' calibrators read (`probe_only_options`)."""
    options = probe_only_options(clf, questions) if probe_only else {}
    start = time.perf_counter()
    tokens = sum(v.tokens for v in clf.score_iter(list(questions), docs, **options))
    return time.perf_counter() - start, tokens


def probe_only_options(clf: Classifier, questions: Sequence[str]) -> dict:
    """`score_iter`'s options for `Pipeline.run(answer=False)`'s pass: the layers the questions'
    calibrators read, and their window scorer. Raises ValueError where one needs the margin."""
    from engine.pipeline import Pipeline, calibrated_windows, probe_layers, stops_at_probes

    pipeline = Pipeline(clf, save=False)
    cals = {q: pipeline.calibrator(q) for q in questions}
    if not stops_at_probes(cals):
        raise ValueError("no probe on a hidden layer decides for this model (no general probe ships for it)")
    return {"layers": probe_layers(cals), "answer": False, "window_score": calibrated_windows(cals)}


def run_naive(clf: Classifier, questions: Sequence[str], docs: list[Document]) -> tuple[float, int]:
    model, tokens = clf.backend.lm.model, 0
    start = time.perf_counter()
    for doc in docs:
        for q in questions:
            ids = clf.encoder.encode(q, doc.text).all
            logits = model(mx.array([ids]))[0, -1]  # every position through the head
            logp = logits - mx.logsumexp(logits)
            mx.eval(mx.logsumexp(logp[mx.array(clf.backend.yes_ids)]) - mx.logsumexp(logp[mx.array(clf.backend.no_ids)]))
            tokens += len(ids)
    return time.perf_counter() - start, tokens


def generate_greedy(model, ids: Sequence[int], max_tokens: int, stop: set[int]) -> list[int]:
    """Up to `max_tokens` greedy tokens after `ids`, as mlx-lm's `generate_step` makes them
    (the prompt through the model once into mlx-lm's KV cache, then one token at a time), without
    importing `mlx_lm.generate`, which pulls in transformers for its tokenizer types."""
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    logits = model(mx.array([list(ids)]), cache=cache)[:, -1]
    out: list[int] = []
    while len(out) < max_tokens:
        token = int(mx.argmax(logits, axis=-1).item())
        if token in stop:
            break
        out.append(token)
        logits = model(mx.array([[token]]), cache=cache)[:, -1]
    return out


def run_generate(clf: Classifier, questions: Sequence[str], docs: list[Document], max_tokens: int = 32):
    """Generate an answer per document and question and parse the first yes/no word."""

    layout = Layout(name="generate", system=clf.layout.system, user=clf.layout.user + GENERATE_SUFFIX)
    encoder = PromptEncoder(build_template(layout, clf.backend.lm.tokenizer, clf.instructions), clf.backend.lm.tokenizer)
    eos = {clf.backend.lm.tokenizer.backend.token_to_id(t) for t in (clf.backend.lm.tokenizer.eos_token, "<|im_end|>")} - {None}
    tokens = 0
    parsed = 0
    start = time.perf_counter()
    for doc in docs:
        for q in questions:
            ids = encoder.encode(q, doc.text).all
            out = generate_greedy(clf.backend.lm.model, ids, max_tokens, eos)
            parsed += bool(re.search(r"\b(yes|no)\b", clf.backend.lm.tokenizer.decode(out), re.IGNORECASE))
            tokens += len(ids)
    return time.perf_counter() - start, tokens, parsed


def cold_start(model: Optional[str] = None, runs: int = 3) -> list[tuple[float, float]]:
    """(seconds, peak RSS in MiB) of `runs` cold `verdict classify` runs of one short document,
    each in a new process, as a user at a shell starts it (one question, default options)."""
    import os
    import subprocess
    import tempfile

    import engine

    env = dict(os.environ)
    root = str(Path(engine.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    figures = []
    with tempfile.TemporaryDirectory(prefix="verdict-cold-") as folder:
        doc = Path(folder) / "one.txt"
        doc.write_text("A command-line tool that compresses files with the zstd algorithm.\n", encoding="utf-8")
        command = [sys.executable, "-m", "engine.cli", "classify", "-q", QUESTIONS[0], str(doc)]
        if model:
            command += ["--model", str(model)]
        for _ in range(runs):
            with tempfile.TemporaryFile() as err:
                start = time.perf_counter()
                child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, env=env)
                _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS, not the largest so far
                seconds = time.perf_counter() - start
                child.returncode = os.waitstatus_to_exitcode(status)
                if child.returncode != 0:
                    err.seek(0)
                    raise RuntimeError(f"verdict classify failed: {err.read().decode(errors='replace').strip()[-500:]}")
            peak = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
            figures.append((seconds, peak))
    return figures


TABLE_ROWS = 200_000

_READ_TABLE = """
import sys
from engine.intake.table import iter_table_documents, open_table
documents = list(iter_table_documents(open_table(sys.argv[1]), ["text"], "id"))  # as `--table-in` holds them
print(len(documents))
"""


def table_intake(rows: int = TABLE_ROWS) -> tuple[int, float, float]:
    """(rows read, seconds, peak RSS in MiB) of reading a CSV of `rows` support-ticket-like rows
    the way `verdict classify --table-in` does, in a new process (no model: the table alone)."""
    import csv
    import os
    import subprocess
    import tempfile

    import engine

    env = dict(os.environ)
    root = str(Path(engine.__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    with tempfile.TemporaryDirectory(prefix="verdict-table-") as folder:
        path = Path(folder) / "tickets.csv"
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "customer", "text"])
            for i in range(rows):
                writer.writerow([f"T-{i}", f"customer {i % 977}", f"Ticket {i}: my order #{i * 7 % 10007} has not "
                                 f"arrived and the tracking page says, \"label created\". Please advise."])
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            start = time.perf_counter()
            child = subprocess.Popen([sys.executable, "-c", _READ_TABLE, str(path)], stdout=out, stderr=err, env=env)
            _, status, usage = os.wait4(child.pid, 0)
            seconds = time.perf_counter() - start
            out.seek(0)
            err.seek(0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise RuntimeError(f"reading the table failed: {err.read().decode(errors='replace').strip()[-500:]}")
            read = int(out.read().decode().strip() or 0)
    peak = usage.ru_maxrss / (1024 * 1024) if sys.platform == "darwin" else usage.ru_maxrss / 1024
    return read, seconds, peak


def linear_multiply_adds(model) -> int:
    """Multiply-adds a token takes in the model's linear layers below the output head (the head reads
    the last position only; embeddings are a lookup): the work that grows with the prompt."""
    import mlx.nn as nn

    from engine.runtime.numpy_blas import NumpyLinear

    total = 0
    for name, module in model.named_modules():
        if name.split(".")[-1] == "lm_head" or not isinstance(module, (nn.Linear, nn.QuantizedLinear, NumpyLinear)):
            continue
        rows, columns = module["weight"].shape
        total += rows * (columns * 32 // module.bits if isinstance(module, nn.QuantizedLinear) else columns)
    return total


def gemm_gflops(size: int = 2048, repeats: int = 5) -> float:
    """This machine's float32 GEMM rate through the BLAS the model's layers use (best of `repeats`
    products of two size x size matrices)."""
    from engine.runtime.quantized import times_transposed

    a = mx.random.normal((size, size), dtype=mx.float32)
    b = mx.random.normal((size, size), dtype=mx.float32)
    mx.eval(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        mx.eval(times_transposed(a, b))
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 / best / 1e9


def peak_rss_mib() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def bench(
    model: Optional[str] = None,
    documents: int = 200,
    baseline_docs: int = 20,
    doc_tokens: int = 150,
    folder: Optional[Path] = None,
    curve_tokens: int = 8192,
    scenarios: Sequence[str] = DEFAULT_SCENARIOS,
    curve_lengths: Sequence[int] = CURVE_LENGTHS,
    cold_starts: int = 3,
    table_rows: int = TABLE_ROWS,
    llama_cpp: bool = True,
    out=sys.stdout,
) -> dict:
    """Run the benchmark and print its tables; return the figures as a dict. With `llama_cpp`,
    llama.cpp's server on the same GGUF is measured too when one is found (`bench_llama`)."""
    from engine.runtime import device as backend

    cold = cold_start(model, cold_starts) if cold_starts else []
    table = table_intake(table_rows) if table_rows else None
    clf = Classifier.load(model)
    texts = corpus_text(folder)
    docs = documents_of_length(clf, texts, documents, doc_tokens)
    base = docs[: min(baseline_docs, documents)]
    rubric = (resources_dir() / "bench" / "rubric.md").read_text(encoding="utf-8")
    print(f"model: {clf.model_name} ({clf.backend.lm.path.name}); device: {mx.default_device()}; "
          f"dtype: {clf.backend.lm.compute_dtype}; BLAS: {backend.blas_in_use() or 'MLX default'}", file=out)
    print(f"documents: {documents} x {doc_tokens} tokens (baselines on the first {len(base)}); "
          f"instructions rubric: {len(clf.backend.lm.tokenizer.encode(rubric))} tokens", file=out)
    if cold:
        seconds = sorted(c[0] for c in cold)
        print(f"cold start (`verdict classify` of one short document in a new process, {len(cold)} runs): "
              f"median {seconds[len(seconds) // 2]:.2f} s [{', '.join(f'{c[0]:.2f}' for c in cold)}], "
              f"peak RSS {max(c[1] for c in cold):.0f} MiB", file=out)
    if table:
        print(f"a table of {table[0]:,} rows read as `--table-in` reads it (a new process, no model): "
              f"{table[1]:.1f} s, peak RSS {table[2]:.0f} MiB", file=out)
    run_engine(clf, QUESTIONS[:1], docs[:4])  # warm-up: first-call allocations

    results: list[Measurement] = []
    for key in scenarios:
        name, questions = SCENARIOS[key]
        clf.set_instructions(rubric if key == "rubric" else "")
        if key in PROBE_ONLY:
            try:
                run_engine(clf, questions, docs[:4], probe_only=True)  # warm-up: the content-free state
            except ValueError as exc:
                print(f"{name}: skipped ({exc})", file=out)
                continue
            secs, toks = run_engine(clf, questions, docs, probe_only=True)
            results.append(Measurement(name, "(c) engine", len(docs), secs, toks, len(questions)))
            continue
        secs, toks = run_naive(clf, questions, base)
        results.append(Measurement(name, "(a) naive", len(base), secs, toks, len(questions)))
        secs, toks, _ = run_generate(clf, questions, base)
        results.append(Measurement(name, "(b) generate+parse", len(base), secs, toks, len(questions)))
        secs, toks = run_engine(clf, questions, docs)
        results.append(Measurement(name, "(c) engine", len(docs), secs, toks, len(questions)))
    clf.set_instructions("")

    if results:
        print(format_results(results), file=out)
    peer = llama_cpp_comparison(clf, base, results, scenarios, out) if llama_cpp else None
    compute = compute_rates(clf, docs, results, peer, out)
    curve = length_curve(clf, texts, curve_tokens, curve_lengths)
    print(f"\nengine prompt tokens/s by document length (one question; windows of {clf.window_tokens} tokens)",
          file=out)
    print(format_curve(curve), file=out)
    print(f"\npeak memory (process RSS): {peak_rss_mib():.0f} MiB", file=out)
    return {
        "results": [m.__dict__ | {"docs_per_second": m.docs_per_second, "tokens_per_second": m.tokens_per_second}
                    for m in results],
        "curve": curve,
        "peak_rss_mib": peak_rss_mib(),
        "cold_start": [{"seconds": secs, "peak_rss_mib": peak} for secs, peak in cold],
        "table_intake": None if table is None else {"rows": table[0], "seconds": table[1], "peak_rss_mib": table[2]},
        "llama_cpp": peer,
        "compute": compute,
    }


def llama_cpp_comparison(clf: Classifier, docs: list[Document], results: list[Measurement],
                         scenarios: Sequence[str], out) -> Optional[list[dict]]:
    """llama.cpp's docs/s on the same GGUF and documents for one and five questions, and the
    engine's rate as a multiple of it; one line saying why when it can't be measured."""
    from engine.cli.bench_llama import SERVER_ENV, llama_cpp_seconds, llama_server_binary
    from engine.model.gguf_file import is_gguf

    runs_for = [key for key in ("short", "five") if any(PEER_OF.get(s) == key for s in scenarios)]
    wanted = [SCENARIOS[key] for key in runs_for]
    path = clf.backend.lm.path
    binary = llama_server_binary()
    why = ("no llama-server (set " + SERVER_ENV + " to llama.cpp's llama-server binary)" if not binary
           else f"{path.name} is not a GGUF file" if not (path.is_file() and is_gguf(path))
           else "neither the short nor the five-question scenario ran" if not wanted else "")
    if why:
        print(f"\nllama.cpp comparison: skipped ({why})", file=out)
        return None
    try:
        runs = llama_cpp_seconds(binary, path, [q for _, q in wanted], docs,
                                 lambda question, text: clf.encoder.encode(question, text).all)
    except (RuntimeError, OSError, ValueError) as exc:  # OSError: also HTTP errors and timeouts
        print(f"\nllama.cpp comparison: failed ({exc})", file=out)
        return None
    engine_rate = {m.scenario: m.docs_per_second for m in results if m.method.startswith("(c)")}
    run_of = dict(zip(runs_for, runs))
    rows = []
    print(f"\nllama.cpp ({Path(binary).name}, the same GGUF and prompt tokens, one at a time, "
          f"{len(docs)} documents, a fresh server per scenario):", file=out)
    for key in [s for s in SCENARIOS if s in scenarios and PEER_OF.get(s) in run_of]:
        name, run = SCENARIOS[key][0], run_of[PEER_OF[key]]
        if name not in engine_rate:
            continue  # skipped: no probe decides for this model
        rate = len(docs) / run.seconds
        ratio = engine_rate[name] / rate
        rows.append({"scenario": name, "documents": len(docs), "seconds": run.seconds, "docs_per_second": rate,
                     "engine_ratio": ratio, "prompt_tokens": run.prompt_tokens,
                     "evaluated_tokens": run.evaluated_tokens})
        read = (f"  (it evaluated {run.evaluated_tokens:,} of the prompts' {run.prompt_tokens:,} tokens)"
                if run.evaluated_tokens >= 0 else "")
        print(f"  {name:18s}  llama.cpp {rate:6.2f} docs/s  engine {engine_rate.get(name, float('nan')):6.2f} "
              f"docs/s  ratio {ratio:4.2f}x{read}", file=out)
    return rows


def compute_rates(clf: Classifier, docs: list[Document], results: list[Measurement], peer: Optional[list[dict]],
                  out) -> dict:
    """The one-question scenario's work as GFLOP/s of the linear layers (2 flops a multiply-add), the
    engine's (each prompt's document and question tail: the instructions before them are read once)
    and llama.cpp's (the prompt tokens it says it evaluated), against this machine's float32 GEMM."""
    one_question, questions = SCENARIOS["short"]
    work = linear_multiply_adds(clf.backend.lm.model)
    gemm = gemm_gflops()
    read = 0
    for doc in docs:
        prompt = clf.encoder.encode(questions[0], doc.text)
        read += len(prompt.document) + len(prompt.tail)
    engine = next((2 * work * read / m.seconds / 1e9 for m in results
                   if m.method.startswith("(c)") and m.scenario == one_question and m.documents == len(docs)), None)
    row = next((r for r in peer or () if r["scenario"] == one_question and r["evaluated_tokens"] >= 0), None)
    llama = 2 * work * row["evaluated_tokens"] / row["seconds"] / 1e9 if row else None
    print(f"\ncompute: {work / 1e6:.1f} M multiply-adds a prompt token in the linear layers; float32 GEMM "
          f"through the same BLAS {gemm:.0f} GFLOP/s (2048 x 2048, best of 5)", file=out)
    for name, rate in (("engine", engine), ("llama.cpp", llama)):
        if rate is not None:
            print(f"  {one_question:18s}  {name:9s} {rate:6.1f} GFLOP/s of that work ({rate / gemm:.0%} of the GEMM rate)",
                  file=out)
    return {"multiply_adds_per_token": work, "gemm_gflops": gemm, "engine_gflops": engine, "llama_cpp_gflops": llama}


def length_curve(
    clf: Classifier, texts: Sequence[str], budget: int, lengths: Sequence[int] = CURVE_LENGTHS
) -> list[tuple[int, int, float, float]]:
    """(length, documents, seconds, prompt tokens/s) per document length, one question."""
    rows = []
    for length in lengths:
        n = max(1, budget // length)
        docs = documents_of_length(clf, texts, n, length)
        secs, toks = run_engine(clf, QUESTIONS[:1], docs)
        rows.append((length, n, secs, toks / secs))
    return rows


def format_curve(curve: list[tuple[int, int, float, float]]) -> str:
    """The length curve as a table, each rate also as a share of the 512-token rate."""
    at_512 = next((rate for length, _, _, rate in curve if length == 512), None)
    lines = ["  tokens  docs  seconds  tokens/s  vs 512"]
    for length, n, secs, rate in curve:
        share = f"{rate / at_512:6.0%}" if at_512 else ""
        lines.append(f"  {length:6d}  {n:4d}  {secs:7.2f}  {rate:8.0f}  {share:>6s}")
    return "\n".join(lines)


def format_results(results: list[Measurement]) -> str:
    lines = ["scenario            method               docs  docs/s  prompt tok/s   c/a    c/b",
             "------------------  -------------------  ----  ------  ------------  -----  -----"]
    by_key = {(m.scenario, m.method[:3]): m for m in results}
    for m in results:
        ratio_a = ratio_b = ""
        if m.method.startswith("(c)"):
            a, b = by_key.get((m.scenario, "(a)")), by_key.get((m.scenario, "(b)"))
            ratio_a = f"{m.docs_per_second / a.docs_per_second:5.1f}" if a else ""
            ratio_b = f"{m.docs_per_second / b.docs_per_second:5.1f}" if b else ""
        lines.append(f"{m.scenario:18s}  {m.method:19s}  {m.documents:4d}  {m.docs_per_second:6.2f}  "
                     f"{m.tokens_per_second:12.0f}  {ratio_a:>5s}  {ratio_b:>5s}")
    return "\n".join(lines)
