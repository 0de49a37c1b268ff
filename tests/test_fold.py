"""``student.norm = "batch"``: batch norm while training, folded into weights and a neuron bias.

The folded student is the network netx and Lava run, so the checks here are that the fold
computes what the batch norm computed (up to the weights' requantisation), that both engines run
both forms identically, that training ends with the folded ensemble on disk, and that the
impossible settings are refused in one line.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from sne_loihi.checks import check_student_norm
from sne_loihi.config import DataConfig, LavaConfig, NeuronConfig, RunConfig, StudentConfig, StudentEngine, StudentNorm, \
    TeacherConfig, TrainConfig
from sne_loihi.errors import ConfigError
from sne_loihi.io import load_checkpoint
from sne_loihi.analysis.runreport import fold_markdown
from sne_loihi.ensemble.checkpoint import load_ensemble
from sne_loihi.students import StudentSpec, build_student, encode_input, student_spec
from sne_loihi.students.fold import BIAS_STEP, ChannelBatchNorm, fold_student, norm_layers, recalibrate
from sne_loihi.run import Run
from sne_loihi.train.stages import students_stage
from sne_loihi.train.teacher import train_teacher

DIGITS = (1, 8, 8)


def _spec(norm: StudentNorm = StudentNorm.BATCH, arch: str = "digits_small") -> StudentSpec:
    cfg = StudentConfig(arch=arch, time_steps=4, neuron=NeuronConfig(current_decay=1.0), norm=norm)
    return student_spec(cfg, DIGITS, 6)


def _x(n: int = 24, seed: int = 0) -> torch.Tensor:
    return encode_input(torch.rand(n, *DIGITS, generator=torch.Generator().manual_seed(seed)), 4, 4)


def _trained_norms(student: torch.nn.Module) -> None:
    """Statistics and affine parameters far from their initial values, as after training, with
    fold scales ``s = weight / std`` in 0.5 .. 2.5 (as measured on CIFAR: 0.1 .. 7.6), so no folded
    weight leaves SLAYER's 8-bit range."""
    gen = torch.Generator().manual_seed(1)
    for norm in student.modules():
        if isinstance(norm, ChannelBatchNorm):
            c = norm.num_features
            norm.weight.data.mul_(torch.rand(c, generator=gen) + 0.5)
            scale = torch.rand(c, generator=gen) * 2 + 0.5
            norm.running_var.copy_((norm.weight.detach() / scale) ** 2 - norm.eps)
            norm.running_mean.copy_(torch.randn(c, generator=gen) * norm.weight.detach())
            norm.bias.data.copy_(torch.randn(c, generator=gen) * 0.5)


def _synaptic_inputs(student: torch.nn.Module, x_nchwt: torch.Tensor) -> list[torch.Tensor]:
    """Each hidden weighted layer's neuron input (what the CUBA neuron integrates), SLAYER path."""
    seen: list[torch.Tensor] = []
    hooks = [block.neuron.register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()))
             for block in student.blocks if hasattr(block, "neuron")]
    student(x_nchwt)
    for hook in hooks:
        hook.remove()
    return seen


@pytest.mark.parametrize("norm", [StudentNorm.BATCH, StudentNorm.FOLDED])
def test_spec_round_trip_and_the_modules_each_form_gets(norm: StudentNorm) -> None:
    spec = _spec(norm)
    assert StudentSpec.from_dict(spec.to_dict()) == spec
    student = build_student(spec)
    hidden = norm_layers(spec)
    assert hidden == [0, 1, 3]  # conv, conv, dense 128; not the output layer
    for i, block in enumerate(student.blocks):
        has_norm, has_bias = hasattr(block, "batch_norm"), getattr(getattr(block, "synapse", None), "bias", None)
        assert has_norm == (norm is StudentNorm.BATCH and i in hidden)
        assert (has_bias is not None) == (norm is StudentNorm.FOLDED and i in hidden)
    if norm is StudentNorm.BATCH:  # the scale starts at each layer's threshold (first: x 15 levels)
        assert float(student.blocks[0].batch_norm.weight[0]) == pytest.approx(15.0, rel=1e-3)
        assert float(student.blocks[1].batch_norm.weight[0]) == pytest.approx(1.0, rel=1e-3)


def test_old_specs_without_a_norm_load_as_none() -> None:
    data = _spec(StudentNorm.NONE).to_dict()
    del data["norm"]
    assert StudentSpec.from_dict(data).norm is StudentNorm.NONE


@pytest.mark.parametrize("student,match", [
    (StudentConfig(norm=StudentNorm.FOLDED, neuron=NeuronConfig(current_decay=1.0)), "stored form"),
    (StudentConfig(norm=StudentNorm.BATCH), "current_decay = 1.0, got 0.25"),
])
def test_impossible_norm_settings_are_one_line_errors(student: StudentConfig, match: str) -> None:
    with pytest.raises(ConfigError, match=match) as err:
        check_student_norm(student)
    assert "\n" not in str(err.value)


