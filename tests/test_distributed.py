"""Data-parallel training (torchrun, gloo, 2 CPU processes) gives the one-process result.

The contract tests launch ``tests/dist_worker.py`` (teacher -> fine-tuning -> 2 x digits_tiny
ensemble on 96 digits) once in one process and once under ``torch.distributed.run`` with two
processes, the same seed and global batch; the unit tests check the device-independent parts
(sharding, loss weights, synced BatchNorm, sharded dropout, AMP switch, transfers) in-process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sne_loihi import distributed as sd
from sne_loihi.distributed import DistContext, Shard, check_divides
from sne_loihi.errors import ConfigError
from sne_loihi.io import load_checkpoint

REPO = Path(__file__).resolve().parents[1]
WORKER = REPO / "tests" / "dist_worker.py"
TIMEOUT = 900  # seconds per launch: generous for a loaded 2-core machine (idle: well under a minute)
#: pytest-timeout for a test that launches up to two runs (fixture set-up counts).
slow = pytest.mark.timeout(2 * TIMEOUT + 60)
#: Float summation order differs (gradient all-reduce, BatchNorm statistics over two shards):
#: every tensor within this relative L2 distance (measured: most within 1e-6, the worst student
#: synapse 2.6e-4, as the teacher features it learns from differ by ~1e-3, see below) ...
REL_L2 = 1e-3
#: ... except a conv bias directly before a BatchNorm and that BatchNorm's running mean: the
#: bias's gradient is zero up to rounding (BatchNorm subtracts it again), so Adam's steps on it
#: are rounding noise of at most lr per step (measured up to 2.9e-4 after 2+1 epochs at lr 1e-3).
#: The network's training-mode function does not depend on it.
SHIFT_ATOL = 2e-3


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _launch(args: list[str], nproc: int) -> subprocess.CompletedProcess:
    prefix = [sys.executable] if nproc == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    return _bounded(prefix + args, TIMEOUT)


def _bounded(cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own session; past ``timeout`` kill the whole session and fail.

    ``subprocess.run(timeout=...)`` kills only the child and then waits for its pipes, which
    torchrun's workers (grandchildren) would keep open: the wait would never end.
    """
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(), cwd=REPO,
                            start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"{' '.join(cmd[1:3])} ran past {timeout} s and was killed; stderr tail: {stderr[-2000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _shift_keys(state: dict[str, torch.Tensor]) -> set[str]:
    """``X.{i-1}.bias`` and ``X.{i}.running_mean`` for every BatchNorm ``X.{i}`` after a biased layer."""
    out = set()
    for key in state:
        prefix, _, leaf = key.rpartition(".")
        parent, _, index = prefix.rpartition(".")
        if leaf == "running_mean" and index.isdigit() and f"{parent}.{int(index) - 1}.bias" in state:
            out |= {key, f"{parent}.{int(index) - 1}.bias"}
    return out


def _close(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    shift = _shift_keys(b)
    for key in a:
        if key in shift:
            assert float((a[key] - b[key]).abs().max()) <= SHIFT_ATOL, key
        elif a[key].is_floating_point():
            assert float((a[key] - b[key]).norm()) <= REL_L2 * max(float(b[key].norm()), 1e-6), key
        else:
            assert torch.equal(a[key], b[key]), key


@pytest.fixture(scope="module")
def one_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("dist") / "one"
    out = _launch([str(WORKER), str(run)], 1)
    assert out.returncode == 0, out.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess]:
    base = tmp_path_factory.mktemp("dist")
    run, audit = base / "two", base / "audit"
    out = _launch([str(WORKER), str(run), "--audit", str(audit)], 2)
    assert out.returncode == 0, out.stderr[-3000:]
    return run, audit, out


@slow
def test_two_processes_give_the_one_process_weights_and_accuracy(one_process: Path, two_processes: Any) -> None:
    two, _, out = two_processes
    for name in ("teacher_pre_finetune.pt", "teacher.pt", "ensemble.pt"):
        _close(load_checkpoint(two / name)["model"], load_checkpoint(one_process / name)["model"])
    for metrics in ("metrics_teacher.jsonl", "metrics_students.jsonl"):
        got, want = _lines(two / metrics), _lines(one_process / metrics)
        assert [r["test_accuracy"] for r in got] == [r["test_accuracy"] for r in want]
        assert [r["train_accuracy"] for r in got] == [r["train_accuracy"] for r in want]
        assert all(r["world_size"] == 2 and r["dist_backend"] == "gloo" for r in got)
        assert all(r["world_size"] == 1 and r["dist_backend"] == "none" for r in want)
    one_ft, two_ft = (json.loads((d / "finetune.json").read_text()) for d in (one_process, two))
    assert two_ft["after"]["test_accuracy"] == one_ft["after"]["test_accuracy"]
    assert (two / "partition.json").read_text() == (one_process / "partition.json").read_text()
    # the world is recorded in the metrics, never in the config that makes the results
    assert (two / "config.toml").read_text() == (one_process / "config.toml").read_text()
    assert out.stdout.count("distributed: world size 2, backend gloo") == 1


