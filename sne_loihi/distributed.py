"""Data-parallel training under ``torchrun``: process group, sharding, reductions, rank-0 files.

A training loop asks :func:`setup` for its :class:`DistContext`. Outside ``torchrun`` (no
``RANK``/``WORLD_SIZE`` in the environment) that is the one-process context and nothing below
changes a single-process run. Under ``torchrun`` it initialises ``torch.distributed`` once per
process (NCCL for CUDA, gloo for CPU; ``SNE_DIST_BACKEND`` overrides) and prints the world once.

Same results as one process (up to float summation order):

* Every rank draws the same global batch from the run's seeded generator (the one-process
  order), augments the whole global batch with the same generator and keeps its contiguous
  shard (:meth:`DistContext.shard`): the union of the shards is exactly the one-process batch
  and every rank's RNG streams stay equal, so a checkpoint of rank 0 resumes any world size.
  ``torch.utils.data.DistributedSampler`` is not used: it pads the data with repeated samples
  and shuffles per rank with ``seed + epoch``, which would change the batches.
* The per-rank loss (a mean over the shard) is weighted by ``world * n_rank / n_global``
  (:meth:`DistContext.loss_weight`), so DDP's gradient average is the global batch's mean.
* BatchNorm layers use the statistics of the whole global batch (:class:`SyncedBatchNorm`,
  plain all-reduces: runs on gloo and NCCL) and dropout draws the one-process mask of the
  global batch and keeps the shard's rows (:class:`ShardedDropout`), both only while
  :meth:`DistContext.training` is active and only with more than one process.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sne_loihi.errors import ConfigError

#: Environment variable that overrides the process-group backend (``gloo``, ``nccl``, ``mpi``).
BACKEND_ENV = "SNE_DIST_BACKEND"


def env_rank() -> int:
    """This process's global rank from ``torchrun``'s environment (0 outside torchrun)."""
    return int(os.environ.get("RANK", "0"))


def env_world_size() -> int:
    """The number of processes from ``torchrun``'s environment (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 (or no torchrun): the process that writes files and shows progress."""
    return env_rank() == 0


def check_divides(batch_size: int, what: str, world_size: int | None = None) -> None:
    """The global batch must split into equal per-rank batches.

    Raises:
        ConfigError: ``batch_size`` is not a multiple of the world size.
    """
    world = env_world_size() if world_size is None else world_size
    if world > 1 and batch_size % world:
        raise ConfigError(
            f"{what} {batch_size} does not divide over {world} processes (per-process batch = batch / world "
            f"size); use a multiple of {world} or another --nproc-per-node"
        )


@dataclass(frozen=True)
class Shard:
    """Rows ``start:stop`` of a global batch of ``total`` samples belong to this rank."""

    start: int
    stop: int
    total: int

    def __len__(self) -> int:
        return self.stop - self.start


