"""Up-front check of a run config, so an impossible option fails in a second with one line,
not after the teacher has trained for an hour (or leaving a half-made run folder behind)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from sne_loihi.config import Backend, FirstLayer, Optimizer, RunConfig, StudentConfig, StudentNorm
from sne_loihi.distributed import check_divides
from sne_loihi.errors import ConfigError, SneError
from sne_loihi.indices import parse_active


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _at_least(low: float) -> Callable[[Any], bool]:
    return lambda v: _number(v) and v >= low


def _positive(value: Any) -> bool:
    return _number(value) and value > 0


def _percentile(value: Any) -> bool:
    return _number(value) and 0 < value <= 100


def _count_from(low: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _negative(value: Any) -> bool:
    return _number(value) and value < 0


def _levels(value: Any) -> bool:
    return (isinstance(value, list) and all(_at_least(0)(v) and v <= MAX_NOISE_SIGMA for v in value)
            and len(set(value)) == len(value))


Rule = tuple[Callable[[Any], bool], str]

#: Most epochs a training section may ask for (days on any machine this runs on).
MAX_EPOCHS = 10_000
#: Widest student channel multiplier (64x an architecture's base widths).
MAX_STUDENT_WIDTH = 64
#: Most torch threads (more than any CPU this runs on has cores).
MAX_THREADS = 1024
#: Seeds numpy, torch and Python's random all take.
MAX_SEED = 2 ** 32 - 1
#: Time steps a student may take per sample (equal to the manifest's bound,
#: :data:`sne_loihi.netx_format.limits.MAX_TIME_STEPS`, not imported: the config front door stays light).
MAX_TIME_STEPS = 1024
#: Most students one Lava graph holds (:data:`sne_loihi.sim.lava_processes.ensemble.MAX_STUDENTS`,
#: not imported: the config front door never imports Lava).
MAX_LAVA_STUDENTS = 16
#: Largest Gaussian noise sigma (pixels lie in [0, 1]: at 10 the image is gone).
MAX_NOISE_SIGMA = 10.0
#: Most noise draws per level (each is a pass over the test set).
MAX_NOISE_REPEATS = 10_000
#: ``data.test_fraction`` range: both splits keep at least 1% of the data.
TEST_FRACTION_RANGE = (0.01, 0.99)


def _optimiser_rules(section: str, min_epochs: int) -> dict[str, Rule]:
    """The rules of a section that says how to optimise (``teacher``, ``train``)."""
    return {
        f"{section}.epochs": (_at_least(min_epochs), f">= {min_epochs}"),
        f"{section}.lr": (_positive, "> 0"),
        f"{section}.batch_size": (_at_least(1), ">= 1"),
        f"{section}.weight_decay": (_at_least(0), ">= 0"),
    }


#: ``dotted key -> (predicate, what it must be)``; checked in this order.
RULES: dict[str, Rule] = {
    "data.max_train": (_at_least(0), ">= 0 (0 = all)"),
    "data.max_test": (_at_least(0), ">= 0 (0 = all)"),
    "data.test_fraction": (lambda v: _number(v) and TEST_FRACTION_RANGE[0] <= v <= TEST_FRACTION_RANGE[1],
                           f"in [{TEST_FRACTION_RANGE[0]}, {TEST_FRACTION_RANGE[1]}] (both splits non-empty)"),
    "data.image_size": (lambda v: _count_from(0)(v) and v <= 4096, "an integer in 0..4096 (0 = keep the size)"),
    **_optimiser_rules("teacher", 0),
    "teacher.momentum": (lambda v: _number(v) and 0 <= v < 1, "in [0, 1)"),
    "teacher.label_smoothing": (lambda v: _number(v) and 0 <= v < 1, "in [0, 1)"),
    "teacher.warmup_fraction": (lambda v: _number(v) and 0 <= v < 1, "in [0, 1)"),
    "teacher.bias_lr_scale": (_positive, "> 0"),
    "teacher.lookahead_every": (_count_from(0), "an integer >= 0 (0 = off)"),
    "teacher.translate": (_count_from(0), "an integer >= 0 (pixels)"),
    "teacher.cutout": (_count_from(0), "an integer >= 0 (pixels; 0 = off)"),
    "student.width": (_positive, "> 0"),
    "student.first_width": (lambda v: v is None or _positive(v), "> 0 (unset: student.width)"),
    "student.time_steps": (_at_least(1), ">= 1"),
    "ensemble.num_students": (_at_least(1), ">= 1"),
    "ensemble.alpha": (_at_least(0), ">= 0 (0 = no distillation)"),
    "ensemble.feature_percentile": (_percentile, "in (0, 100]"),
    "ensemble.train_active": (_at_least(0), ">= 0 (0 = all students)"),
    **_optimiser_rules("train", 1),
    "train.threads": (_at_least(0), ">= 0 (0 = torch's default)"),
    "train.seed": (_count_from(0), "an integer >= 0"),
    "train.fold_epochs": (_count_from(0), "an integer >= 0"),
    "train.translate": (_count_from(0), "an integer >= 0 (pixels)"),
    "lava.samples": (_at_least(0), ">= 0 (0 = no Lava stage)"),
    "lava.capacity": (_at_least(1), ">= 1"),
    "finetune.beta": (_negative, "a negative number (L_sim is maximised)"),
    "finetune.epochs": (_count_from(1), "a positive integer"),
    "finetune.lr": (_positive, "a positive number"),
    "report.noise": (_levels, f"distinct finite numbers in 0..{MAX_NOISE_SIGMA:g}"),
    "report.repeats": (_count_from(1), ">= 1"),
    "report.batch_size": (_count_from(1), ">= 1"),
    "report.draw_batch": (_count_from(1), ">= 1"),
    "report.neurobench_samples": (_count_from(0), ">= 0 (0 = all)"),
    "pipeline.dropout_k": (lambda v: isinstance(v, list) and all(_count_from(1)(k) for k in v) and len(set(v)) == len(v),
                           "distinct integers >= 1"),
}

#: ``dotted key -> largest value``: what a run can use, checked after :data:`RULES` (a value
#: beyond it would overflow a seed, exhaust memory or run for years, not fail at once).
BOUNDS: dict[str, float] = {
    "teacher.epochs": MAX_EPOCHS,
    "student.width": MAX_STUDENT_WIDTH,
    "student.first_width": MAX_STUDENT_WIDTH,
    "student.time_steps": MAX_TIME_STEPS,
    "train.epochs": MAX_EPOCHS,
    "train.threads": MAX_THREADS,
    "train.seed": MAX_SEED,
    "train.fold_epochs": MAX_EPOCHS,
    "finetune.epochs": MAX_EPOCHS,
    "report.repeats": MAX_NOISE_REPEATS,
}


def check_lava_stage(cfg: RunConfig) -> None:
    """What the pipeline's Lava stage can run, checked before any training.

    Raises:
        ConfigError: More students than one Lava graph holds, with the stage on.
    """
    if cfg.lava.enabled and cfg.lava.samples > 0 and cfg.ensemble.num_students > MAX_LAVA_STUDENTS:
        raise ConfigError(f"the Lava stage runs at most {MAX_LAVA_STUDENTS} students in one graph, the ensemble has "
                          f"{cfg.ensemble.num_students}; train fewer, or skip the stage (--no-lava)")


def check_section(section: Any, name: str) -> None:
    """Check one config section's values (the :data:`RULES` of ``name.*``); also for a section
    built outside a :class:`RunConfig` (e.g. the data settings of a benchmark).

    Raises:
        ConfigError: The first impossible value, in one line naming its config key.
    """
    for key, (ok, want) in RULES.items():
        owner, field_name = key.split(".")
        if owner == name:
            value = getattr(section, field_name)
            if not ok(value):
                raise ConfigError(f"{key} must be {want}, got {value!r}")
            if key in BOUNDS and value is not None and value > BOUNDS[key]:
                raise ConfigError(f"{key} must be at most {BOUNDS[key]:,}, got {value!r}")
    if name == "report":  # an unknown profile fails now, not after hours of training
        from sne_loihi.cost.energy import resolve_profile

        resolve_profile(section.energy_profile)


def lava_loihi_installed() -> bool:
    """Whether Intel's lava-loihi extension is on the path, found without importing Lava
    (what ``lava.utils.loihi.is_installed`` looks for: ``lava.utils.loihi2_profiler``)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("lava")
    roots = list(spec.submodule_search_locations or []) if spec else []
    return any((Path(r) / "utils" / name).exists() for r in roots for name in ("loihi2_profiler", "loihi2_profiler.py"))


