"""NeuroBench as a referee: its synaptic-op counts equal cost/ops.py's on quantised weights."""

from __future__ import annotations

import pytest
import torch

from sne_loihi.students.spec import FLATTEN, StudentSpec, conv, dense

pytest.importorskip("neurobench")

IN_CHW, T, BITS = (1, 8, 8), 3, 4


def tiny_student(seed: int, out_features: int = 5):
    from sne_loihi.students import build_student

    torch.manual_seed(seed)
    spec = StudentSpec(layers=(conv(4), conv(6, stride=2), FLATTEN, dense(out_features)), in_shape=IN_CHW,
                       out_features=out_features, time_steps=T, input_bits=BITS)
    return build_student(spec).eval()


def images(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, *IN_CHW, generator=torch.Generator().manual_seed(seed))


def test_neurobench_equals_our_counts_and_raw_weights_over_count() -> None:
    from sne_loihi.cost.neurobench_check import neurobench_counts, our_counts

    student = tiny_student(0)
    rounded_away = 0
    for block in student.blocks:
        syn = getattr(block, "synapse", None)
        if syn is not None:
            w = syn.weight.detach()
            rounded_away += int(((w != 0) & (syn._pre_hook_fx(w) == 0)).sum())
    assert rounded_away > 0, "the test needs weights that quantise to zero"
    x = images(7)
    nb = neurobench_counts(student, x, batch_size=4)["SynapticOperations"]
    macs, acs, sparsity = our_counts(student, x, batch_size=3)
    assert macs > 0 and acs > 0
    assert nb["Effective_MACs"] == macs  # exactly, per sample
    assert nb["Effective_ACs"] == acs
    raw = neurobench_counts(student, x, batch_size=4, quantised=False)["SynapticOperations"]
    assert raw["Effective_MACs"] + raw["Effective_ACs"] > macs + acs  # a regression to raw weights shows
    assert raw["Dense"] == nb["Dense"]  # dense counts every synapse, rounded or not


def test_cross_check_rows_and_report_section() -> None:
    from sne_loihi.cost.neurobench_check import cross_check, exact_batch_size, referee_markdown
    from sne_loihi.ensemble.model import Ensemble

    model = Ensemble([tiny_student(1), tiny_student(2, out_features=3)], 4)
    rows = cross_check(model, images(5, seed=1), batch_size=5)
    assert [r.model for r in rows] == ["student 0", "student 1", "ensemble"]
    for r in rows:
        assert r.diff_macs == 0 and r.diff_acs == 0
        assert r.nb_sparsity == pytest.approx(r.our_sparsity, abs=1e-12)
        assert 0 < r.our_sparsity < 1 and r.footprint_bytes > 0
    assert rows[2].our_acs == rows[0].our_acs + rows[1].our_acs
    # NeuroBench sums each call in float32: batches are cut so a call counts <= 2**24 synapse uses
    # (worst layer here: conv 6 stride 2 on 4x8x8, 96 outputs x 36 inputs x 3 steps = 10,368)
    assert exact_batch_size(model.students[0].spec, 10**9) == 2**24 // 10_368
    assert exact_batch_size(model.students[0].spec, 7) == 7
    text = referee_markdown(rows)
    assert "NeuroBench MACs" in text and "| ensemble |" in text
