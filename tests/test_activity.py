"""Per-layer spiking activity (the report's diagnostic): counts checked against the spikes
of a direct forward pass, batch-size independence, and constructed silent/always-on layers."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from sne_loihi.analysis.activity import activity_markdown, layer_activity
from sne_loihi.config import NeuronLibrary, preset
from sne_loihi.ensemble.checkpoint import build_ensemble
from sne_loihi.ensemble.model import encode_for
from sne_loihi.partition import Partition


def _ensemble(library: NeuronLibrary):
    cfg = preset("digits")
    student = dataclasses.replace(cfg.student, arch="digits_tiny", time_steps=3, neuron_library=library)
    partition = Partition.from_dict({"strategy": "fixed", "feature_dim": 6, "groups": [[0, 1, 2], [3, 4, 5]]})
    torch.manual_seed(0)
    return build_ensemble(student, partition, (1, 8, 8), 10).eval()


@pytest.mark.parametrize("library", list(NeuronLibrary))
def test_counts_match_the_forward_pass_and_do_not_depend_on_batching(library: NeuronLibrary) -> None:
    model = _ensemble(library)
    x = torch.rand(37, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    rows = layer_activity(model.students, x, batch_size=10)
    assert rows == layer_activity(model.students, x, batch_size=1000)
    assert [(r.student, r.layer, r.kind) for r in rows] == [(s, j, k) for s in (0, 1)
                                                            for j, k in enumerate(("conv", "dense", "dense"))]
    for index, student in enumerate(model.students):
        with torch.no_grad():
            out = student(encode_for(student.spec, x))
        mine = [r for r in rows if r.student == index]
        conv_spikes = out.layer_inputs[1].reshape(37, *mine[0].shape, 3)  # the conv's spikes, as the dense reads them
        for r, s in ((mine[0], conv_spikes), (mine[1], out.layer_inputs[2]), (mine[2], out.spikes_nft)):
            per_neuron = s.sum(dim=(0, s.dim() - 1))
            assert r.samples == 37 and r.channels == r.shape[0]
            assert r.rate == pytest.approx(float(s.float().mean()))
            assert r.rate_per_step == pytest.approx([float(s[..., t].float().mean()) for t in range(3)])
            assert r.silent == pytest.approx(float((per_neuron == 0).float().mean()))
            assert r.always_on == pytest.approx(float((per_neuron == 37 * 3).float().mean()))
            assert r.dead_channels == int((per_neuron.reshape(r.shape[0], -1).sum(1) == 0).sum())


def test_a_zero_layer_is_silent_and_a_saturated_one_always_on() -> None:
    model = _ensemble(NeuronLibrary.SLAYER)
    conv = model.students[0].blocks[0].synapse
    other = model.students[1].blocks[0].synapse
    with torch.no_grad():
        conv.weight.zero_()
        other.weight.fill_(2.0)  # 9 taps x 15 (a white pixel, 4 bits) x 2 >> threshold 15: fires every step
    rows = layer_activity(model.students, torch.ones(5, 1, 8, 8))
    silent = rows[0]
    assert (silent.rate, silent.silent, silent.dead_channels) == (0.0, 1.0, silent.channels)
    assert rows[1].rate == 0.0  # nothing reaches the next layer either
    saturated = rows[3]
    assert (saturated.student, saturated.layer) == (1, 0)
    assert (saturated.rate, saturated.always_on, saturated.silent, saturated.dead_channels) == (1.0, 1.0, 0.0, 0)
    table = activity_markdown(rows)
    assert "| 0 | 0 conv |" in table and f"| {silent.channels} / {silent.channels} |" in table


def test_counted_during_evaluation_equals_a_separate_pass() -> None:
    """The report reads the activity off the evaluation's full-ensemble pass (no second run)."""
    from sne_loihi.analysis.activity import ActivityCounter
    from sne_loihi.ensemble.evaluate import evaluate_ensemble

    model = _ensemble(NeuronLibrary.SLAYER)
    x = torch.rand(23, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    counter = ActivityCounter(model.students)
    evaluate_ensemble(model, x, torch.zeros(23, dtype=torch.long), batch_size=8, on_student_output=counter.add)
    assert counter.rows() == layer_activity(model.students, x, batch_size=100)
