"""benchmarks/reproduce.py end to end on digits (tiny), and the report's arithmetic."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from benchmark_modules import load_benchmark

from sne_loihi.errors import SneError

REPO = Path(__file__).resolve().parents[1]

TINY = [
    "--dataset", "digits", "--seeds", "0,1", "--dropout-k", "1", "--noise", "0.05", "--noise-repeats", "2",
    "--partition-strategies", "fixed,agglomerative", "--no-progress",
    "--set", "teacher.epochs=1", "--set", "train.epochs=1", "--set", "data.max_train=150", "--set", "data.max_test=60",
    "--set", "student.arch=digits_tiny", "--set", "student.time_steps=2", "--set", "train.threads=2",
    "--set", "lava.enabled=false",
]


def _reproduce_module():
    return load_benchmark('reproduce')


def _per_seed(payload: dict, key: str, label: str) -> dict[str, float]:
    sec = next(s for s in payload["sections"] if s["key"] == key)
    return next(r for r in sec["rows"] if r["label"] == label)["per_seed"]


def _claim(payload: dict, quantity: str) -> dict:
    return next(c for c in payload["claims"] if c["quantity"] == quantity)


@pytest.fixture(scope="module")
def reproduced(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("reproduce") / "out"
    payload = _reproduce_module().reproduce([*TINY, "--out", str(out)])
    return out, payload


def test_report_structure_and_numbers_come_from_the_runs(reproduced: tuple[Path, dict]) -> None:
    out, payload = reproduced
    for name in ("reproduce.md", "reproduce.json", "reproduce.png", "partition/bench_partition.json"):
        assert (out / name).is_file(), name
    assert json.loads((out / "reproduce.json").read_text()) == payload
    assert [s["key"] for s in payload["sections"]] == ["headline", "table3", "table5", "table6", "table4", "like_for_like"]
    assert payload["meta"]["status"] == {"0": "ran", "1": "ran"}
    assert {"cpu", "cores", "torch", "device"} <= set(payload["meta"]["machine"])
    assert all(c["verdict"] in ("holds", "does not hold", "not resolved at this budget") for c in payload["claims"])  # 2 seeds

    for seed in ("0", "1"):
        rep = json.loads((out / f"seed{seed}" / "report.json").read_text())
        rows = {r["model"].split()[0]: r for r in rep["evaluation"]["rows"]}
        assert _per_seed(payload, "headline", "teacher test accuracy")[seed] == pytest.approx(100 * rows["teacher"]["accuracy"])
        assert _per_seed(payload, "headline", "ensemble test accuracy (all students)")[seed] == pytest.approx(100 * rows["ensemble"]["accuracy"])
        assert _per_seed(payload, "headline", "energy ratio teacher / ensemble")[seed] == pytest.approx(
            rows["teacher"]["energy_pj"] / rows["ensemble"]["energy_pj"])
        assert _per_seed(payload, "headline", "energy ratio VGG19 (398M MACs, the paper's teacher) / ensemble")[seed] == (
            pytest.approx(398e6 * rep["energy_profile"]["pj_per_mac"] / rows["ensemble"]["energy_pj"]))
        rk = {p["setting"]: p for p in rep["activation"]["random_k"]}
        for k in (1, 2, 3, 4):
            assert _per_seed(payload, "table5", f"K={k} accuracy")[seed] == pytest.approx(100 * rk[f"K={k}"]["accuracy"])
            assert _per_seed(payload, "like_for_like", f"random K={k}, ensemble head")[seed] == pytest.approx(100 * rk[f"K={k}"]["accuracy"])
        drop = rep["dropout"]["1"]
        assert _per_seed(payload, "table6", "dropout K=1 accuracy")[seed] == pytest.approx(100 * drop["accuracy"])
        assert _claim(payload, "dropout acc - random acc at K=1")["per_seed"][seed] == pytest.approx(
            100 * (drop["accuracy"] - rk["K=1"]["accuracy"]))
        noise = {r["model"].split()[0]: r for r in rep["noise"] if r["sigma"] == pytest.approx(0.05)}
        assert noise["teacher"]["repeats"] == 2
        assert _per_seed(payload, "table4", "sigma 0.05: ensemble")[seed] == pytest.approx(100 * noise["ensemble"]["mean"])
        ec = {r["k"]: r for r in rep["activation"]["equal_cost"]["cascade head"]}
        if ec[1]["difference"] is not None:
            got = _claim(payload, "per-sample acc - random acc at K=1 ops, cascade head")["per_seed"][seed]
            assert got == pytest.approx(100 * ec[1]["difference"])
        # both heads for both policies are in the run's own report
        assert len(rep["activation"]["random_k_cascade_head"]) == 4 and rep["activation"]["cascade_ensemble_head"]

    bench = json.loads((out / "partition" / "bench_partition.json").read_text())
    assert bench["teacher"]["source"] == str(out / "seed0" / "teacher.pt")  # seed 0's teacher reused
    for r in bench["runs"]:
        assert _per_seed(payload, "table3", f"{r['strategy']} accuracy")[str(r["seed"])] == pytest.approx(100 * r["test_accuracy"])
        assert r["train_cpu_s"] == pytest.approx(sum(h["cpu_seconds"] for h in r["history"])) and r["train_cpu_s"] > 0
        assert r["fold"] is None and r["test_accuracy"] == r["test_accuracy_last_epoch"] == r["history"][-1]["test_accuracy"]
    assert all(row["cpu_s"] > 0 for row in bench["summary"])
    md = (out / "reproduce.md").read_text()
    for heading in ("## Claims", "Table III", "Table IV", "Table V", "Table VI", "## Machine and wall time", "## Command"):
        assert heading in md
    # training time: every epoch record carries its wall seconds, summed per stage whatever resumed it
    for seed in ("0", "1"):
        stages = payload["meta"]["seed_training"][seed]
        assert set(stages) == {"teacher", "students", "dropout-k1"}
        for stage, t in stages.items():
            lines = (out / f"seed{seed}" / ("" if stage in ("teacher", "students") else stage)
                     / f"metrics_{'teacher' if stage == 'teacher' else 'students'}.jsonl").read_text().splitlines()
            seconds = [json.loads(line)["seconds"] for line in lines]
            cpu = [json.loads(line)["cpu_seconds"] for line in lines]
            assert t == {"epochs": 1, "timed": 1, "cpu_timed": 1, "seconds": pytest.approx(sum(seconds)), "cpu_seconds": pytest.approx(sum(cpu))}
            assert all(x > 0 for x in seconds + cpu)
        assert f"- Seed {seed} training, the sum of its epochs' wall and CPU times" in md
    # the wall-time ledger: one finished invocation, each part one attempt inside it
    wt = payload["meta"]["wall_time"]
    assert (wt["invocations"], wt["unfinished"], set(wt["parts"])) == (1, 0, {"seed0", "seed1", "partition"})
    assert all(p["attempts"] == 1 and p["interrupted"] == 0 and p["seconds"] > 0 for p in wt["parts"].values())
    assert 0 <= wt["other_seconds"] < wt["seconds"] <= payload["meta"]["wall_s"]
    assert "- Wall time over every invocation that ran work in this folder:" in md


def test_rerun_reuses_everything_and_refuses_other_settings(reproduced: tuple[Path, dict]) -> None:
    out, first = reproduced
    ens = out / "seed1" / "ensemble.pt"
    stamp = ens.stat().st_mtime_ns
    again = _reproduce_module().reproduce([*TINY, "--out", str(out)])
    assert again["meta"]["status"] == {"0": "reused", "1": "reused"}
    assert ens.stat().st_mtime_ns == stamp
    assert again["sections"] == first["sections"]
    with pytest.raises(SneError):  # another student T: the finished seed refuses to be overwritten
        _reproduce_module().reproduce([*TINY, "--set", "student.time_steps=3", "--out", str(out)])
    assert ens.stat().st_mtime_ns == stamp
    import fcntl

    from sne_loihi.io import LOCK_FILE

    with open(out / LOCK_FILE, "w") as fh:  # a harness running on the same OUT holds its lock
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        for extra in ([], ["--report-only"]):
            with pytest.raises(SneError, match="in use by another process"):
                _reproduce_module().reproduce([*TINY, *extra, "--out", str(out)])
    assert ens.stat().st_mtime_ns == stamp


def test_another_config_or_budget_is_refused_before_anything_runs(reproduced: tuple[Path, dict]) -> None:
    """A longer training, another partition budget or another number of seeds on a finished
    folder: refused in one line naming the change, with no seed retrained (a longer
    ``train.epochs`` used to resume both seeds to 2 epochs, overwriting their results, before
    the partition step refused) and nothing recorded in the wall-time ledger."""
    from sne_loihi.errors import ConfigError

    out, _ = reproduced
    ens, report = out / "seed0" / "ensemble.pt", out / "seed1" / "report.json"
    stamps = (ens.stat().st_mtime_ns, report.stat().st_mtime_ns)
    ledger = (out / "invocations.jsonl").read_bytes()
    for extra, message in [(["--set", "train.epochs=2"], r"seed0 was run with another config \(train\.epochs: 1 -> 2\)"),
                           (["--partition-epochs", "2"], r"holds results for other settings \(epochs 1 -> 2\)"),
                           (["--seeds", "0,1,2"], r"holds results for other settings \(seeds 2 -> 3\)")]:
        with pytest.raises(ConfigError, match=message):
            _reproduce_module().reproduce([*TINY, *extra, "--out", str(out)])
    assert (ens.stat().st_mtime_ns, report.stat().st_mtime_ns) == stamps
    assert not (out / "seed2").exists()
    assert (out / "invocations.jsonl").read_bytes() == ledger


def test_a_moved_out_folder_resumes_its_partition_comparison(reproduced: tuple[Path, dict], tmp_path: Path) -> None:
    """The partition results name their base config by absolute path; the same file moved with
    its folder is recognised by its content (SHA-256), a changed one is still refused."""
    out, first = reproduced
    edited = Path(shutil.copytree(out, tmp_path / "edited"))
    base = edited / "partition" / "base_config.toml"
    base.write_text(base.read_text() + "\n# edited\n")  # another file's content, not this one moved
    with pytest.raises(SneError, match="config_file"):
        _reproduce_module().reproduce([*TINY, "--out", str(edited), "--report-only"])
    moved = Path(shutil.copytree(out, tmp_path / "moved"))
    payload = _reproduce_module().reproduce([*TINY, "--out", str(moved), "--report-only"])
    assert payload["claims"] == first["claims"] and payload["meta"]["missing"] == []


def test_report_only_names_what_is_missing(reproduced: tuple[Path, dict], tmp_path: Path) -> None:
    from sne_loihi.errors import ConfigError

    out, _ = reproduced
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "seed1" / "report.json").unlink()
    shutil.rmtree(copy / "partition")
    payload = _reproduce_module().reproduce([*TINY, "--out", str(copy), "--report-only"])
    assert payload["meta"]["seeds"] == [0]
    assert payload["meta"]["missing"] == ["seed 1 (no report.json complete for these settings)",
                                          "partition comparison (0 of 4 runs finished)"]
    assert "**Incomplete** (a report rewritten from an unfinished folder): missing seed 1" in (copy / "reproduce.md").read_text()
    (copy / "seed0" / "report.json").unlink()
    with pytest.raises(ConfigError, match="no finished seed to report .*; missing: seed 0 .*, seed 1 "):
        _reproduce_module().reproduce([*TINY, "--out", str(copy), "--report-only"])
    with pytest.raises(ConfigError, match="does not exist"):
        _reproduce_module().reproduce([*TINY, "--out", str(tmp_path / "none"), "--report-only"])
    assert not (tmp_path / "none").exists()


def test_wall_time_sums_every_invocation_and_every_attempt_of_a_part() -> None:
    """An invocation killed during seed 0 (last record: a heartbeat at t = 31), then one that
    finishes: every invocation counted to its end or last record, seed 0 over both attempts."""
    def rec(inv: str, event: str, t: float, **fields: object) -> dict:
        return {"invocation": inv, "event": event, "t": t, **fields}

    records = [rec("a", "start", 0), rec("a", "begin", 1, part="seed0"), rec("a", "alive", 31),
               rec("b", "start", 100), rec("b", "begin", 101, part="seed0"), rec("b", "done", 151, part="seed0", how="resumed"),
               rec("b", "begin", 151, part="seed1"), rec("b", "done", 152, part="seed1", how="reused"),
               rec("b", "begin", 152, part="partition"), rec("b", "done", 172, part="partition", how="ran"),
               rec("b", "end", 173)]
    wt = load_benchmark('ledger').wall_time(records)
    assert (wt["seconds"], wt["invocations"], wt["unfinished"]) == (31 + 73, 2, 1)
    assert wt["parts"] == {"seed0": {"seconds": 80, "attempts": 2, "interrupted": 1, "interrupted_seconds": 30},
                           "partition": {"seconds": 20, "attempts": 1, "interrupted": 0, "interrupted_seconds": 0}}
    assert wt["other_seconds"] == 104 - 100  # start-ups, the reused seed 1 and the end
    assert load_benchmark('ledger').wall_time([]) is None


def test_a_killed_invocation_resumes_and_its_time_is_counted(reproduced: tuple[Path, dict], tmp_path: Path) -> None:
    """SIGKILL during a seed's evaluation: the rerun finishes that seed with the same numbers,
    and the report's wall time counts the killed invocation and its cut-short attempt."""
    import signal
    import subprocess
    import sys
    import time

    harness = _reproduce_module()
    out, _ = reproduced
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    original = json.loads((copy / "seed1" / "report.json").read_text())
    (copy / "seed1" / "report.json").unlink()  # seed 1 resumes: its training is kept, its evaluation reruns
    args = [*TINY, "--partition-strategies", "none", "--out", str(copy)]
    before = load_benchmark('ledger').read_wall_time(copy)
    ledger = copy / load_benchmark('ledger').LEDGER_FILE
    start = ledger.stat().st_size
    script = ("import importlib.util, sys; spec = importlib.util.spec_from_file_location('reproduce', sys.argv[1]); "
              "m = importlib.util.module_from_spec(spec); sys.modules['reproduce'] = m; spec.loader.exec_module(m); "
              "m._sibling('ledger').HEARTBEAT_S = 0.2; sys.argv = sys.argv[1:]; m.main()")
    proc = subprocess.Popen([sys.executable, "-c", script, str(REPO / "benchmarks" / "reproduce.py"), *args], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:  # a heartbeat after seed 1 began
            new = ledger.read_bytes()[start:].decode().splitlines()
            events = [json.loads(line) for line in new if line.endswith("}")]
            begun = [e["t"] for e in events if e["event"] == "begin" and e.get("part") == "seed1"]
            if begun and any(e["event"] == "alive" and e["t"] > begun[0] for e in events):
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the harness ended before it could be killed in seed 1"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (copy / "seed1" / "report.json").exists()
    payload = harness.reproduce(args)
    assert payload["meta"]["status"] == {"0": "reused", "1": "resumed"}
    rerun = json.loads((copy / "seed1" / "report.json").read_text())
    for key in ("evaluation", "activation", "dropout", "noise"):
        assert rerun[key] == original[key], key
    wt = payload["meta"]["wall_time"]
    assert (wt["invocations"], wt["unfinished"]) == (before["invocations"] + 2, before["unfinished"] + 1)
    seed1, was = wt["parts"]["seed1"], before["parts"]["seed1"]
    assert (seed1["attempts"], seed1["interrupted"]) == (was["attempts"] + 2, was["interrupted"] + 1)
    assert seed1["interrupted_seconds"] > 0 and wt["seconds"] > before["seconds"] + seed1["interrupted_seconds"]
    md = (copy / "reproduce.md").read_text()
    assert "1 of them interrupted or stopped by an error" in md and "seed1" in md and "1 cut short" in md


@pytest.mark.parametrize(("extra", "message"), [
    (["--seeds", "0,0"], "distinct seeds"),
    (["--seeds", "0,,1"], "--seeds '0,,1': empty item"),
    (["--dropout-k", "4"], "--dropout-k values must be in 1..3"),
    (["--partition-strategies", "fixed,bogus"], "unknown partition strategies"),
    (["--set", "train.epochs"], "KEY=VALUE"),
    (["--noise", "0.1,x"], "comma-separated numbers"),
])
def test_bad_options_fail_before_running(tmp_path: Path, extra: list[str], message: str) -> None:
    with pytest.raises(SneError, match=message):
        _reproduce_module().reproduce([*TINY, *extra, "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


def test_same_run_config_ignores_only_where_a_run_executed() -> None:
    from sne_loihi.config import preset

    same = _reproduce_module().same_run_config
    cfg = preset("digits").to_dict()
    other = preset("digits")
    other.train.threads, other.train.device, other.lava.samples = 7, "cpu", 3
    assert same(cfg, other.to_dict())
    other.student.time_steps += 1
    assert not same(cfg, other.to_dict())
    longer = preset("digits")
    longer.train.epochs += 1  # more training is another result, not the same run
    assert not same(cfg, longer.to_dict())



def test_partition_base_config_in_an_older_format_still_matches(tmp_path: Path) -> None:
    """A partition comparison's base config written before ``student.backend`` became
    ``student.neuron_library`` and before the report/pipeline sections existed is the same
    run; a changed model is refused and the file is left as it was."""
    import tomli_w

    from sne_loihi.config import preset

    harness = _reproduce_module()
    cfg = preset("digits")
    old = json.loads(json.dumps(cfg.to_dict()))
    old["student"]["backend"] = old["student"].pop("neuron_library")
    old.pop("report"), old.pop("pipeline")
    base = tmp_path / "base_config.toml"
    base.write_bytes(tomli_w.dumps(old).encode())
    harness.check_partition_base(base, cfg)
    wider = preset("digits")
    wider.student.width *= 2
    before = base.read_bytes()
    with pytest.raises(SneError, match="another config"):
        harness.check_partition_base(base, wider)
    assert base.read_bytes() == before
    fresh = tmp_path / "new" / "base_config.toml"
    fresh.parent.mkdir()
    harness.check_partition_base(fresh, cfg)
    harness.check_partition_base(fresh, cfg)


def test_headline_shows_the_batch_norm_accuracy_before_the_fold_when_the_runs_folded() -> None:
    from sne_loihi.analysis.reproduction import headline_section

    def report(seed: int, fold: dict | None) -> dict:
        rows = [{"model": "teacher vgg11", "accuracy": 0.70 + seed / 100, "macs": 150e6, "acs": 0, "energy_pj": 7e5},
                {"model": "ensemble 4xvgg5mini", "accuracy": 0.60, "macs": 9e6, "acs": 12e6, "energy_pj": 5e4}]
        return {"evaluation": {"rows": rows}, **({"fold": fold} if fold else {})}

    folded = headline_section({0: report(0, {"test_accuracy_batch_norm": 0.65}), 1: report(1, {"test_accuracy_batch_norm": 0.62})})
    labels = [r.label for r in folded.rows]
    assert labels[2] == "ensemble test accuracy with batch norm, before the fold"
    assert folded.rows[2].per_seed == pytest.approx({0: 65.0, 1: 62.0})
    assert folded.rows[3].per_seed == pytest.approx({0: -10.0, 1: -11.0})  # the paired gap stays the stored ensemble's
    plain = headline_section({0: report(0, None), 1: report(1, None)})
    assert "ensemble test accuracy with batch norm, before the fold" not in [r.label for r in plain.rows]


def test_report_only_keeps_the_wall_time_of_the_invocation_that_ran(reproduced: tuple[Path, dict]) -> None:
    """Last in this file: it rewrites the shared folder's report."""
    out, _ = reproduced
    first = json.loads((out / "reproduce.json").read_text())  # the last invocation that ran (or reused) the seeds
    again = _reproduce_module().reproduce([*TINY, "--out", str(out), "--report-only"])
    assert again["meta"]["wall_s"] == first["meta"]["wall_s"] and again["meta"]["command"] == first["meta"]["command"]
    assert "--report-only" in again["meta"]["report_only_command"]
    assert again["claims"] == first["claims"]
    assert again["config"]["data"]["class_names"] == [str(i) for i in range(10)]  # from the seeds' reports
    md = (out / "reproduce.md").read_text()
    assert f"ran it: {first['meta']['wall_s'] / 60:.1f} min" in md and "rewritten afterwards" in md


def test_partition_records_from_before_the_stored_accuracy_read_it_from_their_run_folder(tmp_path: Path) -> None:
    import torch

    bench = load_benchmark("bench_partition")
    old = {"strategy": "kmeans", "seed": 1, "test_accuracy": 0.70, "history": [{"test_accuracy": 0.70}]}
    with pytest.raises(SneError, match="ensemble.pt is missing"):
        bench.stored_ensemble_accuracy(old, tmp_path)
    run_dir = tmp_path / "runs" / "kmeans-seed1"
    run_dir.mkdir(parents=True)
    fold = {"test_accuracy_batch_norm": 0.705, "test_accuracy_folded": 0.69, "fine_tune_epochs": 0}
    torch.save({"fold": fold}, run_dir / "ensemble.pt")
    new = bench.stored_ensemble_accuracy(old, tmp_path)
    assert (new["test_accuracy"], new["test_accuracy_last_epoch"], new["fold"]) == (0.69, 0.70, fold)
    assert bench.stored_ensemble_accuracy(new, tmp_path) is new  # a current record is kept as it is


def test_benchmarks_name_the_cpu_class_not_only_its_model_name() -> None:
    """Two CPUs both named "AMD EPYC" ran the teacher's bfloat16 step 54.7x apart: the machine line
    of every benchmark carries family, model and vector instructions from /proc/cpuinfo."""
    machine = load_benchmark("machine")
    zen3 = "processor\t: 0\ncpu family\t: 25\nmodel\t\t: 1\nflags\t\t: fpu sse avx avx2 fma\n\nprocessor\t: 1\n"
    zen4 = "cpu family\t: 25\nmodel\t\t: 17\nflags\t\t: avx2 avx512f avx512bw avx512_bf16\n"
    assert machine.cpu_class(zen3) == "family 25 model 1, AVX2, no AVX-512"
    assert machine.cpu_class(zen4) == "family 25 model 17, AVX-512, AVX-512 BF16"
    assert machine.cpu_class("") == "" and machine.cpu_class("model name\t: X\n") == ""
    assert machine.cpu_class() in machine.cpu_name()  # this machine's, beside its name