def check_student_norm(student: StudentConfig) -> None:
    """Refuse a ``student.norm`` that cannot train and fold (see :class:`StudentNorm`).

    Raises:
        ConfigError: ``folded`` asked for as a training choice, or batch norm for SLAYER
            students with a current decay below 1 (SpikingJelly students keep a float batch
            norm; nothing of theirs is folded).
    """
    norm = StudentNorm(student.norm)
    if norm is StudentNorm.FOLDED:
        raise ConfigError("student.norm 'folded' is the stored form of a trained 'batch' student; "
                          "train with 'batch' or 'none'")
    from sne_loihi.students.spec import norm_refusal

    why = norm_refusal(norm, student.neuron_library, student.neuron.current_decay, where="student.")
    if why is not None:
        raise ConfigError(why)


def first_layer_refusal(student: StudentConfig) -> str | None:
    """Why students built from ``student`` cannot take their first layer's input as a
    per-sample neuron bias (``lava.first_layer = "bias"``), or ``None`` when they can.

    The bias holds ``W * x + b`` exactly only when the CUBA current has no memory
    (``current_decay = 1``: the current is the step's synaptic input) and the input is the
    same graded image every step (SLAYER's encoding; a 1-bit input is binary spikes).
    """
    from sne_loihi.cost.first_layer import bias_drive_refusal

    return bias_drive_refusal(student.neuron_library, student.input_bits, student.neuron.current_decay)


