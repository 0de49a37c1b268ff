"""The user guide stays true to the code.

* The MkDocs site builds with warnings as errors (``mkdocs build --strict``, as CI builds it:
  ``.ci/run`` runs only pytest).
* The generated references (configuration, command line) cover every key and command.
* Every ``sne`` command line, option, ``--preset`` name and ``section.key`` config key named in
  README.md and docs/ exists.
* The Python examples marked ``<!-- test -->`` run, on a tiny digits run folder.
"""

from __future__ import annotations

import contextlib
import io
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: Every page of the guide, and the README.
PAGES = sorted([ROOT / "README.md", *DOCS.glob("*.md"), *(DOCS / "reference").glob("*.md")])
#: The line that marks a ```python block the suite runs.
TEST_MARK = "<!-- test -->"
#: Suffixes of file names that look like ``section.key`` (``report.md``, ``train.py``).
FILE_SUFFIXES = {"md", "json", "jsonl", "png", "toml", "pt", "py", "npz", "npy", "net", "nir", "h5", "txt"}
#: Fenced blocks that hold command lines.
SHELL_BLOCKS = {"bash", "sh", "shell", "console"}


def _gen() -> Any:
    """``docs/gen_reference.py`` (the mkdocs hook) as a module."""
    spec = importlib.util.spec_from_file_location("gen_reference", DOCS / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


# ---- the site builds ---------------------------------------------------------------------
def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (it is in the dev group: uv sync)")
    pytest.importorskip("mkdocstrings", reason="mkdocstrings is not installed (it is in the dev group: uv sync)")
    import sne_loihi

    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "true"}  # mkdocs-material's banner is no build warning
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site),
                          "--config-file", str(ROOT / "mkdocs.yml")],
                         cwd=ROOT, capture_output=True, text=True, timeout=280, env=env)
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    gen = _gen()
    config_html = (site / "reference" / "config" / "index.html").read_text()
    assert [k for k, *_ in gen.config_keys() if f"<code>{k}</code>" not in config_html] == []
    cli_html = (site / "reference" / "cli" / "index.html").read_text()
    assert [n for n, *_ in gen.cli_commands() if f"<code>{n}</code>" not in cli_html] == []
    api_html = (site / "reference" / "api" / "index.html").read_text()
    documented = set(re.findall(r'<h2 id="([\w.]+)"', api_html))
    public = {f"{module}.{name}" for name, module in sne_loihi._PUBLIC.items()}
    assert public - documented == set(), "public names missing from docs/reference/api.md"


# ---- the generated references ------------------------------------------------------------
def _leaf_keys(cls: type, prefix: str = "") -> set[str]:
    import dataclasses

    from sne_loihi.config import field_types

    keys = set()
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            keys |= _leaf_keys(hints[f.name], f"{prefix}{f.name}.")
        else:
            keys.add(prefix + f.name)
    return keys


def test_the_config_reference_has_every_key_with_its_meaning() -> None:
    from sne_loihi.config import RunConfig

    rows = _gen().config_keys()
    assert {key for key, *_ in rows} == _leaf_keys(RunConfig)
    assert [key for key, _, _, meaning in rows if len(meaning.split()) < 2] == []
    page = _gen().config_reference()
    from sne_loihi.config import preset_names

    assert all(f"### `{name}`" in page for name in preset_names())


def test_the_cli_reference_has_every_command_and_option() -> None:
    gen = _gen()
    page = gen.cli_reference()
    commands = gen.cli_commands()
    assert {"sne", "sne pipeline", "sne teacher", "sne teacher finetune", "sne nir", "sne simulate"} <= {
        name for name, *_ in commands}
    for name, cmd, ctx in commands:
        assert f"## `{name}`" in page
        for param in cmd.get_params(ctx):
            if param.name != "help" and not getattr(param, "hidden", False):
                assert f"`{' '.join(param.get_help_record(ctx)[0].split())}`" in page, (name, param.name)