@slow
def test_only_rank_0_writes_files(two_processes: Any) -> None:
    run, audit, _ = two_processes
    writes = json.loads(Path(f"{audit}.rank1").read_text())
    assert writes == []
    assert sorted(p.name for p in run.iterdir()) == [  # rank 0's files, none left half-written
        "config.toml", "ensemble.pt", "finetune.json", "metrics_students.jsonl", "metrics_teacher.jsonl",
        "partition.json", "teacher.pt", "teacher_features.pt", "teacher_pre_finetune.pt",
    ]


@slow
def test_a_killed_rank_resumes_from_the_last_checkpoint_on_another_world_size(
    one_process: Path, tmp_path: Path
) -> None:
    run = tmp_path / "killed"
    out = _launch([str(WORKER), str(run), "--kill-rank", "1", "--kill-epoch", "2", "--kill-batch", "2"], 2)
    assert out.returncode != 0  # torchrun stops the job when one rank dies
    assert load_checkpoint(run / "teacher.pt")["epoch"] == 1
    assert [r["epoch"] for r in _lines(run / "metrics_teacher.jsonl")] == [1]
    assert not (run / "ensemble.pt").exists()

    again = _launch([str(WORKER), str(run), "--resume"], 1)  # resumed by one process
    assert again.returncode == 0, again.stderr[-3000:]
    lines = _lines(run / "metrics_teacher.jsonl")
    assert [(r["epoch"], r["world_size"]) for r in lines] == [(1, 2), (2, 1)]
    for name in ("teacher_pre_finetune.pt", "ensemble.pt"):
        _close(load_checkpoint(run / name)["model"], load_checkpoint(one_process / name)["model"])
    want = _lines(one_process / "metrics_teacher.jsonl")
    assert [r["test_accuracy"] for r in lines] == [r["test_accuracy"] for r in want]


@slow
def test_a_world_size_that_does_not_divide_the_batch_fails_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    out = _launch(["-m", "sne_loihi", "teacher", "--run-dir", str(run), "--teacher-batch-size", "33", "--teacher-epochs", "1",
                   "--device", "cpu", "--no-progress"], 2)
    assert out.returncode != 0
    ours = [line for line in out.stderr.splitlines() if line.startswith("error")]
    assert ours == ["error: teacher.batch_size 33 does not divide over 2 processes (per-process batch = batch / "
                    "world size); use a multiple of 2 or another --nproc-per-node"]
    # no traceback through our code (torchrun adds its own summary of the failed workers)
    assert not [line for line in out.stderr.splitlines() if line.strip().startswith("File ") and "/sne_loihi/" in line]
    assert not run.exists()


# ---- device-independent parts, in-process ---------------------------------------------
@pytest.mark.parametrize("total,world", [(64, 2), (7, 3), (5, 4), (32, 1)])
def test_shards_cover_the_global_batch_in_order(total: int, world: int) -> None:
    shards = [DistContext(rank, world).shard(total) for rank in range(world)]
    assert [i for s in shards for i in range(s.start, s.stop)] == list(range(total))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    weights = [DistContext(r, world).loss_weight(s) for r, s in enumerate(shards)]
    if world == 1:
        assert weights == [None]  # one process: the loss is used as it is
    else:  # DDP averages: mean over ranks of weight * shard mean = global mean
        assert sum(weights) / world == pytest.approx(1.0) and sum(len(s) for s in shards) == total


def test_batch_checks_are_one_line_config_errors() -> None:
    check_divides(64, "train.batch_size", world_size=2)
    with pytest.raises(ConfigError, match=r"^train.batch_size 64 does not divide over 3 processes") as err:
        check_divides(64, "train.batch_size", world_size=3)
    assert "\n" not in str(err.value)
    DistContext(0, 2).check_last_batch(98, 32, "teacher training")  # a last batch of 2: one sample each
    DistContext().check_last_batch(97, 32, "teacher training")  # one process takes any last batch
    with pytest.raises(ConfigError, match="last batch of 97 samples holds 1, fewer than the 2 processes"):
        DistContext(0, 2).check_last_batch(97, 32, "teacher training")


