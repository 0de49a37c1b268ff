"""`sne export` / `sne simulate` and the pipeline's Lava stage, on the shared tiny digits run."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli_checks import one_error_line
from sne_loihi.cli import app

runner = CliRunner()


def test_pipeline_report_holds_lava_figures_equal_to_torch(tiny_run: Path) -> None:
    lava = json.loads((tiny_run / "report.json").read_text())["lava"]
    assert lava["samples"] == 6 and lava["compilations"] == 1 and lava["parity"]["mismatches"] == 0
    labels = [e["label"] for e in lava["evaluations"]]
    assert labels == ["all", "0", "per-sample thr=0.6", "per-sample thr=0.9"]  # the [lava] defaults
    for ev in lava["evaluations"]:
        check = ev["torch"]
        assert check["spike_mismatches"] == 0 and check["op_mismatches"] == 0
        assert check["prediction_agreement"] == 1.0 and ev["accuracy"] == check["accuracy"]
        assert ev["macs"] + ev["acs"] == pytest.approx(check["ops_per_sample"])
        assert ev["energy_pj"] > 0
    only0 = lava["evaluations"][1]["ops_per_student_layer"]
    assert sum(only0[0]) > 0 and all(sum(per) == 0 for per in only0[1:])
    assert "Lava simulation" in (tiny_run / "report.md").read_text()
    assert (tiny_run / "export" / "manifest.json").is_file()


def test_pipeline_simulates_per_sample_activation_with_the_reports_cascade_head(tiny_run: Path) -> None:
    """The pipeline trains the cascade head before its export, so Lava decides per sample in
    the graph with the very head the report's threshold sweep used (not a retrained one)."""
    import torch

    from sne_loihi.ensemble.cascade import ensure_cascade_head
    from sne_loihi.ensemble.checkpoint import load_ensemble
    from sne_loihi.export import load_manifest
    from sne_loihi.run import load_data

    per_sample = [e for e in json.loads((tiny_run / "lava.json").read_text())["evaluations"]
                  if e["label"].startswith("per-sample")]
    for ev in per_sample:
        assert ev["torch"]["decision_mismatches"] == 0 and ev["torch"]["op_mismatches"] == 0
        assert 1.0 <= ev["mean_active"] <= 4.0
    assert per_sample[0]["mean_active"] <= per_sample[1]["mean_active"]  # a higher threshold runs more
    loaded = load_ensemble(tiny_run)
    data = load_data(loaded.config)
    head, trained = ensure_cascade_head(tiny_run, loaded.model, data.x_train_nchw, data.y_train)
    assert not trained
    exported = load_manifest(tiny_run / "export").cascade
    assert exported is not None and exported.order == [0, 1, 2, 3]
    assert exported.source == "cascade_head.pt"  # by name: a shipped manifest names no local folder
    assert torch.equal(torch.tensor(exported.weight, dtype=torch.float64), head.weight.detach().double())
    md = (tiny_run / "report.md").read_text()
    assert "per-sample thr=0.6" in md and "thr=0.6" in md.split("Per-sample activation (cascade")[1]


