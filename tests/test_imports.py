"""The core must not pull in Lava, cv2 or torchvision (only the simulation stage imports Lava);
the import graph has no circles and no import from the core up into a stage package."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

CORE_MODULES = [
    "sne_loihi",
    "sne_loihi.cli",
    "sne_loihi.config",
    "sne_loihi.data",
    "sne_loihi.teachers",
    "sne_loihi.partition",
    "sne_loihi.students",
    "sne_loihi.ensemble",
    "sne_loihi.ensemble.predict",
    "sne_loihi.cost",
    "sne_loihi.pipeline",
    "sne_loihi.train",
    "sne_loihi.export",
    "sne_loihi.export.nir_export",
    "sne_loihi.export.nir_check",
    "sne_loihi.cost.neurobench_check",
]
#: Lava only in the simulation stage; the interop packages only when a NIR check or the
#: NeuroBench cross-check runs.
FORBIDDEN = ("lava", "cv2", "torchvision", "snntorch", "nirtorch", "neurobench", "tonic")


def test_core_imports_stay_light() -> None:
    code = (
        "import sys\n"
        f"for m in {CORE_MODULES!r}: __import__(m)\n"
        f"bad = sorted({{n.split('.')[0] for n in sys.modules}} & set({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core imports pulled in: {out.stdout.strip()}"


def test_lava_imports_after_a_progress_bar_fixed_the_start_method() -> None:
    """tqdm creates a multiprocessing lock (fixing the start method) before the pipeline's
    simulation stage imports Lava, whose import calls ``set_start_method('fork')``."""
    code = (
        "import multiprocessing as mp\n"
        "from tqdm import tqdm\n"
        "for _ in tqdm(range(2), disable=False): pass\n"
        "assert mp.get_start_method(allow_none=True) == 'fork'\n"
        "import sne_loihi.sim.lava_processes.ensemble\n"
        "from sne_loihi.sim import loihi_available\n"
        "print('lava-loihi', loihi_available())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("lava-loihi ")


# ---- the house plan, read from the code's own imports -----------------------------------
ROOT = Path(__file__).resolve().parents[1]
#: Where each installed package's code lives (pyproject's package-dir).
PACKAGE_DIRS = {"sne_loihi": ROOT / "sne_loihi", "sne_loihi.train": ROOT / "train",
                "sne_loihi.export": ROOT / "export", "sne_loihi.sim": ROOT / "sim"}
STAGES = ("sne_loihi.train", "sne_loihi.export", "sne_loihi.sim")
#: The top floor: the only modules that sequence stages (import more than one stage package).
TOP_FLOOR = ("sne_loihi.pipeline", "sne_loihi.cli", "sne_loihi.__main__")
#: The front door, ``sne_loihi/__init__.py``: the public API, each name's module imported on first
#: use (its ``_PUBLIC`` table, read below); it may name stage modules, so it counts as top floor.
FRONT_DOOR = "sne_loihi"


def _public_table() -> dict[str, str]:
    """The front door's ``_PUBLIC`` table (public name -> module), read from its source."""
    tree = ast.parse((ROOT / "sne_loihi" / "__init__.py").read_text())
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "_PUBLIC":
            return ast.literal_eval(node.value)
    raise AssertionError("sne_loihi/__init__.py has no _PUBLIC table")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg, folder in PACKAGE_DIRS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if pkg == "sne_loihi" and parts[0] in ("train", "export", "sim"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([pkg, *parts])] = path
    return out