def test_a_spec_with_a_norm_and_current_memory_is_refused() -> None:
    spec = _spec()
    with pytest.raises(ConfigError, match="needs current_decay = 1.0"):
        dataclasses.replace(spec, neuron=NeuronConfig(current_decay=0.5))


@pytest.mark.parametrize("norm", [StudentNorm.BATCH, StudentNorm.FOLDED])
def test_both_engines_give_the_same_spikes(norm: StudentNorm) -> None:
    torch.manual_seed(0)
    fast = build_student(_spec(norm))
    if norm is StudentNorm.FOLDED:  # on-grid biases of both signs, large enough to matter
        gen = torch.Generator().manual_seed(2)
        for i in norm_layers(fast.spec):
            bias = fast.blocks[i].synapse.bias
            bias.copy_(torch.round(torch.randn(bias.shape, generator=gen) * 32) * BIAS_STEP)
    else:
        _trained_norms(fast)
    slow = build_student(dataclasses.replace(fast.spec, engine=StudentEngine.SLAYER))
    slow.load_state_dict(fast.state_dict())
    fast.eval(), slow.eval()
    x = _x()
    a, b = fast(x), slow(x)
    assert all(float(spikes.sum()) > 0 for spikes in a.layer_inputs[1:])  # every hidden layer fires
    assert torch.equal(a.spikes_nft, b.spikes_nft)
    for u, v in zip(a.layer_inputs, b.layer_inputs):
        assert torch.equal(u, v)


def test_the_fold_computes_the_batch_norm_up_to_the_weights_requantisation() -> None:
    torch.manual_seed(0)
    student = build_student(dataclasses.replace(_spec(), engine=StudentEngine.SLAYER))
    _trained_norms(student)
    student.eval()
    before = {k: v.clone() for k, v in student.state_dict().items()}
    folded = fold_student(student)
    assert folded.spec.norm is StudentNorm.FOLDED
    assert all(torch.equal(v, student.state_dict()[k]) for k, v in before.items())  # a new student
    x = _x()
    want, got = _synaptic_inputs(student, x), _synaptic_inputs(folded, x)
    # The first layer sees the same input, so its neuron input differs only by the requantised
    # weights (each folded weight moves by at most half of SLAYER's 1/32 step) times the input
    # mass a neuron sees, plus the bias rounding (half of BIAS_STEP).
    kernel = student.blocks[0].synapse.weight.shape[-2]
    mass = float(x.amax()) * kernel * kernel
    err = float((want[0] - got[0]).abs().max())
    assert err <= mass / 64 + BIAS_STEP / 2
    # the fold's formula: s * z + (beta - s * mean) is the batch norm in eval mode
    norm = student.blocks[0].batch_norm
    scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
    z = torch.nn.functional.conv3d(x, student.blocks[0].synapse.pre_hook_fx(student.blocks[0].synapse.weight),
                                   padding=student.blocks[0].synapse.padding, stride=student.blocks[0].synapse.stride)
    manual = z * scale.view(1, -1, 1, 1, 1) + (norm.bias - scale * norm.running_mean).view(1, -1, 1, 1, 1)
    torch.testing.assert_close(manual, want[0], atol=1e-4, rtol=1e-5)
    for i in norm_layers(folded.spec):  # the folded biases lie on the grid Loihi represents
        bias = folded.blocks[i].synapse.bias
        assert torch.equal(bias, torch.round(bias / BIAS_STEP) * BIAS_STEP)
        assert bool(bias.ne(0).any())


def test_recalibrate_sets_the_plain_average_of_the_batch_statistics() -> None:
    norm = ChannelBatchNorm(3)
    norm.running_mean.fill_(100.0)

    class One(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = norm

        def forward(self, x: torch.Tensor, _active: torch.Tensor) -> torch.Tensor:
            return self.norm(x)

    batches = [torch.randn(8, 3, 5) + 2, torch.randn(4, 3, 5) - 1]
    seen = recalibrate(One(), iter((b, torch.ones(1)) for b in batches))
    assert seen == 12
    means = torch.stack([b.mean(dim=(0, 2)) for b in batches])
    torch.testing.assert_close(norm.running_mean, means.mean(0))  # per batch, averaged
    assert norm.momentum == 0.1 and not norm.training


@pytest.fixture(scope="module")
def folded_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, RunConfig]:
    run = tmp_path_factory.mktemp("fold") / "run"
    cfg = RunConfig(
        data=DataConfig(max_train=160, max_test=60),
        teacher=TeacherConfig(epochs=1, batch_size=32),
        student=StudentConfig(arch="digits_tiny", time_steps=2, norm=StudentNorm.BATCH,
                              neuron=NeuronConfig(current_decay=1.0)),
        train=TrainConfig(epochs=2, batch_size=32, device="cpu", threads=1, fold_epochs=1),
        lava=LavaConfig(active=["all"], cascade=[]),
    )
    train_teacher(Run(run, cfg), progress=False)
    students_stage(Run(run, cfg), resume=False, progress=False)
    return run, cfg


