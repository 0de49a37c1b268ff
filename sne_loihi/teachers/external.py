"""A user's own model as teacher: ``package.module:function`` factory + state_dict + layer name."""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sne_loihi.config import TeacherConfig
from sne_loihi.errors import CheckpointError, ConfigError, UnsafeFileError


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (errors are reported on one line)."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


class ExternalTeacher(nn.Module):
    """Wraps any classifier: ``forward`` gives its logits, ``features`` a named layer's output.

    The output of submodule ``feature_layer`` is captured by a forward hook and flattened.
    For the distillation contract f_T should be non-negative (e.g. a ReLU's output).

    Args:
        model: The user's network; ``model(x_nchw)`` must return logits ``[N, num_classes]``.
        feature_layer: Name of a submodule (as in ``model.named_modules()``).
        in_shape: ``(C, H, W)`` used to probe the output shapes once.
        num_classes: Expected number of logits.

    Raises:
        ConfigError: Unknown layer name, or the model's outputs do not have the expected shapes.
    """

    def __init__(self, model: nn.Module, feature_layer: str, in_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        modules = dict(model.named_modules())
        if feature_layer not in modules or feature_layer == "":
            names = [n for n in modules if n]
            hint = ", ".join(names[-6:]) if names else "(model has no submodules)"
            raise ConfigError(f"external teacher has no layer {feature_layer!r}; valid names include: {hint}")
        self.model = model
        self.feature_layer = feature_layer
        self._captured: torch.Tensor | None = None
        modules[feature_layer].register_forward_hook(self._capture)
        self.feature_dim = self._probe(in_shape, num_classes)

    def _capture(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self._captured = output

    def _probe(self, in_shape: tuple[int, int, int], num_classes: int) -> int:
        was_training = self.model.training
        param = next(self.model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        self.model.eval()
        try:
            with torch.no_grad():
                logits = self.forward(torch.zeros(2, *in_shape, device=device))
                feats = self._take_features(batch=2)
        except ConfigError:
            raise
        except Exception as exc:
            raise ConfigError(f"external teacher fails on input of shape {tuple(in_shape)}: {_one_line(exc)}") from None
        finally:
            self.model.train(was_training)
        if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (2, num_classes):
            got = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
            raise ConfigError(f"external teacher must return logits [N, {num_classes}], got {got}")
        return int(feats.shape[1])

    def _take_features(self, batch: int | None = None) -> torch.Tensor:
        out, self._captured = self._captured, None
        if not isinstance(out, torch.Tensor):
            got = "nothing" if out is None else type(out).__name__
            raise ConfigError(f"external teacher layer {self.feature_layer!r} produced {got}, expected a tensor")
        if batch is not None and (out.dim() < 2 or out.shape[0] != batch):
            raise ConfigError(f"external teacher layer {self.feature_layer!r} gives shape {tuple(out.shape)} for "
                              f"{batch} images; its first axis must be the batch (e.g. batch_first=True)")
        return torch.flatten(out, 1)

    def forward(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """The wrapped model's logits."""
        return self.model(x_nchw)

    def features(self, x_nchw: torch.Tensor) -> torch.Tensor:
        """Flattened output of ``feature_layer`` ``[N, feature_dim]`` (runs the full model)."""
        self.model(x_nchw)
        return self._take_features()


#: Which factories the current command may import: ``(trust_all, names)``. Set by the CLI
#: from ``--factory`` / ``--trust-factory`` (:func:`trusted_factories`); empty by default.
_TRUSTED: ContextVar[tuple[bool, frozenset[str]]] = ContextVar("sne_trusted_factories", default=(False, frozenset()))


@contextmanager
def trusted_factories(names: Iterable[str | None] = (), *, trust_all: bool = False) -> Iterator[None]:
    """Within this block, a stored config or checkpoint may name these factories (or any, with
    ``trust_all``) and :func:`require_trusted_factory` lets them be imported.

    Args:
        names: ``"package.module:function"`` strings the user gave on the command line.
        trust_all: The user passed ``--trust-factory``.
    """
    token = _TRUSTED.set((trust_all, frozenset(n.strip() for n in names if n)))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def require_trusted_factory(spec: str | None, source: str | Path) -> None:
    """Refuse to import a factory that only a stored file names.

    Importing a factory runs the user's code, so a factory named by a config or checkpoint
    (``source``) is imported only when the user named the same factory on the command line or
    passed ``--trust-factory`` (:func:`trusted_factories`).

    Raises:
        ConfigError: The factory is not trusted in this context.
    """
    trust_all, names = _TRUSTED.get()
    if not (spec or "").strip():
        raise ConfigError("teacher.arch external needs its factory: --factory pkg.module:function (a function "
                          "returning your torch.nn.Module)")
    if trust_all or (spec or "").strip() in names:
        return
    raise ConfigError(
        f"{source} names the external teacher factory {spec!r}, and importing it would run its code: "
        f"it is imported only when named with --factory (--factory {spec} for 'sne teacher'; not --set) "
        "or with --trust-factory"
    )


def import_factory(spec: str | None) -> Any:
    """Resolve ``"package.module:function"`` to the callable.

    Raises:
        ConfigError: Malformed string, import failure or missing attribute.
    """
    if not spec or spec.count(":") != 1 or not all(part.strip() for part in spec.split(":")):
        raise ConfigError(f"teacher.factory must look like 'package.module:function', got {spec!r}")
    module_name, attr = (part.strip() for part in spec.split(":"))
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise ConfigError(f"cannot import teacher factory module {module_name!r}: {_one_line(exc)}") from None
    except SystemExit as exc:  # a script that parses sys.argv or exits when imported
        raise ConfigError(f"teacher factory module {module_name!r} exited while being imported (SystemExit "
                          f"{exc.code!r}); keep its script code under if __name__ == '__main__':") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise ConfigError(f"teacher factory {spec!r}: {module_name} has no callable {attr!r}")
    return fn


def _state_dict(payload: Any, path: Path) -> Mapping[str, torch.Tensor]:
    """A plain state_dict, or one stored under ``"state_dict"`` / ``"model"``."""
    if isinstance(payload, Mapping) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload
    if isinstance(payload, Mapping):
        for key in ("state_dict", "model"):
            inner = payload.get(key)
            if isinstance(inner, Mapping) and all(isinstance(v, torch.Tensor) for v in inner.values()):
                return inner
    raise CheckpointError(f"{path} is not a state_dict (a mapping of names to tensors)")


def load_external_weights(model: nn.Module, checkpoint: str | Path) -> None:
    """Load a state_dict file into ``model`` (:func:`sne_loihi.io.load_torch_file`: no code
    runs; strict keys).

    Raises:
        UnsafeFileError: The file is a TorchScript archive or pickles more than plain data.
        CheckpointError: Missing, corrupt or mismatched checkpoint.
    """
    from sne_loihi.io import load_torch_file

    path = Path(checkpoint).expanduser()
    try:
        payload = load_torch_file(path, what="external teacher checkpoint")
    except UnsafeFileError as exc:
        hint = "; save model.state_dict(), not the model object" if "Unsupported class" in str(exc) else ""
        raise UnsafeFileError(f"{exc}{hint}") from None
    state = _state_dict(payload, path)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit the factory's model: missing keys {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected keys {unexpected[:3]}{'...' if len(unexpected) > 3 else ''}"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{path} does not fit the factory's model: {detail}") from None


def build_external(cfg: TeacherConfig, in_shape: tuple[int, int, int], num_classes: int) -> ExternalTeacher:
    """Build the user's model from ``cfg.factory``, load ``cfg.checkpoint`` if given, wrap it.

    Without ``cfg.checkpoint`` the model keeps the weights its factory gave it (it can then be
    trained like a built-in teacher).

    Raises:
        ConfigError: Bad factory string, import failure, non-module result, missing or unknown
            ``feature_layer``, wrong output shapes.
        CheckpointError: Missing, corrupt or mismatched checkpoint.
    """
    factory = import_factory(cfg.factory)
    try:
        model = factory()
    except Exception as exc:
        raise ConfigError(f"teacher factory {cfg.factory!r} failed: {_one_line(exc)}") from None
    if not isinstance(model, nn.Module):
        raise ConfigError(f"teacher factory {cfg.factory!r} returned {type(model).__name__}, expected a torch nn.Module")
    if not cfg.feature_layer:
        names = [n for n, _ in model.named_modules() if n]
        raise ConfigError(f"teacher.feature_layer is required for an external teacher; e.g. one of: {', '.join(names[-6:])}")
    if cfg.checkpoint:
        load_external_weights(model, cfg.checkpoint)
    return ExternalTeacher(model, cfg.feature_layer, in_shape, num_classes)
