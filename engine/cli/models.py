"""`verdict models …`: list the models on disk, pull one from the hub, fetch the default; and the
download progress shown on stderr when `--model` names a hub repo.

    verdict models list [--format table|json] [--source default|hf|lmstudio|ollama ...]
    verdict models pull org/repo | org/repo:QUANT
    verdict models fetch-default | where
    verdict models export-mlx MODEL OUT_DIR [--dtype float32|float16|bfloat16] [--dequantize]
    verdict models calibrate [--model MODEL] [--max-docs N]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, TextIO

from engine.cli.output import Progress
from engine.model import catalog


def _mb(n: Optional[int]) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


class DownloadProgress:
    """Download progress on stderr: the command line's one bar (`output.Progress`, in bytes) when
    stderr is a terminal, else a start and an end line."""

    def __init__(self, what: str, stream: Optional[TextIO] = None) -> None:
        self.what, self.stream = what, stream or sys.stderr  # today's stderr, not the one at import
        self.bar: Optional[Progress] = None
        self.done = 0

    def __call__(self, done: int, total: Optional[int]) -> None:
        self.done = done
        if self.bar is None:
            self.bar = Progress(total, self.stream, unit="B", desc=self.what)
            if not self.bar.enabled:
                print(f"verdict: downloading {self.what} ({_mb(total)})", file=self.stream, flush=True)
        self.bar.advance_to(done, total)

    def finish(self, path: Path) -> None:
        if self.bar is not None:
            self.bar.close()
            print(f"verdict: downloaded {self.what} ({_mb(self.done)}) to {path}", file=self.stream, flush=True)


def resolve_with_progress(spec: str) -> str:
    """`--model SPEC` as a local path, downloading hub repos with progress on stderr."""
    from engine.model.sources import resolve_model

    progress = DownloadProgress(spec)
    path = resolve_model(spec, progress=progress)
    progress.finish(path)
    return str(path)


def format_table(entries: list[catalog.ModelEntry]) -> str:
    """Models grouped by source; unsupported ones say why."""
    lines: list[str] = []
    for source in catalog.SOURCES:
        group = [e for e in entries if e.source == source]
        if not group:
            continue
        lines.append(f"{catalog.SOURCE_TITLES[source]}:")
        width = max(len(e.name) for e in group)
        for e in group:
            facts = " ".join(x for x in (e.format, e.architecture or "", e.quant or "",
                                          _mb(e.size_bytes) if e.size_bytes else "") if x)
            status = "" if e.supported else f"  (unsupported: {e.reason})"
            lines.append(f"  {e.name.ljust(width)}  {facts}{status}")
            if e.path:
                lines.append(f"  {'':{width}}  {e.path}")
        lines.append("")
    return "\n".join(lines) if lines else "no models found\n"


def cmd_models(args: argparse.Namespace) -> int:
    from engine.model import sources

    if args.action == "fetch-default":
        print(sources.fetch_default_model())
    elif args.action == "where":
        for candidate in sources.default_model_candidates():
            print(("found   " if candidate.is_file() else "missing ") + str(candidate))
    elif args.action == "list":
        entries = catalog.list_models(tuple(args.source) if args.source else catalog.SOURCES)
        if args.format == "json":
            print(json.dumps([e.row() for e in entries], indent=1))
        else:
            sys.stdout.write(format_table(entries))
    elif args.action == "pull":
        from engine.model import hub

        progress = DownloadProgress(args.ref)
        path = hub.download(args.ref, progress=progress)
        progress.finish(path)
        print(path)
    elif args.action == "calibrate":
        return calibrate(args)
    elif args.action == "export-mlx":
        from engine.runtime.export import export_mlx

        source = None if args.source_model == "default" else resolve_with_progress(args.source_model)
        print(export_mlx(source, args.out_dir, dtype=args.dtype, dequantize=args.dequantize))
    return 0


def calibrate(args: argparse.Namespace) -> int:
    """`verdict models calibrate`: fit the model's general probe from the shipped corpus."""
    from engine.classifier import Classifier
    from engine.general_fit import calibrate_model, corpus_size

    def say(line: str) -> None:
        print(f"verdict: {line}", file=sys.stderr, flush=True)

    if args.max_docs < 0:
        say("error: --max-docs must be at least 0")
        return 2
    model = resolve_with_progress(args.model) if args.model else None
    clf = Classifier.load(model)
    total = corpus_size(args.max_docs)
    say(f"fitting a general probe for {clf.model_name}: {total:,} questions over the corpus, each genre kept "
        "as it finishes (run the command again to go on after an interruption)")
    progress = Progress(total)

    def step(count: int) -> None:
        for _ in range(count):
            progress.step()

    try:
        probe, path = calibrate_model(clf, max_docs=args.max_docs, say=say, step=step)
    except ValueError as exc:
        progress.close()
        say(f"error: {exc}")
        return 2
    progress.close()
    say(f"held-out genres: mean AUC {probe.heldout_auc:.3f} (the model's own answer: {probe.heldout_auc_margin:.3f}); "
        f"layer {probe.layer}; saved {path}")
    print(path)
    return 0


def add_parser(sub) -> None:
    """The `models` command and its actions."""
    m = sub.add_parser("models", help="models on disk, from Hugging Face, and the embedded default")
    actions = m.add_subparsers(dest="action", required=True)
    actions.add_parser("fetch-default", help="download the embedded default model (SmolLM2-135M, Q4_1)")
    actions.add_parser("where", help="where the default model is looked for")
    lst = actions.add_parser("list", help="models already on disk: default, HF cache, LM Studio, Ollama (no network)")
    lst.add_argument("-f", "--format", choices=["table", "json"], default="table")
    lst.add_argument("--source", action="append", choices=list(catalog.SOURCES), help="(repeatable)")
    pull = actions.add_parser("pull", help="download org/repo (MLX) or org/repo:QUANT (GGUF) into the HF cache")
    pull.add_argument("ref", metavar="REF")
    cal = actions.add_parser("calibrate", help="fit the model's general answer probe from the shipped corpus "
                             "(used before labels; hours on a CPU for a large model, resumable)")
    cal.add_argument("-m", "--model", help="an MLX folder, a .gguf file or a hub repo (default: the embedded model)")
    cal.add_argument("--max-docs", type=int, default=0, metavar="N", help="at most N documents per genre "
                     "(default: all; a quick, weaker probe)")
    export = actions.add_parser("export-mlx", help="write a model Verdict loads (.gguf, MLX folder, hub repo, "
                                "'default') as an MLX folder that mlx-lm and mlx_lm.server load")
    export.add_argument("source_model", metavar="MODEL")
    export.add_argument("out_dir", metavar="OUT_DIR")
    export.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32",
                        help="floating-point tensors and quantization scales (float32, the default: the same "
                        "arithmetic as the CPU engine, so a server's margins match the local ones)")
    export.add_argument("--dequantize", action="store_true", help="dense weights: what a CPU-only server runs "
                        "fastest (quantized matmuls there don't use BLAS)")
    m.set_defaults(func=cmd_models)
