"""The rooms of ARCHITECTURE.md, enforced: who may import what, and what importing costs."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MLX = ("mlx", "mlx_lm")
QT = ("PySide6", "shiboken6", "app")


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file imports, at any depth (lazy imports inside functions count too).
    `from package import name` also counts as `package.name` (it may be a submodule), and a
    relative import is resolved against the file's package under `root`."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            package = path.relative_to(root).parent.parts
            base = ".".join(package[: len(package) - node.level + 1] if node.level else ())
            module = ".".join(part for part in (base, node.module or "") if part)
            if module:
                names.add(module)
                names.update(f"{module}.{alias.name}" for alias in node.names if alias.name != "*")
    return names


def _offences(folder: str, banned: tuple[str, ...], allowed_files: tuple[str, ...] = (),
               root: Path = ROOT) -> list[str]:
    """`file imports module` for each banned module (or a submodule of one) a file imports."""
    found = []
    where = root / folder
    for path in [where] if where.is_file() else sorted(where.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel in allowed_files:
            continue
        for name in sorted(_imports(path, root)):
            if any(name == b or name.startswith(b + ".") for b in banned):
                found.append(f"{rel} imports {name}")
    return found


def test_engine_never_imports_qt_or_the_app():
    assert _offences("engine", QT) == []


def test_intake_never_imports_mlx_the_runtime_or_confidence():
    assert _offences("engine/intake", MLX + ("engine.runtime", "engine.confidence", "engine.classifier")) == []


@pytest.mark.parametrize("room", ["engine/model", "engine/remote", "engine/intake", "engine/confidence"])
def test_rooms_without_a_local_model_never_import_mlx_nor_the_runtime(room):
    """The runtime is the package that needs MLX, so a rule on the package holds for every module
    in it, a new one included: what a model is (`engine.model`), a client of an inference server,
    reading files and calibrating numbers all work without starting MLX."""
    assert _offences(room, MLX + ("engine.runtime",)) == []


def test_only_the_runtime_knows_mlx():
    # bench runs stock mlx-lm on purpose: its baselines are what the engine is measured against
    outside = [o for o in _offences("engine", MLX, allowed_files=("engine/cli/bench.py",))
               if not o.startswith("engine/runtime/")]
    assert outside == []


def test_the_app_writes_rows_through_the_shared_contract_not_the_command_line():
    """The row contract lives in `engine.rows` (and `engine.table_out` for the user's own table);
    the command line's own modules (its terminal, its streams) are none of the app's business."""
    assert _offences("app", ("engine.cli.output", "engine.cli.main", "engine.cli.table_out")) == []


def test_the_row_contract_needs_neither_the_command_line_nor_a_model():
    for module in ("engine/rows.py", "engine/table_out.py"):  # table_out: rows written into the user's table
        assert _offences(module, MLX + QT + ("engine.cli", "engine.runtime", "engine.classifier")) == []


def test_a_rule_breaker_would_be_caught(tmp_path):
    """The checker itself can fail: a lazy import inside a function is found, and so are the
    runtime named as a submodule and a relative import into it."""
    path = tmp_path / "bad.py"
    path.write_text("def f():\n    import mlx.core as mx\n    from PySide6.QtCore import QObject\n")
    assert _imports(path, tmp_path) == {"mlx.core", "PySide6.QtCore", "PySide6.QtCore.QObject"}
    room = tmp_path / "engine" / "model"
    room.mkdir(parents=True)
    (room / "fine.py").write_text("from engine.model import tokenizer\nfrom . import prompt\n")
    assert _offences("engine/model", MLX + ("engine.runtime",), root=tmp_path) == []
    (room / "bad.py").write_text("def f():\n    from engine import runtime\n    from ..runtime.kv import SegmentCache\n")
    assert _offences("engine/model", MLX + ("engine.runtime",), root=tmp_path) == [
        "engine/model/bad.py imports engine.runtime",
        "engine/model/bad.py imports engine.runtime.kv",
        "engine/model/bad.py imports engine.runtime.kv.SegmentCache",
    ]


def _module_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Who imports whom among a package's modules, lazy imports included. `from engine import X`
    is an edge to module `engine.X` when there is one, else to the package `engine` itself (whose
    `__getattr__` imports the classifier and the pipeline); a parent package is not an edge of
    its own (its `__init__` is counted only when named)."""
    modules = {}
    for path in sorted((root / package).rglob("*.py")):
        name = ".".join(path.relative_to(root).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in modules else known(node.module))
        graph[name] = {t for t in targets if t and t != name}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


CORE = ("engine", "engine.types", "engine.scoring", "engine.classifier", "engine.pipeline", "engine.gather")


def test_no_import_cycle_among_classifier_pipeline_and_confidence():
    """The classifier gives scores, confidence works on arrays, the pipeline joins them: one way.
    Confidence reaching the classifier (through `engine/__init__` too) would close a cycle."""
    graph = _module_graph(ROOT, "engine")
    assert set(CORE) <= set(graph)
    core = [c for c in _cycles(graph) if any(m in CORE or m.startswith("engine.confidence") for m in c)]
    assert core == []


def test_confidence_imports_nothing_that_scores():
    graph = _module_graph(ROOT, "engine")
    reach = {f"{m} imports {t}" for m, targets in graph.items() if m.startswith("engine.confidence")
             for t in targets if t in ("engine", "engine.classifier", "engine.pipeline", "engine.gather")}
    assert reach == set()


def test_an_import_cycle_would_be_caught(tmp_path):
    """The cycle finder can fail: a lazy import back through the package's `__init__` closes one."""
    pkg = tmp_path / "eng"
    (pkg / "conf").mkdir(parents=True)
    (pkg / "__init__.py").write_text("def __getattr__(name):\n    from eng.clf import Clf\n    return Clf\n")
    (pkg / "clf.py").write_text("from eng.conf.cal import fit\nclass Clf: pass\n")
    (pkg / "conf" / "__init__.py").write_text("")
    (pkg / "conf" / "cal.py").write_text("def fit():\n    from eng import Clf\n")
    graph = _module_graph(tmp_path, "eng")
    assert graph["eng.conf.cal"] == {"eng"}
    assert _cycles(graph) == [{"eng", "eng.clf", "eng.conf.cal"}]
    (pkg / "conf" / "cal.py").write_text("def fit():\n    from eng import conf\n")
    assert _cycles(_module_graph(tmp_path, "eng")) == []


def test_importing_the_engine_loads_no_mlx_and_no_blas():
    code = (
        "import sys\n"
        "import engine, engine.pipeline, engine.classifier, engine.scoring, engine.intake, engine.cli.main\n"
        "import engine.confidence.calibrate, engine.confidence.probe, engine.confidence.evaluate\n"
        "from engine.runtime import device\n"
        "from engine.model import prompt, tokenizer\n"
        "assert 'mlx.core' not in sys.modules, 'mlx imported'\n"
        "assert device.blas_in_use() is None\n"
        "maps = open('/proc/self/maps').read()\n"
        "assert 'openblas-pthread' not in maps and 'openblas-openmp' not in maps, 'a BLAS was preloaded'\n"
        "print('clean')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "clean" in done.stdout, done.stderr


def test_importing_the_model_layer_and_remote_starts_no_runtime():
    """What the static rule says, at run time: every module of `engine.model`, and the remote
    backend, import without loading MLX or any module of `engine.runtime`."""
    code = (
        "import importlib, pkgutil, sys\n"
        "import engine.model, engine.remote\n"
        "names = [m.name for m in pkgutil.iter_modules(engine.model.__path__, 'engine.model.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('mlx', 'mlx_lm') or m.startswith('engine.runtime'))\n"
        "assert len(names) >= 10 and not loaded, (names, loaded)\n"
        "print('clean')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "clean" in done.stdout, done.stderr


def test_stock_mlx_lm_in_the_same_process_is_untouched(tiny_model_dir):
    """Load a stock mlx-lm model, then ours on the CPU path (fast kernels on): the stock model's
    classes, mlx-lm's module functions and the stock model's logits are exactly as before."""
    code = f"""
import sys
import mlx.core as mx
import numpy as np
import mlx_lm.models.llama as llama, mlx_lm.models.base as base, mlx_lm.models.activations as activations
from pathlib import Path
from mlx_lm.utils import load_model
before_fns = (llama.scaled_dot_product_attention, llama.swiglu, llama.Attention.__call__, llama.MLP.__call__)
stock, _ = load_model(Path({str(tiny_model_dir)!r}))
ids = mx.array([[1, 5, 9, 12, 7, 3]])
before = np.array(stock(ids))
from engine import Classifier
ours = Classifier.load({str(tiny_model_dir)!r})
attn = ours.backend.lm.model.model.layers[0].self_attn
assert type(attn) is not llama.Attention and isinstance(attn, llama.Attention), 'our model did not get the fast kernels'
assert type(stock.model.layers[0].self_attn) is llama.Attention and type(stock.model.layers[0].mlp) is llama.MLP
assert (llama.scaled_dot_product_attention, llama.swiglu, llama.Attention.__call__, llama.MLP.__call__) == before_fns
assert llama.scaled_dot_product_attention is base.scaled_dot_product_attention and llama.swiglu is activations.swiglu
after = np.array(stock(ids))
assert np.array_equal(before, after), 'stock logits changed'
print('untouched')
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and "untouched" in done.stdout, done.stderr


@pytest.mark.parametrize("arch", ["llama", "qwen2", "qwen3"])
def test_every_allowed_architecture_gets_the_fast_kernels(tmp_path, arch):
    from engine.runtime.kernels import KERNELS
    from engine.runtime.loading import load_model
    from tinymodels import write_mlx_folder

    lm = load_model(write_mlx_folder(tmp_path / arch, arch))
    block = lm.model.model.layers[0]
    for module in (block.self_attn, block.mlp):
        call = type(module).__call__
        used = [n for n in KERNELS if n in call.__code__.co_names]
        assert used and all(call.__globals__[n] is KERNELS[n] for n in used), type(module)


def test_loading_a_model_preloads_the_fast_blas_before_mlx(tiny_model_dir):
    """The public entry point (Classifier.load -> runtime.local) must load OpenBLAS before
    mlx.core: imported the other way round, MLX keeps its reference BLAS (~100x slower on CPU)."""
    from engine.runtime import device

    if sys.platform != "linux" or not any(Path(c.format(arch=__import__("platform").machine())).exists()
                                          for c in device._BLAS_CANDIDATES):
        pytest.skip("no OpenBLAS installed here")
    if os.environ.get("VERDICT_BLAS"):
        pytest.skip("VERDICT_BLAS chooses the BLAS here, not the default search this checks")
    code = (
        "from engine import Classifier\n"
        "from engine.runtime import device\n"
        f"Classifier.load({str(tiny_model_dir)!r})\n"
        "maps = open('/proc/self/maps').read()\n"
        "assert device.blas_in_use(), 'no fast BLAS'\n"
        "assert 'openblas' in maps, 'OpenBLAS is not mapped'\n"
        "print('fast')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and "fast" in done.stdout, done.stderr


@pytest.mark.parametrize("entry", ["engine.cli.bench", "engine.classifier", "engine.runtime.local", "engine.cli.main"])
def test_every_entry_point_loads_the_fast_blas_before_mlx(entry):
    """Whichever module a process imports first, MLX must not start on its reference BLAS where
    an optimized one is installed (a stray `import mlx.core` locks the slow one in)."""
    from engine.runtime import device

    if device.blas_in_use() is None:
        pytest.skip("no optimized BLAS installed on this machine")
    code = (f"import {entry}\nfrom engine.runtime import device\nfrom engine.classifier import Classifier\n"
            "import engine.runtime.local\nprint(device.blas_in_use())\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == device.blas_in_use()


def test_scoring_with_the_default_gguf_never_imports_transformers(default_model_path):
    """mlx-lm's package `__init__` imports transformers (about a second of every cold start); the
    scoring path needs only `mlx_lm.models.<type>`. A later use of mlx-lm itself still gets the
    whole package, as mlx-lm defines it."""
    code = (
        "import sys\n"
        "from engine import Classifier, Document\n"
        "from engine.pipeline import Pipeline\n"
        f"clf = Classifier.load({str(default_model_path)!r})\n"
        "rows = list(Pipeline(clf).run(['Is it about files?'], [Document(id='a', text='A tool that copies files.')]))\n"
        "assert len(rows) == 1 and rows[0].error is None, rows\n"
        "assert 'mlx_lm.models.llama' in sys.modules\n"
        "leaked = sorted(m for m in ('transformers', 'mlx_lm.utils', 'mlx_lm.tokenizer_utils') if m in sys.modules)\n"
        "assert not leaked, leaked\n"
        "from mlx_lm import generate, load\n"
        "assert callable(load) and generate is sys.modules['mlx_lm.generate'].generate, generate\n"
        "assert 'transformers' in sys.modules\n"
        "print('clean')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0 and "clean" in done.stdout, done.stderr[-3000:]


def test_every_import_of_our_own_modules_resolves():
    """Lazy imports inside functions run only when that code does (a worker thread, a rare branch):
    a module moved to another package must not leave one behind that no other test reaches."""
    import importlib
    import importlib.util

    missing = []
    for folder in ("engine", "app", "scripts", "tests", "packaging"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    wanted = [(alias.name, None) for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    wanted = [(node.module, alias.name) for alias in node.names]
                else:
                    continue
                for module, name in wanted:
                    if module.split(".")[0] not in ("engine", "app"):
                        continue
                    where = f"{path.relative_to(ROOT)}:{node.lineno}"
                    spec = importlib.util.find_spec(module)
                    if spec is None:
                        missing.append(f"{where} {module}")
                    elif name and name != "*":
                        package = spec.submodule_search_locations is not None
                        if not (package and importlib.util.find_spec(f"{module}.{name}") is not None) \
                                and not hasattr(importlib.import_module(module), name):
                            missing.append(f"{where} {module}.{name}")
    assert missing == []