def test_the_reference_pages_hold_their_markers() -> None:
    gen = _gen()
    for page, name in (("config.md", "config reference"), ("cli.md", "cli reference")):
        assert gen.MARKER.format(name) in (DOCS / "reference" / page).read_text()


# ---- docs against code -------------------------------------------------------------------
def _code(text: str) -> tuple[list[str], list[str]]:
    """A page's fenced code blocks (with their info string first) and inline code spans."""
    blocks = re.findall(r"^```([^\n]*)\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)
    prose = re.sub(r"^```[^\n]*\n.*?^```", "", text, flags=re.MULTILINE | re.DOTALL)
    return [f"{info}\n{body}" for info, body in blocks], re.findall(r"`([^`\n]+)`", prose)


def _command_lines(text: str) -> list[list[str]]:
    """Every ``sne ...`` (or ``-m sne_loihi ...``) invocation in a page's code, as tokens after
    ``sne``."""
    blocks, spans = _code(text)
    lines = []
    for block in blocks:
        info, body = block.split("\n", 1)
        if info.strip() in SHELL_BLOCKS:  # not ```text diagrams, TOML or Python
            lines += [ln.split(" #")[0] for ln in body.replace("\\\n", " ").splitlines()]
    lines += spans
    found = []
    for line in lines:
        for part in re.split(r"&&|;", line):
            try:
                tokens = shlex.split(part.replace("[", " ").replace("]", " "))
            except ValueError:
                tokens = part.split()
            for i, tok in enumerate(tokens):
                if tok == "sne" or (tok == "sne_loihi" and i and tokens[i - 1] == "-m"):
                    found.append(tokens[i + 1:])
                    break
    return found


def _check_command(tokens: list[str], root: Any, root_ctx: Any) -> str | None:
    """Walk ``tokens`` through the click tree; the first thing that does not exist, or None."""
    import typer

    cmd, ctx, path = root, root_ctx, "sne"
    expect_value = False
    for tok in tokens:
        if expect_value:
            expect_value = False
            continue
        if tok.startswith("--"):
            name = tok.split("=")[0]
            params = {o: p for p in cmd.get_params(ctx) for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]}
            if name not in params:
                return f"{path} has no option {name}"
            p = params[name]
            expect_value = "=" not in tok and not getattr(p, "is_flag", False) and not getattr(p, "count", False)
        elif tok.startswith("-") and tok != "-":
            return f"{path}: short option {tok} (the docs use long names)"
        elif hasattr(cmd, "list_commands") and tok in cmd.list_commands(ctx):
            cmd = cmd.get_command(ctx, tok)
            ctx = typer.Context(cmd, info_name=tok, parent=ctx)
            path = f"{path} {tok}"
        elif hasattr(cmd, "list_commands") and path == "sne" and not tok.isupper():  # COMMAND: a placeholder
            return f"sne has no command {tok!r}"
    return None


def test_commands_and_options_named_in_the_docs_exist() -> None:
    import typer
    import typer.main

    from sne_loihi.cli import app

    root = typer.main.get_command(app)
    root_ctx = typer.Context(root, info_name="sne")
    problems, seen = [], 0
    for page in PAGES:
        for tokens in _command_lines(page.read_text()):
            seen += 1
            problem = _check_command(tokens, root, root_ctx)
            if problem:
                problems.append(f"{_rel(page)}: `sne {' '.join(tokens)}`: {problem}")
    assert seen > 50  # the scan finds the guide's command lines
    assert problems == [], "\n".join(problems)


#: Options of other tools the guide shows (torchrun, uv, pip, mkdocs).
OTHER_TOOLS_OPTIONS = {
    "--standalone", "--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port",
    "--rdzv-backend", "--rdzv-endpoint", "--rdzv-id", "--quiet", "--frozen", "--strict", "--site-dir",
}


