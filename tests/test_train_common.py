"""Training helpers: BatchNorm recalibration after an epoch."""

from __future__ import annotations

import torch
from torch import nn

from sne_loihi.train.common import recalibrate_batchnorm


def test_recalibrate_batchnorm_sets_the_statistics_of_the_current_weights() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    model = nn.Sequential(conv, nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dropout(0.5), nn.Linear(4 * 25, 3),
                          nn.BatchNorm1d(3))
    x_nchw = torch.rand(65, 3, 5, 5) * 3 + 1  # the last batch of 16 holds one sample
    bn2d, bn1d = model[1], model[6]
    bn2d.running_mean.fill_(-7.0)
    bn2d.running_var.fill_(100.0)
    rng = torch.get_rng_state()
    recalibrate_batchnorm(model, x_nchw, 16, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), rng)  # dropout stayed off: no random numbers drawn
    assert model.training and bn2d.momentum == 0.1
    with torch.no_grad():
        out = conv(x_nchw[:64]).transpose(0, 1).reshape(4, -1)
        batch_vars = torch.stack([conv(x_nchw[i:i + 16]).transpose(0, 1).reshape(4, -1).var(1) for i in range(0, 64, 16)])
    assert torch.allclose(bn2d.running_mean, out.mean(1), atol=1e-5)
    assert torch.allclose(bn2d.running_var, batch_vars.mean(0), atol=1e-4)  # mean of unbiased batch variances
    assert int(bn1d.num_batches_tracked) == 4


def test_recalibrate_batchnorm_leaves_models_without_batchnorm_alone() -> None:
    model = nn.Linear(3, 2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate_batchnorm(model, torch.rand(4, 3), 2, torch.device("cpu"))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_keep_freed_memory_applies_on_glibc_and_can_be_turned_off(monkeypatch) -> None:
    import platform

    from sne_loihi.train.common import keep_freed_memory

    monkeypatch.setenv("SNE_KEEP_MEMORY", "0")
    assert keep_freed_memory() is False
    monkeypatch.delenv("SNE_KEEP_MEMORY")
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert keep_freed_memory() is True