#: The shard of the step being trained (read by :class:`ShardedDropout`); ``None`` outside.
_CURRENT_SHARD: Shard | None = None


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in a data-parallel job (one process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def record(self) -> dict[str, Any]:
        """What the metrics record about the world (never the config: a run may resume on another)."""
        return {"world_size": self.world_size, "dist_backend": self.backend or "none"}

    def shard(self, total: int) -> Shard:
        """This rank's contiguous part of ``total`` rows (equal parts; the first ``total % world``
        ranks take one more)."""
        base, extra = divmod(total, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return Shard(start, start + base + (1 if self.rank < extra else 0), total)

    def check_last_batch(self, samples: int, batch_size: int, what: str) -> None:
        """Every rank needs at least one sample of every batch (BatchNorm, DDP)."""
        last = samples % batch_size
        if self.distributed and 0 < last < self.world_size:
            raise ConfigError(
                f"{what}: the last batch of {samples} samples holds {last}, fewer than the {self.world_size} "
                "processes; change the batch size or --max-train"
            )

    def loss_weight(self, shard: Shard) -> float | None:
        """Factor for the shard's mean loss so DDP's gradient average is the global mean
        (``None`` in one process: the loss is used as it is)."""
        if not self.distributed:
            return None
        return self.world_size * len(shard) / shard.total

    @contextlib.contextmanager
    def training(self, model: nn.Module) -> Iterator[None]:
        """While active (and with several processes), the model's BatchNorm layers use the
        global batch's statistics and its dropout layers the one-process masks."""
        if not self.distributed:
            yield
            return
        swapped = _swap_classes(model, _DISTRIBUTED_CLASSES)
        try:
            yield
        finally:
            for module, cls in swapped:
                module.__class__ = cls

    @contextlib.contextmanager
    def step(self, shard: Shard) -> Iterator[None]:
        """Mark ``shard`` as the rows of the global batch this rank trains on now."""
        global _CURRENT_SHARD
        previous, _CURRENT_SHARD = _CURRENT_SHARD, shard
        try:
            yield
        finally:
            _CURRENT_SHARD = previous

    def wrap(self, model: nn.Module, device: torch.device, *, find_unused: bool = False) -> nn.Module:
        """``DistributedDataParallel(model)`` with several processes, else ``model`` itself."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False,
                                       find_unused_parameters=find_unused)

    def comm_device(self, device: torch.device) -> torch.device:
        return device if self.backend == "nccl" else torch.device("cpu")

    def sum(self, values: dict[str, float], device: torch.device) -> dict[str, float]:
        """Sum float metrics over all ranks (float64)."""
        if not self.distributed:
            return dict(values)
        keys = sorted(values)
        t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=self.comm_device(device))
        torch.distributed.all_reduce(t)
        return dict(zip(keys, t.cpu().tolist()))

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier()

    def gather_rows(self, rows_nd: torch.Tensor, total: int, device: torch.device) -> torch.Tensor:
        """Concatenate every rank's :meth:`shard` of ``total`` rows (CPU result, rank order)."""
        if not self.distributed:
            return rows_nd
        size = -(-total // self.world_size)
        comm = self.comm_device(device)
        padded = rows_nd.new_zeros((size, *rows_nd.shape[1:]), device=comm)
        padded[: len(rows_nd)] = rows_nd.to(comm)
        parts = [torch.empty_like(padded) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, padded)
        shards = [self.__class__(r, self.world_size).shard(total) for r in range(self.world_size)]
        return torch.cat([p[: len(s)].cpu() for p, s in zip(parts, shards)])

    def broadcast_json(self, obj: Any, device: torch.device) -> Any:
        """Rank 0's JSON-able ``obj`` on every rank (plain bytes, nothing unpickled)."""
        if not self.distributed:
            return obj
        comm = self.comm_device(device)
        payload = json.dumps(obj).encode() if self.is_main else b""
        length = torch.tensor([len(payload)], dtype=torch.long, device=comm)
        torch.distributed.broadcast(length, 0)
        buf = torch.zeros(int(length), dtype=torch.uint8, device=comm)
        if self.is_main:
            buf[:] = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(comm)
        torch.distributed.broadcast(buf, 0)
        return json.loads(bytes(buf.cpu().tolist()).decode())

    def batches(
        self,
        order: Iterator[torch.Tensor],
        x_nchw: torch.Tensor,
        y: torch.Tensor,
        device: torch.device,
        augment: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> Iterator[tuple[Shard, torch.Tensor, torch.Tensor]]:
        """This rank's part of each global batch of ``order``, on ``device``.

        The whole global batch is indexed and augmented (the same random numbers as one
        process), then the rank keeps its :meth:`shard`; :meth:`step` is active while the
        caller trains on it.

        Yields:
            ``(shard, x_nchw of the shard, labels of the shard)``.
        """
        for idx in order:
            x = x_nchw[idx]
            if augment is not None:
                x = augment(x)
            shard = self.shard(len(idx))
            part = slice(shard.start, shard.stop)
            with self.step(shard):
                yield shard, to_device(x[part], device), to_device(y[idx][part], device)


_CONTEXT: DistContext | None = None


def current() -> DistContext:
    """The context :func:`setup` made (one process if none yet)."""
    return _CONTEXT or DistContext()


def rank_device(device: torch.device) -> torch.device:
    """Under torchrun on CUDA each local rank gets its own GPU (``cuda:LOCAL_RANK``).

    Raises:
        ConfigError: A CUDA index was asked for while several processes share this machine.
    """
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if device.type != "cuda" or env_world_size() == 1:
        return device
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.index is not None and local_world > 1 and device.index != local:
        raise ConfigError(f"device {device} with {local_world} processes on this machine: use --device cuda "
                          "(each process takes the GPU of its local rank)")
    return torch.device("cuda", local)


def setup(device: torch.device) -> DistContext:
    """Initialise the process group once (under torchrun) and return this process's context.

    The backend is NCCL for CUDA, gloo otherwise, or ``SNE_DIST_BACKEND``. Rank 0 prints the
    world size, backend and ranks once.
    """
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    world = env_world_size()
    if world == 1:
        _CONTEXT = DistContext()
        return _CONTEXT
    import torch.distributed as dist

    backend = os.environ.get(BACKEND_ENV) or ("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        try:
            dist.init_process_group(backend=backend)
        except (RuntimeError, ValueError) as exc:
            raise ConfigError(f"cannot start torch.distributed with backend {backend!r}: "
                              f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
    _CONTEXT = DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")),
                           dist.get_backend())
    if _CONTEXT.is_main:
        print(f"distributed: world size {_CONTEXT.world_size}, backend {_CONTEXT.backend}, ranks 0..{world - 1} "
              f"({os.environ.get('LOCAL_WORLD_SIZE', '?')} per machine on {os.environ.get('GROUP_WORLD_SIZE', '?')} "
              f"machine(s)); device of rank 0: {device}", flush=True)
    return _CONTEXT


# ---- transfers and mixed precision -----------------------------------------------------
def to_device(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Copy a CPU batch to ``device``: pinned and ``non_blocking`` for CUDA, as is otherwise."""
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """Mixed precision for a forward pass: float16 on CUDA, bfloat16 on CPU; a no-op when off."""
    if not enabled:
        return contextlib.nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def cpu_has_bf16_kernels() -> bool:
    """Whether oneDNN has bfloat16 kernels for this CPU (it asks for AVX-512 on x86).

    Without them torch emulates bfloat16 autocast: the ``airbench`` teacher's training step
    measured 54.7x slower than float32 on a 2-core AMD EPYC (Zen 3, AVX2 only), batch 256. A
    torch without the check is taken to have the kernels.
    """
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    return True if check is None else bool(check())


def amp_in_use(device: torch.device, requested: bool) -> bool:
    """The mixed precision a run trains in: ``requested``, except on a CPU without bfloat16
    kernels (:func:`cpu_has_bf16_kernels`), where it says so on stderr and trains in float32
    (same results up to rounding, tens of times faster there)."""
    if requested and device.type == "cpu" and not cpu_has_bf16_kernels():
        print("warning: teacher.amp = true, but this CPU has no bfloat16 kernels (oneDNN needs AVX-512), where "
              "bfloat16 runs tens of times slower than float32: training in float32", file=sys.stderr)
        return False
    return requested


def grad_scaler(device: torch.device, enabled: bool) -> torch.cuda.amp.GradScaler | None:
    """A loss scaler for float16 AMP on CUDA (bfloat16 on CPU needs none)."""
    if enabled and device.type == "cuda":
        return torch.cuda.amp.GradScaler()
    return None


def backward_step(loss: torch.Tensor, optimizer: torch.optim.Optimizer, scaler: Any = None) -> None:
    """``zero_grad; backward; step`` (through ``scaler`` when one is given)."""
    optimizer.zero_grad(set_to_none=True)
    if scaler is None:
        loss.backward()
        optimizer.step()
        return
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()


# ---- BatchNorm over the global batch, dropout masks of the global batch -----------------
class _SyncBatchNormFn(torch.autograd.Function):
    """Batch normalisation with the mean/variance of all ranks' rows (two all-reduces forward,
    one backward). Parameter gradients stay local sums: DDP averages them like the rest."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        ctx.dtype = x.dtype
        x = x.float()  # statistics in float32 (also under float16 autocast)
        dims = [d for d in range(x.ndim) if d != 1]
        shape = [1, -1] + [1] * (x.ndim - 2)
        count = torch.tensor([x.numel() // max(x.shape[1], 1)], dtype=x.dtype, device=x.device)
        stats = torch.cat([x.sum(dims), count])
        torch.distributed.all_reduce(stats)
        n = stats[-1]
        mean = stats[:-1] / n
        centred = x - mean.view(shape)
        sq = centred.square().sum(dims)
        torch.distributed.all_reduce(sq)
        var = sq / n
        invstd = torch.rsqrt(var + eps)
        xhat = centred * invstd.view(shape)
        y = xhat
        if weight is not None:
            y = y * weight.view(shape).float() + bias.view(shape).float()
        ctx.save_for_backward(xhat, invstd, weight, n)
        ctx.dims, ctx.shape = dims, shape
        ctx.mark_non_differentiable(mean, var, n)
        return y.to(ctx.dtype), mean, var, n

    @staticmethod
    def backward(ctx: Any, dy: torch.Tensor, *_: Any) -> tuple[torch.Tensor | None, ...]:
        xhat, invstd, weight, n = ctx.saved_tensors
        dims, shape = ctx.dims, ctx.shape
        dy = dy.float()
        local = torch.stack([dy.sum(dims), (dy * xhat).sum(dims)])
        grad_bias, grad_weight = local[0].clone(), local[1].clone()
        torch.distributed.all_reduce(local)
        sum_dy, sum_dy_xhat = local[0] / n, local[1] / n
        scale = invstd if weight is None else invstd * weight
        dx = ((dy - sum_dy.view(shape) - xhat * sum_dy_xhat.view(shape)) * scale.view(shape)).to(ctx.dtype)
        if weight is None:
            return dx, None, None, None
        return dx, grad_weight.to(weight.dtype), grad_bias.to(weight.dtype), None


class SyncedBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the global batch (all ranks).

    Swapped onto a model's BatchNorm layers by :meth:`DistContext.training` (same parameters,
    buffers and state-dict keys), so checkpoints hold plain BatchNorm layers. Also runs on
    CPU/gloo, which ``torch.nn.SyncBatchNorm`` (CUDA only) does not.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        if not (self.training and torch.distributed.is_initialized()):
            return super().forward(x)
        self._check_input_dim(x)
        y, mean, var, n = _SyncBatchNormFn.apply(x, self.weight, self.bias, self.eps)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = var * (n / (n - 1).clamp_min(1))
                self.running_mean.mul_(1 - factor).add_(mean, alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return y


class ShardedDropout(nn.Dropout):
    """Dropout whose mask is the rows of the mask one process draws for the global batch.

    All ranks share the torch RNG state, so each draws the same global mask (``F.dropout`` of
    ones shaped like the global batch: the same draws as one process's ``F.dropout``) and keeps
    its shard's rows; a run is then independent of the world size and all ranks stay in step.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        shard = _CURRENT_SHARD
        if not self.training or self.p == 0 or shard is None:
            return super().forward(x)
        ones = torch.ones((shard.total, *x.shape[1:]), dtype=x.dtype, device=x.device)
        return x * F.dropout(ones, self.p, True)[shard.start : shard.stop]


def _synced_class(cls: type) -> type:
    return type(f"Synced{cls.__name__}", (SyncedBatchNorm, cls), {"forward": SyncedBatchNorm.forward})


#: Layer class -> its distributed stand-in (same parameters and state-dict keys).
_DISTRIBUTED_CLASSES: dict[type, type] = {
    nn.BatchNorm1d: _synced_class(nn.BatchNorm1d),
    nn.BatchNorm2d: _synced_class(nn.BatchNorm2d),
    nn.BatchNorm3d: _synced_class(nn.BatchNorm3d),
    nn.Dropout: ShardedDropout,
}


def _swap_classes(model: nn.Module, table: dict[type, type]) -> list[tuple[nn.Module, type]]:
    swapped = []
    for module in model.modules():
        new = table.get(type(module))
        if new is not None:
            swapped.append((module, type(module)))
            module.__class__ = new
    return swapped