def test_every_option_named_anywhere_in_the_docs_exists() -> None:
    """An option in any code span or shell block (``--epochs`` on its own, without its command)
    is an option of some ``sne`` command, of a benchmark script or of a tool the guide shows."""
    gen = _gen()
    options = set(OTHER_TOOLS_OPTIONS)
    for _, cmd, ctx in gen.cli_commands():
        for p in cmd.get_params(ctx):
            options |= {*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])}
    for script in (ROOT / "benchmarks").glob("*.py"):
        options |= set(re.findall(r"add_argument\(\s*\"(--[\w-]+)\"", script.read_text()))
    bad = []
    for page in PAGES:
        blocks, spans = _code(page.read_text())
        shell = [b.split("\n", 1)[1] for b in blocks if b.split("\n", 1)[0].strip() in SHELL_BLOCKS]
        for text in [*spans, *shell]:
            bad += [f"{_rel(page)}: {o}" for o in re.findall(r"(?<![\w-])--[a-z][\w-]*", text) if o not in options]
    assert bad == [], "options that no command has:\n" + "\n".join(sorted(set(bad)))


def test_every_command_appears_in_the_readme_command_table() -> None:
    gen = _gen()
    readme = (ROOT / "README.md").read_text()
    table = readme.split("## Commands", 1)[1].split("\n## ", 1)[0]
    missing = [name for name, cmd, _ in gen.cli_commands() if name != "sne" and f"`{name}" not in table
               and not (name == "sne teacher finetune" and "finetune`" in table)]
    assert missing == [], missing


def test_presets_named_in_the_docs_exist_and_every_preset_is_documented() -> None:
    from sne_loihi.config import preset_names

    names = set(preset_names())
    named = {(m, _rel(p)) for p in PAGES for m in re.findall(r"--preset[ =]+([A-Za-z0-9_.-]+)", p.read_text())}
    assert {(m, p) for m, p in named if m not in names and m not in ("NAME",)} == set()
    training = (DOCS / "training.md").read_text()
    assert [n for n in names if f"`{n}`" not in training] == [], "docs/training.md lists every shipped preset"


def test_config_keys_named_in_the_docs_exist() -> None:
    import tomli

    from sne_loihi.config import RunConfig, merge

    keys = {key for key, *_ in _gen().config_keys()}
    sections = {key.split(".")[0] for key in keys if "." in key}
    tables = {key.rsplit(".", 1)[0] for key in keys if "." in key}  # [student.neuron] is a table
    pattern = re.compile(r"(?<![\w./$-])(" + "|".join(sorted(sections)) + r")\.([a-z_]+(?:\.[a-z_]+)?)(?![\w(/.-])")
    bad, seen = [], 0
    for page in PAGES:
        if page.name == "architecture.md":  # names modules (train.common, sim.backend), not keys
            continue
        blocks, spans = _code(page.read_text())
        code = [b for b in blocks if b.split("\n", 1)[0].strip() != "python"]  # Python: variables, not keys
        for text in [*spans, *code]:
            for section, rest in pattern.findall(text):
                key = f"{section}.{rest}"
                if rest.split(".")[-1] in FILE_SUFFIXES or rest.split(".")[0] in FILE_SUFFIXES:
                    continue
                seen += 1
                if key not in keys | tables:
                    bad.append(f"{_rel(page)}: {key}")
        for block in blocks:  # TOML config examples must load as a config
            info, body = block.split("\n", 1)
            if info.strip() != "toml":
                continue
            tree = tomli.loads(body)
            if set(tree) <= sections | {"preset"}:
                RunConfig.from_dict(merge(RunConfig().to_dict(), tree))
    assert seen > 20
    assert bad == [], "config keys that do not exist:\n" + "\n".join(bad)


# ---- the Python examples run -------------------------------------------------------------
def _examples(page: Path) -> list[str]:
    """The ```python blocks right after a ``<!-- test -->`` line."""
    return re.findall(r"^" + re.escape(TEST_MARK) + r"\n```python\n(.*?)^```", page.read_text(),
                      flags=re.MULTILINE | re.DOTALL)