def check_first_layer(cfg: RunConfig) -> None:
    """Refuse ``lava.first_layer = "bias"`` for students that cannot take it (``auto`` falls
    back per student at export and says so).

    Raises:
        ConfigError: One line naming the reason.
    """
    if FirstLayer(cfg.lava.first_layer) is not FirstLayer.BIAS:
        return
    why = first_layer_refusal(cfg.student)
    if why is not None:
        raise ConfigError(f"lava.first_layer 'bias' drives the first layer by a per-sample neuron bias, but {why}; "
                          "use 'synaptic' or 'auto'")


def check_config(cfg: RunConfig) -> None:
    """Check value ranges, architecture names and the device before any work is done.

    Raises:
        ConfigError: The first impossible setting, in one line naming the config key.
    """
    from sne_loihi.students import STUDENT_ARCHS
    from sne_loihi.students.spec import MAX_INPUT_BITS, check_neuron
    from sne_loihi.teachers import EXTERNAL, TEACHERS
    from sne_loihi.device import resolve_device

    for name in dict.fromkeys(key.split(".")[0] for key in RULES):  # RULES order
        check_section(getattr(cfg, name), name)
    check_neuron(cfg.student.neuron)
    check_student_norm(cfg.student)
    if cfg.train.fold_epochs and cfg.student.norm is not StudentNorm.BATCH:
        raise ConfigError(f"train.fold_epochs {cfg.train.fold_epochs} fine-tunes folded batch norms, but "
                          f"student.norm is {StudentNorm(cfg.student.norm).value!r}; set student.norm = 'batch' or 0")
    if cfg.teacher.momentum != 0.9 and Optimizer(cfg.teacher.optimizer) is not Optimizer.SGD:
        raise ConfigError(f"teacher.momentum {cfg.teacher.momentum} is SGD's, but teacher.optimizer is "
                          f"{Optimizer(cfg.teacher.optimizer).value!r}; set teacher.optimizer = 'sgd' or drop it")
    if cfg.data.data_dir and cfg.data.name == "digits":
        raise ConfigError(f"data.data_dir ({cfg.data.data_dir}) is set, but the digits data set is embedded and "
                          "reads no folder; drop --data-dir or use --dataset cifar10")
    if not 1 <= cfg.student.input_bits <= MAX_INPUT_BITS:
        raise ConfigError(f"student.input_bits must be in 1..{MAX_INPUT_BITS}, got {cfg.student.input_bits}")
    if cfg.ensemble.train_active > cfg.ensemble.num_students:
        raise ConfigError(
            f"ensemble.train_active {cfg.ensemble.train_active} exceeds the {cfg.ensemble.num_students} students"
        )
    for entry in cfg.lava.active:  # the Lava stage's active sets, checked before any training
        try:
            parse_active(entry, cfg.ensemble.num_students, cfg.train.seed)
        except SneError as exc:
            raise ConfigError(f"lava.active: {exc}") from None
    if (cfg.lava.enabled and cfg.lava.samples > 0 and cfg.lava.backend is Backend.LOIHI2
            and not lava_loihi_installed()):
        raise ConfigError("lava.backend loihi2 needs Intel's lava-loihi extension (INRC), which is not installed; "
                          "use --backend cpu or auto")
    bad = [t for t in cfg.lava.cascade if not _at_least(0)(t)]
    if bad:
        raise ConfigError(f"lava.cascade thresholds must be numbers >= 0, got {bad[0]!r}")
    twice = sorted({t for t in cfg.lava.cascade if list(cfg.lava.cascade).count(t) > 1})
    if twice:  # the same threshold simulated (and reported) twice
        raise ConfigError(f"lava.cascade names the threshold {twice[0]:g} twice")
    check_first_layer(cfg)
    if cfg.teacher.arch != EXTERNAL:
        TEACHERS.get(cfg.teacher.arch)
    STUDENT_ARCHS.get(cfg.student.arch)
    resolve_device(cfg.train.device)
    check_divides(cfg.teacher.batch_size, "teacher.batch_size")  # under torchrun: world size from the environment
    check_divides(cfg.train.batch_size, "train.batch_size")
    for k in cfg.pipeline.dropout_k:
        if not 0 < k < cfg.ensemble.num_students:
            raise ConfigError(f"pipeline.dropout_k: {k} must be in 1..{cfg.ensemble.num_students - 1}")

