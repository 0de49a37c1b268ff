"""A tiny digits run (teacher -> fine-tuning -> ensemble) for the torchrun tests.

Run it directly (one process) or with ``python -m torch.distributed.run --nproc-per-node 2``.
Not collected by pytest (no ``test_`` prefix).

Usage: ``dist_worker.py RUN_DIR [--resume] [--kill-rank R --kill-epoch E --kill-batch B]
[--audit FILE]``

``--kill-*``: rank R SIGKILLs itself at batch B of teacher epoch E (a real crash, no clean-up).
``--audit``: ranks other than 0 record every file they open for writing, rename or create
under RUN_DIR (Python audit events) and write the list to ``FILE.rank{R}`` at exit.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
from pathlib import Path

import torch

from sne_loihi.config import DataConfig, EnsembleConfig, FinetuneConfig, PartitionStrategy, RunConfig, \
    StudentConfig, TeacherConfig, TrainConfig


def config() -> RunConfig:
    return RunConfig(
        data=DataConfig(max_train=96, max_test=40),
        teacher=TeacherConfig(epochs=2, batch_size=32),
        student=StudentConfig(arch="digits_tiny", time_steps=2),
        ensemble=EnsembleConfig(num_students=2, partition=PartitionStrategy.FINETUNE),
        finetune=FinetuneConfig(epochs=1),
        train=TrainConfig(epochs=1, batch_size=32, device="cpu", threads=1),
    )


def _audit(run_dir: Path, out: Path) -> None:
    root = str(run_dir.resolve())
    seen: list[str] = []

    def hook(event: str, args: tuple) -> None:
        if event == "open" and isinstance(args[0], (str, os.PathLike)):
            path, mode, flags = str(args[0]), args[1], args[2]
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
            if writing and os.path.abspath(path).startswith(root):
                seen.append(f"open {path}")
        elif event in ("os.rename", "os.mkdir", "os.remove", "shutil.copyfile") and args:
            if os.path.abspath(str(args[0])).startswith(root) or (
                    len(args) > 1 and os.path.abspath(str(args[1])).startswith(root)):
                seen.append(f"{event} {args[0]}")

    sys.addaudithook(hook)
    atexit.register(lambda: out.write_text(json.dumps(seen)))


def _kill_at(rank: int, epoch: int, batch: int) -> None:
    from sne_loihi.distributed import env_rank
    from sne_loihi.train import teacher as teacher_mod

    if env_rank() != rank:
        return
    real = teacher_mod.batch_indices
    calls = {"epochs": 0}

    def patched(n, batch_size, generator):
        if generator is not None:
            calls["epochs"] += 1
        for i, idx in enumerate(real(n, batch_size, generator)):
            if generator is not None and calls["epochs"] == epoch and i == batch - 1:
                os.kill(os.getpid(), signal.SIGKILL)
            yield idx

    teacher_mod.batch_indices = patched


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--kill-rank", type=int)
    parser.add_argument("--kill-epoch", type=int, default=2)
    parser.add_argument("--kill-batch", type=int, default=2)
    parser.add_argument("--audit", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from sne_loihi.distributed import env_rank
    from sne_loihi.run import Run
    from sne_loihi.train.finetune_stage import finetune_if_asked
    from sne_loihi.train.stages import prepare_run_dir, students_stage
    from sne_loihi.train.teacher import TEACHER_FILE, train_teacher

    if args.audit is not None and env_rank() != 0:
        _audit(args.run_dir, Path(f"{args.audit}.rank{env_rank()}"))
    if args.kill_rank is not None:
        _kill_at(args.kill_rank, args.kill_epoch, args.kill_batch)
    run = Run(args.run_dir, config())
    prepare_run_dir(run, resume=args.resume, checkpoints=(TEACHER_FILE,))
    train_teacher(run, resume=args.resume, progress=False)
    finetune_if_asked(run, progress=False)
    students_stage(run, resume=args.resume, progress=False)


if __name__ == "__main__":
    main()