@pytest.fixture(scope="module")
def export_dir(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh export of the tiny run, beside a copy of its ensemble checkpoint."""
    run = tmp_path_factory.mktemp("run")
    shutil.copy2(tiny_run / "ensemble.pt", run / "ensemble.pt")
    shutil.copy2(tiny_run / "config.toml", run / "config.toml")
    shutil.copy2(tiny_run / "cascade_head.pt", run / "cascade_head.pt")  # exported for --cascade
    out = run / "export"
    result = runner.invoke(app, ["export", str(run), "--out", str(out), "--check-samples", "4"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "4 samples, 0 mismatches" in result.stdout
    assert "cascade head: included" in result.stdout
    return out


def _as_if_retrained(checkpoint: Path) -> None:
    """Rewrite an ensemble checkpoint with other head weights (new content and mtime)."""
    from sne_loihi.io import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(checkpoint)
    ckpt["model"]["head.bias"] = ckpt["model"]["head.bias"] + 0.5
    save_checkpoint(checkpoint, ckpt)


def test_export_leaves_out_a_cascade_head_older_than_the_ensemble(tiny_run: Path, tmp_path: Path) -> None:
    from sne_loihi.export import load_manifest

    for name in ("ensemble.pt", "config.toml", "cascade_head.pt"):
        shutil.copy2(tiny_run / name, tmp_path / name)
    _as_if_retrained(tmp_path / "ensemble.pt")
    result = runner.invoke(app, ["export", str(tmp_path), "--check-samples", "0"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "cascade head: none current" in result.stdout
    assert load_manifest(tmp_path / "export").cascade is None


def test_export_refuses_to_overwrite_and_keeps_the_old_export(export_dir: Path) -> None:
    before = {p.name: p.read_bytes() for p in export_dir.iterdir()}
    result = runner.invoke(app, ["export", str(export_dir.parent), "--out", str(export_dir), "--check-samples", "0"])
    one_error_line(result, "already holds an export")
    assert {p.name: p.read_bytes() for p in export_dir.iterdir()} == before


def test_simulate_switches_active_sets_on_one_graph(export_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "sim.json"
    result = runner.invoke(app, ["simulate", str(export_dir), "--lava-samples", "5", "--capacity", "3", "--backend", "cpu",
                                 "--active", "all", "--active", "1,3", "--active", "k=1", "--energy", "loihi",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    rep = json.loads(out.read_text())
    assert rep["compilations"] == 1 and rep["backend"] == "cpu" and rep["samples"] == 5
    full, some, one = rep["evaluations"]
    assert some["active"] == [1, 3] and len(one["active"]) == 1
    for ev in rep["evaluations"]:
        assert ev["torch"]["spike_mismatches"] == 0 and ev["torch"]["op_mismatches"] == 0
        for k, per in enumerate(ev["ops_per_student_layer"]):
            if k in ev["active"]:
                assert per == full["ops_per_student_layer"][k]  # same samples: a student's ops do not depend on others
            else:
                assert sum(per) == 0
    assert some["macs"] + some["acs"] < full["macs"] + full["acs"]
    assert some["neuron_updates"] == pytest.approx(full["neuron_updates"] / 2)
    # loihi profile: every synaptic event 23.6 pJ plus 81 pJ per neuron update
    assert full["energy_pj"] == pytest.approx(23.6 * (full["macs"] + full["acs"]) + 81.0 * full["neuron_updates"])
    assert "ops/sample per layer" in result.stdout
    again = runner.invoke(app, ["simulate", str(export_dir), "--lava-samples", "2", "--json", str(out)])
    one_error_line(again, "exists")


@pytest.mark.parametrize(("active", "needle"), [
    ("4", "out of range"), ("k=9", "K must be in 1..4"), ("zero", "expected 'all'"),
    ("1,1", "student list [1, 1] names student 1 more than once"),
    ("0,,2", "--active '0,,2': empty item"),
])
def test_simulate_rejects_bad_active_sets(export_dir: Path, active: str, needle: str) -> None:
    one_error_line(runner.invoke(app, ["simulate", str(export_dir), "--lava-samples", "2", "--active", active]), needle)


def test_simulate_refuses_an_active_set_given_twice(export_dir: Path) -> None:
    one_error_line(runner.invoke(app, ["simulate", str(export_dir), "--lava-samples", "2", "--active", "0",
                                       "--active", "k=2", "--active", " 0"]), "--active 0 is given twice")


def test_simulate_loihi2_without_the_extension_is_refused(export_dir: Path) -> None:
    from sne_loihi.sim import loihi_available

    if loihi_available():
        pytest.skip("lava-loihi is installed here")
    one_error_line(runner.invoke(app, ["simulate", str(export_dir), "--lava-samples", "2", "--backend", "loihi2"]), "lava-loihi")


@pytest.mark.parametrize("damage", ["truncate", "manifest", "nan head", "file outside"])
def test_simulate_damaged_export_is_a_one_error_line(export_dir: Path, tmp_path: Path, damage: str) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(export_dir, broken)
    if damage == "truncate":
        data = (broken / "student_0.net").read_bytes()
        (broken / "student_0.net").write_bytes(data[: len(data) // 3])
        needle = "student_0.net"
    elif damage == "nan head":
        manifest = json.loads((broken / "manifest.json").read_text())
        manifest["head_weight"][0][0] = float("nan")
        (broken / "manifest.json").write_text(json.dumps(manifest))
        needle = "non-finite"
    elif damage == "file outside":
        shutil.copy2(broken / "student_0.net", tmp_path / "student_0.net")
        manifest = json.loads((broken / "manifest.json").read_text())
        manifest["students"][0]["file"] = "../student_0.net"
        (broken / "manifest.json").write_text(json.dumps(manifest))
        needle = "not a file name inside the export folder"
    else:
        manifest = json.loads((broken / "manifest.json").read_text())
        manifest["students"][1]["out_features"] += 1
        (broken / "manifest.json").write_text(json.dumps(manifest))
        needle = "do not match"
    one_error_line(runner.invoke(app, ["simulate", str(broken), "--lava-samples", "2"]), needle)


def test_simulate_a_single_netx_file_with_its_input(export_dir: Path, tmp_path: Path) -> None:
    manifest = json.loads((export_dir / "manifest.json").read_text())
    enc = manifest["input"]
    rng = np.random.default_rng(0)
    x = rng.integers(0, 2 ** enc["bits"], size=(3, *enc["shape_chw"], enc["time_steps"])).astype(np.int32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "one.json"
    net = export_dir / "student_2.net"
    result = runner.invoke(app, ["simulate", str(net), "--input", str(tmp_path / "x.npy"), "--input-bits",
                                 str(enc["bits"]), "--backend", "cpu", "--json", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    ev = json.loads(out.read_text())["evaluations"][0]
    assert ev["accuracy"] is None and ev["macs"] > 0 and len(ev["ops_per_student_layer"]) == 1
    one_error_line(runner.invoke(app, ["simulate", str(net)]), "--input")
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    one_error_line(runner.invoke(app, ["simulate", str(net), "--input", str(tmp_path / "bad.npy")]), "is not an .npy array")
    np.save(tmp_path / "complex.npy", x.astype(np.complex64))
    one_error_line(runner.invoke(app, ["simulate", str(net), "--input", str(tmp_path / "complex.npy"), "--input-bits",
                                       str(enc["bits"])]), "real integers")
    for extra in (["--active", "0"], ["--cascade", "0.5"], ["--lava-samples", "2"], ["--seed", "3"]):
        one_error_line(runner.invoke(app, ["simulate", str(net), "--input", str(tmp_path / "x.npy"), *extra]),
                       f"{extra[0]} applies to an export folder, not to a single netx network")
    np.save(tmp_path / "nhwc.npy", x.transpose(0, 2, 3, 1, 4))  # [N, H, W, C, T]: channels last
    c, h, w = enc["shape_chw"]
    one_error_line(runner.invoke(app, ["simulate", str(net), "--input", str(tmp_path / "nhwc.npy"), "--input-bits",
                                       str(enc["bits"])]), f"it takes [N, {c}, {h}, {w}, T] (torch order")


def test_evaluate_keeps_the_lava_section_and_flags_it_stale(tiny_run: Path, tmp_path: Path) -> None:
    import os

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    result = runner.invoke(app, ["evaluate", str(run), "--no-activation"])
    assert result.exit_code == 0, result.stderr
    assert json.loads((run / "report.json").read_text())["lava"]["evaluations"][0]["label"] == "all"
    md = (run / "report.md").read_text()
    assert "Lava simulation" in md and "Stale" not in md
    st = (run / "ensemble.pt").stat()
    os.utime(run / "ensemble.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # as a git clone or cp -r leaves it
    assert runner.invoke(app, ["evaluate", str(run), "--no-activation"]).exit_code == 0
    assert "Stale" not in (run / "report.md").read_text()
    _as_if_retrained(run / "ensemble.pt")
    assert runner.invoke(app, ["evaluate", str(run), "--no-activation"]).exit_code == 0
    assert "**Stale:**" in (run / "report.md").read_text()


def test_simulate_per_sample_cascade_matches_torch(export_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cascade.json"
    result = runner.invoke(app, ["simulate", str(export_dir), "--lava-samples", "4", "--capacity", "4", "--backend", "cpu",
                                 "--cascade", "0,1.01", "--json", str(out)])
    assert result.exit_code == 0, result.stdout + result.stderr
    rep = json.loads(out.read_text())
    assert rep["compilations"] == 1
    full, first_only, everyone = rep["evaluations"]
    assert first_only["label"] == "per-sample thr=0" and first_only["mean_active"] == 1.0
    assert everyone["mean_active"] == 4.0 and everyone["ops_per_student_layer"] == full["ops_per_student_layer"]
    assert all(sum(per) == 0 for per in first_only["ops_per_student_layer"][1:])
    for ev in (first_only, everyone):
        check = ev["torch"]
        assert check["spike_mismatches"] == 0 and check["op_mismatches"] == 0 and check["decision_mismatches"] == 0
    one_error_line(runner.invoke(app, ["simulate", str(export_dir), "--cascade", "x"]), "--cascade")


def test_a_cascade_head_older_than_the_ensemble_or_corrupt_is_retrained(tiny_run: Path, tmp_path: Path) -> None:
    """A head is current while the ensemble's content is (its size and mtime, or else its
    SHA-256: a plain copy or a git clone has new mtimes); a retrained or corrupt one is
    retrained."""
    import os

    from sne_loihi.ensemble.cascade import current_cascade_head, ensure_cascade_head
    from sne_loihi.ensemble.checkpoint import load_ensemble
    from sne_loihi.run import load_data

    for name in ("ensemble.pt", "config.toml", "cascade_head.pt"):
        shutil.copy2(tiny_run / name, tmp_path / name)
    loaded = load_ensemble(tmp_path)
    data = load_data(loaded.config)
    x, y = data.x_train_nchw[:64], data.y_train[:64]
    assert not ensure_cascade_head(tmp_path, loaded.model, x, y)[1]  # copy2 keeps the key (size, mtime)
    st = os.stat(tmp_path / "ensemble.pt")
    os.utime(tmp_path / "ensemble.pt", ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # copied, same content
    assert current_cascade_head(tmp_path, loaded.model.num_students) is not None
    assert not ensure_cascade_head(tmp_path, loaded.model, x, y)[1]
    _as_if_retrained(tmp_path / "ensemble.pt")
    assert current_cascade_head(tmp_path, loaded.model.num_students) is None
    assert ensure_cascade_head(tmp_path, loaded.model, x, y)[1]
    assert not ensure_cascade_head(tmp_path, loaded.model, x, y)[1]
    (tmp_path / "cascade_head.pt").write_bytes(b"not a checkpoint")
    assert ensure_cascade_head(tmp_path, loaded.model, x, y)[1]


def test_simulate_fails_when_torch_and_lava_disagree(export_dir: Path, tmp_path: Path) -> None:
    """Compared with an ensemble whose first layer was changed, Lava's spikes differ: the
    command prints its table but exits non-zero with one line (the contract is 0 and 0)."""
    import torch

    from sne_loihi.io import load_checkpoint

    ckpt = load_checkpoint(export_dir.parent / "ensemble.pt")
    key = next(k for k in ckpt["model"] if k.endswith("blocks.0.synapse.weight"))
    ckpt["model"][key] = ckpt["model"][key] * 3.0
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    result = runner.invoke(app, ["simulate", str(export_dir), "--lava-samples", "3", "--backend", "cpu",
                                 "--compare", str(other)])
    assert result.exit_code == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]  # progress bars share stderr
    assert len(errors) == 1 and "Lava and torch disagree (all:" in errors[0], result.stderr
    assert result.stderr.rstrip().splitlines()[-1].startswith("error: ")
    assert "spike / op mismatches" in result.stdout  # the table was still shown


def test_an_edited_head_in_the_manifest_is_refused(export_dir: Path, tmp_path: Path) -> None:
    """Spikes are compared with torch, the head is not: a manifest head that is not the
    ensemble's is refused before anything runs (it made Lava's accuracy 0% beside torch's 33%)."""
    run = Path(shutil.copytree(export_dir.parent, tmp_path / "run"))
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    manifest["head_weight"] = [[-v for v in row] for row in manifest["head_weight"]]
    (run / "export" / "manifest.json").write_text(json.dumps(manifest))
    one_error_line(runner.invoke(app, ["simulate", str(run / "export"), "--lava-samples", "2"]),
                   "the export's head (manifest.json) is not the head of")