def test_training_ends_with_the_folded_ensemble_on_disk(folded_run: tuple[Path, RunConfig]) -> None:
    run, _ = folded_run
    ckpt = load_checkpoint(run / "ensemble.pt")
    assert {s["norm"] for s in ckpt["student_specs"]} == {"folded"}
    assert not [k for k in ckpt["model"] if "batch_norm" in k]
    # finished: the unfolded weights' optimiser moments, schedule and RNG are not kept
    assert not {"optimizer", "scheduler", "rng"} & set(ckpt) and {"config", "epoch", "history"} <= set(ckpt)
    assert ckpt["finished"] is True
    fold = ckpt["fold"]
    assert fold["recalibration_samples"] == 160
    assert 0 <= fold["test_accuracy_folded"] <= 1 and 0 <= fold["test_accuracy_batch_norm"] <= 1
    assert 0 <= fold["test_accuracy_fine_tuned"] <= 1 and fold["fine_tune_epochs"] == 1
    lines = [json.loads(line) for line in (run / "metrics_students.jsonl").read_text().splitlines()]
    assert [(r["epoch"], r.get("phase")) for r in lines] == [(1, None), (2, None), (3, "folded")]
    assert all(r["seconds"] > 0 and r["cpu_seconds"] > 0 for r in lines)  # the fine-tuning epoch is timed too
    loaded = load_ensemble(run)
    assert all(s.spec.norm is StudentNorm.FOLDED for s in loaded.model.students)
    assert loaded.fold == fold  # what the run's report shows:
    table = fold_markdown(fold)
    assert f"| folded, fine-tuned 1 epochs (stored, exported) | {100 * fold['test_accuracy_fine_tuned']:.2f} |" in table
    for student in loaded.model.students:  # fine-tuning left the biases on their grid
        for i in norm_layers(student.spec):
            bias = student.blocks[i].synapse.bias
            assert not bias.requires_grad and torch.equal(bias, torch.round(bias / BIAS_STEP) * BIAS_STEP)


def test_fold_epochs_without_batch_norm_are_refused() -> None:
    from sne_loihi.checks import check_config

    with pytest.raises(ConfigError, match="train.fold_epochs 2 fine-tunes folded batch norms"):
        check_config(RunConfig(train=TrainConfig(fold_epochs=2)))


def test_resuming_a_finished_folded_run_returns_it_unchanged(folded_run: tuple[Path, RunConfig]) -> None:
    run, cfg = folded_run
    before = (run / "ensemble.pt").read_bytes()
    result = students_stage(Run(run, cfg), resume=True, progress=False)
    assert (run / "ensemble.pt").read_bytes() == before
    assert all(s.spec.norm is StudentNorm.FOLDED for s in result.model.students)


def test_spikingjelly_students_train_with_a_float_batch_norm() -> None:
    """The same recipe for the paper's float LIF students: a batch norm between synapse and
    neurons of every layer but the last (kept, never folded), trained by backprop."""
    import torch

    from sne_loihi.students.build import build_student

    from sne_loihi.config import NeuronLibrary

    spec = dataclasses.replace(_spec(StudentNorm.NONE), neuron_library=NeuronLibrary.SPIKINGJELLY,
                               norm=StudentNorm.BATCH)
    check_student_norm(StudentConfig(norm=StudentNorm.BATCH, neuron_library="spikingjelly"))  # allowed
    student = build_student(spec)
    norms = [m for m in student.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == len(norm_layers(spec)) >= 1
    out = student(torch.rand(4, *spec.in_shape, spec.time_steps))  # direct encoding: float pixels every step
    student.rates(out).sum().backward()
    assert all(n.weight.grad is not None for n in norms)


def test_drop_training_state_slims_an_older_finished_checkpoint(folded_run: tuple[Path, RunConfig], tmp_path: Path) -> None:
    """A folded run written before the trainer dropped its optimiser state: the same rewrite,
    and what loads from it is unchanged."""
    from sne_loihi.io import save_checkpoint
    from sne_loihi.train.common import drop_training_state

    run, _ = folded_run
    ckpt = load_checkpoint(run / "ensemble.pt")
    old = tmp_path / "ensemble.pt"
    save_checkpoint(old, {**ckpt, "optimizer": {"state": {0: {"exp_avg": torch.ones(1000)}}, "param_groups": []},
                          "scheduler": {}, "rng": {}})
    assert drop_training_state(old) > 4000
    assert load_checkpoint(old).keys() == ckpt.keys() and load_checkpoint(old)["finished"] is True
    assert drop_training_state(old) == 0  # nothing left to drop
    a, b = load_ensemble(run / "ensemble.pt").model, load_ensemble(old).model
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
