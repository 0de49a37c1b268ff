"""Student architectures: ``STUDENT_ARCHS`` maps a name to ``fn(in_shape, out_features, width)``.

Every builder returns a tuple of :class:`LayerSpec` whose last layer is DENSE with
``out_features`` neurons (the student's share of the teacher's features). netx runs only
conv, flatten and dense layers, so where a VGG pools these students use a stride-2
convolution instead (all-convolutional down-sampling). Hidden widths are the base widths
times ``width``, rounded, at least 1; the output layer is never scaled.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from sne_loihi.config import NeuronLibrary, StudentConfig, StudentEngine, StudentNorm
from sne_loihi.errors import ConfigError
from sne_loihi.registry import Registry
from sne_loihi.students.spec import FLATTEN, LayerSpec, StudentSpec, conv, dense

ArchFn = Callable[[tuple[int, int, int], int, float], tuple[LayerSpec, ...]]

STUDENT_ARCHS: Registry[ArchFn] = Registry("student")


def scaled(base: int, width: float) -> int:
    """``round(base * width)``, at least 1."""
    return max(1, int(round(base * width)))


def _conv_stack(channels: Sequence[int], strides: Sequence[int], width: float) -> list[LayerSpec]:
    return [conv(scaled(c, width), stride=s) for c, s in zip(channels, strides)]


@STUDENT_ARCHS.register("digits_tiny")
def digits_tiny(in_shape: tuple[int, int, int], out_features: int, width: float) -> tuple[LayerSpec, ...]:
    """conv 4 (stride 2) -> flatten -> dense 32 -> dense out. For tests and smoke runs."""
    return (conv(scaled(4, width), stride=2), FLATTEN, dense(scaled(32, width)), dense(out_features))


@STUDENT_ARCHS.register("digits_small")
def digits_small(in_shape: tuple[int, int, int], out_features: int, width: float) -> tuple[LayerSpec, ...]:
    """conv 16 -> conv 32 (stride 2) -> flatten -> dense 128 -> dense out (for 8x8 digits)."""
    return (*_conv_stack((16, 32), (1, 2), width), FLATTEN, dense(scaled(128, width)), dense(out_features))


@STUDENT_ARCHS.register("vgg11")
def vgg11(in_shape: tuple[int, int, int], out_features: int, width: float) -> tuple[LayerSpec, ...]:
    """All-convolutional VGG11: 8 convs (64, 128, 256, 256, 512, 512, 512, 512) + dense out.

    VGG11 pools after convs 1, 2, 4, 6 and 8. Here the conv right after each of the first four
    pools has stride 2 (convs 2, 3, 5, 7), so a 32x32 input ends at 2x2x512; the fifth pool
    (after the last conv) is dropped and the dense layer reads the 2x2 map.
    """
    channels = (64, 128, 256, 256, 512, 512, 512, 512)
    strides = (1, 2, 2, 1, 2, 1, 2, 1)
    return (*_conv_stack(channels, strides, width), FLATTEN, dense(out_features))


@STUDENT_ARCHS.register("vgg5")
def vgg5(in_shape: tuple[int, int, int], out_features: int, width: float) -> tuple[LayerSpec, ...]:
    """All-convolutional VGG5: convs 64, 128 (s2), 256 (s2), 256 (s2) + dense out (32x32 -> 4x4)."""
    return (*_conv_stack((64, 128, 256, 256), (1, 2, 2, 2), width), FLATTEN, dense(out_features))


@STUDENT_ARCHS.register("vgg5mini")
def vgg5mini(in_shape: tuple[int, int, int], out_features: int, width: float) -> tuple[LayerSpec, ...]:
    """VGG5 with its last two convs at half width: 64, 128 (s2), 128 (s2), 128 (s2) + dense out."""
    return (*_conv_stack((64, 128, 128, 128), (1, 2, 2, 2), width), FLATTEN, dense(out_features))


def auto_student_arch(in_shape: tuple[int, int, int]) -> str:
    """The built-in student ``auto`` stands for: ``vgg5mini`` for images of at least 32x32,
    else ``digits_small``."""
    return "vgg5mini" if min(in_shape[1:]) >= 32 else "digits_small"


@STUDENT_ARCHS.register("auto")
def auto_student(in_shape: tuple[int, int, int], out_features: int, width: float) -> tuple[LayerSpec, ...]:
    """The student :func:`auto_student_arch` picks for ``in_shape``."""
    return STUDENT_ARCHS.get(auto_student_arch(in_shape))(in_shape, out_features, width)


def _with_first_layer_of(layers: Sequence[LayerSpec], cfg: StudentConfig, in_shape: tuple[int, int, int],
                         out_features: int) -> tuple[LayerSpec, ...]:
    """``layers`` with the first layer of the same architecture built at ``cfg.first_width``."""
    if not cfg.first_width > 0:
        raise ConfigError(f"student first_width must be > 0, got {cfg.first_width}")
    if len(layers) < 2:
        raise ConfigError(f"student.first_width: {cfg.arch}'s only layer is its output layer, which no width scales")
    first = STUDENT_ARCHS.get(cfg.arch)(in_shape, out_features, float(cfg.first_width))[0]
    return (first, *layers[1:])


def student_spec(cfg: StudentConfig, in_shape: tuple[int, int, int], out_features: int) -> StudentSpec:
    """The spec of a student built from the run config for one partition group.

    Args:
        cfg: Student settings (architecture, width and first-layer width, T, input bits,
            neuron, backend).
        in_shape: Input ``(C, H, W)``.
        out_features: The student's share of teacher features.

    Raises:
        ConfigError: Unknown architecture, bad width or a spec that cannot be built.
    """
    if not cfg.width > 0:
        raise ConfigError(f"student width must be > 0, got {cfg.width}")
    if out_features < 1:
        raise ConfigError(f"a student needs out_features >= 1, got {out_features}")
    in_shape = tuple(int(v) for v in in_shape)
    layers = STUDENT_ARCHS.get(cfg.arch)(in_shape, int(out_features), float(cfg.width))
    if cfg.first_width is not None and cfg.first_width != cfg.width:
        layers = _with_first_layer_of(layers, cfg, in_shape, int(out_features))
    return StudentSpec(
        layers=tuple(layers), in_shape=in_shape, out_features=int(out_features),
        time_steps=cfg.time_steps, input_bits=cfg.input_bits,
        neuron=dataclasses.replace(cfg.neuron), neuron_library=NeuronLibrary(cfg.neuron_library),
        engine=StudentEngine(cfg.engine),
        norm=StudentNorm(cfg.norm),
    )