def test_cascade_without_a_cascade_head_is_refused_before_any_lava_run(export_dir: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from sne_loihi.sim import evaluate

    def no_run(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("the active sets ran before the cascade head was checked")

    monkeypatch.setattr(evaluate, "evaluate_active_sets", no_run)
    run = Path(shutil.copytree(export_dir.parent, tmp_path / "run"))
    manifest = json.loads((run / "export" / "manifest.json").read_text())
    manifest.pop("cascade")
    (run / "export" / "manifest.json").write_text(json.dumps(manifest))
    one_error_line(runner.invoke(app, ["simulate", str(run / "export"), "--cascade", "0.5", "--lava-samples", "2"]),
                   "this export carries no cascade head")


# ---- your own images through an exported ensemble (sne simulate EXPORT --input x.npy) --------


def test_simulate_export_on_your_images_prints_torchs_predictions(tiny_run: Path, tmp_path: Path) -> None:
    import numpy as np
    import torch

    from sne_loihi.ensemble.checkpoint import load_ensemble
    from sne_loihi.run import Run

    x_nchw = Run(tiny_run).data().x_test_nchw[10:14].numpy()
    images = tmp_path / "mine.npy"
    np.save(images, (x_nchw * 255).round().astype(np.uint8).transpose(0, 2, 3, 1))  # NHWC uint8, as a user has them
    out = tmp_path / "pred.json"
    result = runner.invoke(app, ["simulate", str(tiny_run / "export"), "--input", str(images), "--json", str(out)])
    assert result.exit_code == 0, result.stderr + result.stdout
    loaded = load_ensemble(tiny_run / "ensemble.pt")
    with torch.no_grad():
        x = torch.from_numpy(np.load(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
        want = loaded.model(x).logits.argmax(-1).tolist()
    (ev,) = json.loads(out.read_text())["evaluations"]
    assert ev["predictions"] == want and ev["samples"] == 4 and ev["accuracy"] is None
    assert ev["torch"]["spike_mismatches"] == 0 and ev["torch"]["op_mismatches"] == 0
    names = loaded.class_names
    assert f"predictions [all] 0: {names[want[0]]}, 1: {names[want[1]]}" in result.stdout


@pytest.mark.parametrize(("make", "extra", "message"), [
    (lambda p: np.savez(p.with_suffix(".npz"), x=np.zeros((2, 1, 8, 8)), y=np.zeros(2)) or p.with_suffix(".npz"), [],
     r"holds 2 arrays \(x, y\); name one as in.npz:KEY"),
    (lambda p: np.save(p, np.zeros((2, 3, 8, 8), np.uint8)) or p, [], r"holds shape \(2, 3, 8, 8\)"),
    (lambda p: np.save(p, np.full((2, 1, 8, 8), np.nan, np.float32)) or p, [], r"finite and in \[0, 1\]"),
    (lambda p: np.save(p, np.zeros((2, 1, 8, 8), np.int32)) or p, [], "uint8"),
    (lambda p: np.save(p, np.zeros((2, 1, 8, 8), np.uint8)) or p, ["--input-bits", "4"], "--input-bits applies to a single"),
    (lambda p: np.save(p, np.zeros((2, 1, 8, 8), np.uint8)) or p, ["--data-dir", "x"], "with --input your images"),
    (lambda p: np.save(p, np.zeros((2, 1, 8, 8), np.uint8)) or p, ["--lava-samples", "1"],
     "--lava-samples counts test-set images; with --input every image"),
])
def test_simulate_export_refuses_inputs_that_do_not_fit(tiny_run: Path, tmp_path: Path, make, extra, message) -> None:
    path = make(tmp_path / "in.npy")
    result = runner.invoke(app, ["simulate", str(tiny_run / "export"), "--input", str(path), *extra])
    assert result.exit_code == 1
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert re.search(message, lines[0]), lines[0]


def test_the_simulator_used_from_python_prints_no_third_party_chatter(tiny_run: Path) -> None:
    import subprocess
    import sys

    script = (
        "import numpy as np\n"
        "from pathlib import Path\n"
        "from sne_loihi.run import Run\n"
        "from sne_loihi.sim import EnsembleSimulator\n"
        f"run = Run(Path({str(tiny_run)!r}))\n"
        "m = run.manifest(run.dir / 'export')\n"
        "with EnsembleSimulator(m, capacity=1) as sim:\n"
        "    r = sim.run(np.zeros((1, *m.input.shape_chw), np.float32), active=[0])\n"
        "print('predictions', list(r.predictions))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [proc.stdout.splitlines()[0]] and proc.stdout.startswith("predictions [")
    assert "Prophesee" not in proc.stdout + proc.stderr and "CUDA" not in proc.stdout + proc.stderr


_SIMULATE_FOREVER = """
import sys
import numpy as np
from sne_loihi.sim.simulator import EnsembleSimulator
sim = EnsembleSimulator(sys.argv[1])
x = np.random.default_rng(0).random((64, *sim.manifest.input.shape_chw)).astype(np.float32)
while True:
    sim.run(x)
"""


def test_lava_workers_exit_when_their_parent_is_killed(export_dir: Path, tmp_path: Path) -> None:
    """Lava forks a worker per process model; SIGKILLing the process that runs the simulation
    (an out-of-memory kill, a session that ends) must not leave them running as orphans."""
    import os
    import signal
    import subprocess
    import sys
    import time

    script = tmp_path / "forever.py"
    script.write_text(_SIMULATE_FOREVER)
    proc = subprocess.Popen([sys.executable, str(script), str(export_dir)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)

    def children() -> set[int]:
        found: set[int] = set()
        for task in Path(f"/proc/{proc.pid}/task").glob("*"):
            try:
                found.update(int(c) for c in (task / "children").read_text().split())
            except OSError:
                pass
        return found

    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 120
        while len(workers) < 3 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            workers |= children()
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert len(workers) >= 3, workers  # the runtime service and the process models
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def alive(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
        except (OSError, IndexError):
            return False

    deadline = time.monotonic() + 10
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [p for p in workers if alive(p)]
    for pid in left:  # do not leak them into the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} Lava workers outlived their parent"


def test_more_lava_samples_than_the_test_set_holds_says_so(export_dir: Path) -> None:
    """--lava-samples beyond the test set runs all of it and says so (it used to run fewer quietly)."""
    result = runner.invoke(app, ["simulate", str(export_dir), "--lava-samples", "100000", "--active", "0",
                                 "--capacity", "50", "--backend", "cpu"])
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "note: the test set holds 100 images; --lava-samples 100,000 ran all of them" in result.stderr
    assert "100 samples" in result.stdout


def test_an_export_inside_an_export_is_refused(export_dir: Path, tmp_path: Path) -> None:
    """--out inside an existing export (netx or NIR) would leave a stray folder in it that its
    next --overwrite refuses; it is one error line and nothing is written. A folder that only
    holds some other project's manifest.json is no export."""
    before = sorted(p.name for p in export_dir.iterdir())
    nested = export_dir / "sub"
    one_error_line(runner.invoke(app, ["export", str(export_dir.parent), "--out", str(nested), "--check-samples", "0"]),
                   f"lies inside the export {export_dir.resolve()}")
    assert sorted(p.name for p in export_dir.iterdir()) == before
    from sne_loihi.export.exporter import _is_export

    other = tmp_path / "web"
    other.mkdir()
    (other / "manifest.json").write_text("{}")
    assert _is_export(export_dir) and not _is_export(other)