def test_sharded_dropout_draws_the_one_process_mask() -> None:
    x = torch.randn(6, 10)
    torch.manual_seed(3)
    want = F.dropout(x, 0.3, True)
    layer = nn.Sequential(nn.Dropout(0.3)).train()
    ctx = DistContext(1, 2)  # any context with world > 1 swaps the class
    parts = []
    for rank in range(2):
        torch.manual_seed(3)  # every rank has the same RNG state
        shard = DistContext(rank, 2).shard(6)
        with ctx.training(layer), ctx.step(shard):
            assert type(layer[0]) is sd.ShardedDropout
            parts.append(layer(x[shard.start : shard.stop]))
    assert type(layer[0]) is nn.Dropout  # swapped back
    assert torch.equal(torch.cat(parts), want)


def test_synced_batchnorm_equals_batchnorm() -> None:
    """With one rank the all-reduces are identities: forward, running stats and gradients must
    be those of torch's BatchNorm (the 2-process test covers the sums over ranks). The process
    group lives in a child process under a timeout (a CI run once hung after this test, in the
    in-process group's tear-down, where pytest-timeout's signal cannot interrupt gloo)."""
    out = _bounded([sys.executable, str(REPO / "tests" / "gloo_one_rank.py")], timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().endswith("synced batchnorm == batchnorm")


def test_one_process_context_changes_nothing() -> None:
    ctx = DistContext()
    model = nn.Sequential(nn.BatchNorm1d(3), nn.Dropout(0.5))
    with ctx.training(model), ctx.step(Shard(0, 4, 4)):
        assert type(model[0]) is nn.BatchNorm1d and type(model[1]) is nn.Dropout
    assert ctx.wrap(model, torch.device("cpu")) is model
    assert ctx.sum({"a": 1.5}, torch.device("cpu")) == {"a": 1.5}
    assert ctx.record() == {"world_size": 1, "dist_backend": "none"}


def test_cpu_transfers_and_amp_switch() -> None:
    cpu = torch.device("cpu")
    t = torch.ones(3)
    assert sd.to_device(t, cpu) is t  # no pinning, no copy on the CPU
    assert sd.grad_scaler(cpu, True) is None  # bfloat16 needs no loss scaling
    with sd.autocast(cpu, False):
        assert not torch.is_autocast_cpu_enabled()
    with sd.autocast(cpu, True):
        assert torch.is_autocast_cpu_enabled()


def test_teacher_step_amp_off_is_the_float32_step_and_amp_on_trains() -> None:
    from sne_loihi.train.teacher import teacher_step

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
        return model, torch.optim.Adam(model.parameters(), lr=1e-2)

    x, y = torch.rand(8, 1, 4, 4), torch.arange(8) % 4
    model, opt = fresh()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    off, off_opt = fresh()
    got, _ = teacher_step(off, off_opt, x, y, amp=False)
    assert torch.equal(got, loss)
    for a, b in zip(off.parameters(), model.parameters()):
        assert torch.equal(a, b)
    amp, amp_opt = fresh()
    before = [p.detach().clone() for p in amp.parameters()]
    got, logits = teacher_step(amp, amp_opt, x, y, amp=True)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(got)
    assert all(not torch.equal(a, b) for a, b in zip(amp.parameters(), before))


@pytest.mark.parametrize("kernels", [True, False])
def test_teacher_amp_on_a_cpu_without_bfloat16_kernels_trains_in_float32_and_says_so(
        kernels: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture) -> None:
    """Emulated bfloat16 is tens of times slower than float32 (54.7x measured, Zen 3 EPYC): there
    ``teacher.amp = true`` trains in float32 with a warning, and every epoch record says which."""
    from typer.testing import CliRunner

    from sne_loihi.cli import app

    monkeypatch.setattr(sd, "cpu_has_bf16_kernels", lambda: kernels)
    run = tmp_path / "run"
    result = CliRunner().invoke(app, ["teacher", "--dataset", "digits", "--run-dir", str(run), "--teacher-epochs", "1",
                                      "--max-train", "120", "--max-test", "40", "--set", "teacher.amp=true",
                                      "--threads", "2", "--no-progress"])
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in (run / "metrics_teacher.jsonl").read_text().splitlines()]
    assert [r["amp"] for r in records] == [kernels]
    warned = "no bfloat16 kernels" in result.stderr + capfd.readouterr().err
    assert warned == (not kernels)
    assert sd.amp_in_use(torch.device("cpu"), False) is False  # off stays off whatever the CPU