def _import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports (at module level or inside functions)."""
    modules = _modules()

    def owner(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([node.module] if node.module else []))
                targets |= {f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names}
        if name == FRONT_DOOR:  # its lazy imports are imports too
            targets |= set(_public_table().values())
        graph[name] = {o for t in targets if t.startswith("sne_loihi") and (o := owner(t)) and o != name}
    return graph


def _stage(module: str) -> str | None:
    return next((s for s in STAGES if module == s or module.startswith(s + ".")), None)


def _top(module: str) -> bool:
    return module == FRONT_DOOR or any(module == t or module.startswith(t + ".") for t in TOP_FLOOR)


def test_the_core_never_imports_a_stage_package() -> None:
    graph = _import_graph()
    assert "sne_loihi.train.stages" in graph and "sne_loihi.sim.stage" in graph  # the scan sees the stage folders
    bad = sorted(f"{m} -> {t}" for m, targets in graph.items() if not _stage(m) and not _top(m)
                 for t in targets if _stage(t) or _top(t))
    assert bad == [], "core modules import a stage package or the top floor:\n" + "\n".join(bad)


def test_stage_packages_import_each_other_one_way_only() -> None:
    """sim never imports export or train; export may use sim (its Lava parity check); train
    uses neither."""
    graph = _import_graph()
    edges = {(_stage(m), _stage(t)) for m, targets in graph.items() for t in targets
             if _stage(m) and _stage(t) and _stage(m) != _stage(t)}
    assert edges <= {("sne_loihi.export", "sne_loihi.sim")}, sorted(edges)


def test_no_import_cycles() -> None:
    graph = _import_graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == [], f"modules importing each other in a circle: {cycles}"


def test_the_architecture_doc_lists_every_module_and_nothing_else() -> None:
    """docs/architecture.md's tree names every module of the four folders, and every ``*.py``
    it names exists."""
    import re

    doc = (ROOT / "docs" / "architecture.md").read_text()
    tree = doc.split("```", 2)[1]
    files = {p.name for folder in PACKAGE_DIRS.values() for p in folder.rglob("*.py")
             if "__pycache__" not in p.parts}
    missing = sorted(f for f in files - {"__init__.py"} if f not in tree)
    assert missing == [], f"modules missing from docs/architecture.md: {missing}"
    named = set(re.findall(r"[A-Za-z_0-9]+\.py\b", tree))
    assert named - files == set(), f"docs/architecture.md names modules that do not exist: {sorted(named - files)}"


# ---- the public API (the front door) -------------------------------------------------------
def _fresh(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def test_import_sne_loihi_loads_nothing_else() -> None:
    """``import sne_loihi`` loads no other module of the project, no torch and no Lava."""
    out = _fresh("import sys, sne_loihi\n"
                 "print(sorted(m for m in sys.modules if m.split('.')[0] in ('sne_loihi', 'torch', 'lava', 'numpy')))")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "['sne_loihi']", out.stdout


def test_every_public_name_resolves_lazily_and_quietly() -> None:
    """Each public name is its module's object; the core names pull in no Lava, cv2 or
    torchvision; resolving all of them prints nothing and raises no warning."""
    public = _public_table()
    core = sorted(n for n, m in public.items() if not _stage(m))
    code = (
        "import sys, warnings\n"
        "warnings.simplefilter('error')\n"
        "import importlib, sne_loihi\n"
        f"public = {public!r}\n"
        f"for n in {core!r}: getattr(sne_loihi, n)\n"
        f"print(','.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({FORBIDDEN!r}))))\n"
        "for n, m in public.items():\n"
        "    assert getattr(sne_loihi, n) is getattr(importlib.import_module(m), n), n\n"
        "assert sorted(sne_loihi.__all__) == sorted(['__version__', *public])\n"
        "assert set(public) <= set(dir(sne_loihi))\n"
        "print('ok')\n"
    )
    out = _fresh(code)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == ["", "ok"], out.stdout
    assert out.stderr == "", out.stderr


def test_an_unknown_name_is_an_attribute_error() -> None:
    import sne_loihi

    try:
        sne_loihi.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("sne_loihi.no_such_name resolved")


def test_public_names_have_google_style_docstrings() -> None:
    """Every public function and class says what it does; every function documents its
    arguments (Args:) and what it raises or returns where it does."""
    import importlib
    import inspect

    import sne_loihi

    missing = []
    for name, module in _public_table().items():
        obj = getattr(importlib.import_module(module), name)
        doc = inspect.getdoc(obj) or ""
        if not doc.strip():
            missing.append(f"{name}: no docstring")
        elif inspect.isfunction(obj):
            params = [p for p in inspect.signature(obj).parameters if p not in ("self",)]
            if params and "Args:" not in doc:
                missing.append(f"{name}: no Args section")
    assert missing == [], missing
    assert sne_loihi.__doc__ and "predict" in sne_loihi.__doc__