TESTED_PAGES = [p for p in PAGES if _examples(p)]


def test_the_guide_has_tested_examples() -> None:
    assert {p.name for p in TESTED_PAGES} >= {"README.md", "python-api.md", "getting-started.md",
                                             "activation.md", "export-and-simulate.md"}


@pytest.fixture()
def runs_digits(tiny_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working folder holding ``runs/digits``: a copy of the tiny digits run (the examples
    write exports into it)."""
    shutil.copytree(tiny_run, tmp_path / "runs" / "digits", symlinks=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "runs" / "digits"


@pytest.mark.parametrize("page", TESTED_PAGES, ids=[_rel(p) for p in TESTED_PAGES])
def test_the_python_examples_run(page: Path, runs_digits: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    out = io.StringIO()
    for i, code in enumerate(_examples(page)):
        with contextlib.redirect_stdout(out):
            exec(compile(code, f"{_rel(page)} example {i + 1}", "exec"), namespace)  # noqa: S102
    assert out.getvalue().strip(), f"the examples of {_rel(page)} print what they show"


# ---- the API the guide shows does what it says ---------------------------------------------
def test_predict_equals_the_ensemble_run_with_those_students(tiny_run: Path) -> None:
    """``predict`` with an active set gives the logits and op counts of running only those
    students (``evaluate_ensemble``); a threshold above 1 runs every student; bad input is a
    one-line error."""
    import torch

    import sne_loihi
    from sne_loihi.ensemble.evaluate import evaluate_ensemble

    run = sne_loihi.Run(tiny_run)
    loaded = run.ensemble()
    data = run.data()
    x, y = data.x_test_nchw[:24], data.y_test[:24]
    for active in (None, [1], [0, 2]):
        pred = sne_loihi.predict(loaded, x, active=active)
        ref = evaluate_ensemble(loaded.model, x, y, active=active)
        assert torch.allclose(pred.logits, ref.logits, atol=1e-5)
        assert float(pred.macs_s.mean()) == pytest.approx(ref.macs_per_sample)
        assert float(pred.acs_s.mean()) == pytest.approx(ref.acs_per_sample)
        assert pred.students_per_sample() == (len(active) if active else loaded.model.num_students)
    everyone = sne_loihi.predict(loaded, x)
    assert torch.equal(sne_loihi.predict(loaded, x.numpy(), threshold=1.01).predictions, everyone.predictions)
    first_only = sne_loihi.predict(loaded, x, threshold=0.0)
    assert first_only.students_per_sample() == 1 and bool(first_only.ran_sn[:, 0].all())
    for kwargs in ({"active": [0], "threshold": 0.5}, {"active": [7]}, {"threshold": -1.0}, {"order": [1, 0]}):
        with pytest.raises(sne_loihi.SneError):
            sne_loihi.predict(loaded, x, **kwargs)
    with pytest.raises(sne_loihi.SneError, match=r"\[0, 1\]"):
        sne_loihi.predict(loaded, x * 3)


def test_predict_reads_index_tensors_as_indices_and_bool_arrays_as_masks(tiny_run: Path) -> None:
    """An integer tensor of student indices selects those students (read as a mask, [3, 2, 1, 0]
    switched on students 0, 1, 2); a bool mask selects the same as a tensor or a numpy array."""
    import numpy as np
    import torch

    import sne_loihi

    loaded = sne_loihi.Run(tiny_run).ensemble()
    x = sne_loihi.Run(tiny_run).data().x_test_nchw[:8]
    two = sne_loihi.predict(loaded, x, active=[2, 3])
    mask = [False, False, True, True]
    for active in (torch.tensor([2, 3]), np.array([3, 2]), torch.tensor(mask), np.array(mask)):
        p = sne_loihi.predict(loaded, x, active=active)
        assert torch.equal(p.ran_sn, two.ran_sn) and torch.equal(p.logits, two.logits), active
    assert bool(sne_loihi.predict(loaded, x, active=torch.tensor([3, 2, 1, 0])).ran_sn.all())


def test_api_misuse_is_a_one_line_sne_error(tiny_run: Path, tmp_path: Path) -> None:
    """Wrong types and values given to the public API are one-line ``SneError``s raised before
    any work, not a TypeError, RuntimeError or FileNotFoundError from deep inside."""
    import numpy as np
    import torch

    import sne_loihi
    from sne_loihi.errors import CheckpointError, ConfigError, DataError

    run = sne_loihi.Run(tiny_run)
    loaded = run.ensemble()
    x = run.data().x_test_nchw[:4]
    calls = [
        (DataError, "numeric", lambda: sne_loihi.predict(loaded, np.array([["a"]]))),
        (DataError, "numeric", lambda: sne_loihi.predict(loaded, None)),
        (DataError, "numeric", lambda: sne_loihi.predict(loaded, [[1], [1, 2]])),
        (DataError, "real numbers", lambda: sne_loihi.predict(loaded, x.to(torch.complex64))),
        (ConfigError, "threshold", lambda: sne_loihi.predict(loaded, x, threshold="0.5")),
        (ConfigError, "threshold", lambda: sne_loihi.predict(loaded, x, threshold=[0.5])),
        (ConfigError, "batch size", lambda: sne_loihi.predict(loaded, x, batch_size=2.5)),
        (ConfigError, r"Linear\(3, 10\)", lambda: sne_loihi.predict(loaded, x, head=torch.nn.Linear(3, 10))),
        (ConfigError, r"Linear\(\d+, 10\)", lambda: sne_loihi.predict(loaded, x, threshold=0.5,
                                                                       head=torch.nn.Linear(16, 3))),
        (ConfigError, "torch.nn.Linear", lambda: sne_loihi.predict(loaded, x, head="cascade_head.pt")),
        (ConfigError, "sequence of student indices", lambda: sne_loihi.predict(loaded, x, active=2)),
        (ConfigError, "booleans", lambda: sne_loihi.predict(loaded, x, active=[True])),
        (ConfigError, "1-D integer", lambda: sne_loihi.predict(loaded, x, active=torch.tensor([0.0, 1.0]))),
        (ConfigError, "at least one student", lambda: sne_loihi.predict(loaded, x, active=[])),
        (ConfigError, "at least one student", lambda: sne_loihi.predict(loaded, x, active=torch.tensor(
            [[True] * loaded.model.num_students] * 3 + [[False] * loaded.model.num_students]))),
        (CheckpointError, "not found", lambda: sne_loihi.Run(tmp_path / "nope").teacher()),
        (ConfigError, "unknown device", lambda: sne_loihi.load_ensemble(str(tiny_run), device="gpu")),
        (ConfigError, "first_layer", lambda: sne_loihi.export_run(run, tmp_path / "export", first_layer="foo")),
    ]
    for error, message, call in calls:
        with pytest.raises(error, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    assert not (tmp_path / "export").exists()


def test_reading_a_run_through_the_api_leaves_its_folder_unchanged(tiny_run: Path) -> None:
    """Opening a run, loading what it holds and predicting write nothing into the run folder."""
    import hashlib

    import sne_loihi

    def state() -> dict[str, tuple[str, int]]:
        return {str(p.relative_to(tiny_run)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
                for p in sorted(tiny_run.rglob("*")) if p.is_file()}

    before = state()
    run = sne_loihi.Run(str(tiny_run))
    loaded = run.ensemble()
    head = run.current_cascade_head(loaded.model.num_students)
    assert head is not None and run.manifest().cascade is not None
    run.teacher()
    pred = sne_loihi.predict(loaded, run.data().x_test_nchw[:8], threshold=0.5, head=head)
    pred.energy_pj("loihi")
    sne_loihi.load_ensemble(tiny_run / "ensemble.pt")
    assert state() == before
