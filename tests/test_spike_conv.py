"""The int8 convolution of spike inputs gives the float32 convolution's values and gradients
bit for bit, and steps aside (float32) wherever int8 would not be exact."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sne_loihi.students import spike_conv
from sne_loihi.students.spike_conv import WEIGHT_STEP, int8_available, spike_conv2d, spike_conv_status


def _case(seed: int, out_channels: int = 12, channels: int = 5, size: int = 9, scale: int = 60):
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(6, channels, size, size, generator=gen) < 0.3).float()
    x = x.contiguous(memory_format=torch.channels_last)
    w_int = torch.clamp(torch.round(torch.randn(out_channels, channels, 3, 3, generator=gen) * scale), -128, 127)
    grad = torch.randn(6, out_channels, (size + 1) // 2, (size + 1) // 2, generator=gen)
    return x, w_int * WEIGHT_STEP, grad


def _run(conv, x: torch.Tensor, w: torch.Tensor, grad: torch.Tensor, stride: int):
    x, w = x.clone().requires_grad_(), w.clone().requires_grad_()
    out = conv(x, w, (stride, stride), (1, 1))
    out.backward(grad if stride == 2 else torch.ones_like(out))
    return out.detach(), x.grad, w.grad


def _float32(x, w, stride, padding):
    return F.conv2d(x, w, None, stride, padding)


@pytest.fixture
def int8_or_skip() -> None:
    if not int8_available():
        pytest.skip(f"no exact int8 convolution here: {spike_conv_status('cpu')}")


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_int8_forward_and_both_gradients_equal_float32(seed: int, stride: int, int8_or_skip) -> None:
    x, w, grad = _case(seed)
    got = _run(spike_conv2d, x, w, grad, stride)
    want = _run(_float32, x, w, grad, stride)
    for name, a, b in zip(("output", "input grad", "weight grad"), got, want):
        assert torch.equal(a, b), name
    assert got[0].abs().sum() > 0


@pytest.mark.parametrize("weights", ["outside int8", "off the 1/32 grid"])
def test_weights_int8_cannot_hold_exactly_take_float32(weights: str, int8_or_skip, monkeypatch) -> None:
    x, w, grad = _case(0)
    w = w.clone()
    if weights == "outside int8":
        w[0, 0, 0, 0] = 200 * WEIGHT_STEP
    else:
        w[0, 0, 0, 0] += WEIGHT_STEP / 3
    calls = []
    monkeypatch.setattr(spike_conv, "_int8_conv", lambda *a: calls.append(a))
    got = _run(spike_conv2d, x, w, grad, 2)
    want = _run(_float32, x, w, grad, 2)
    assert calls == []
    for a, b in zip(got, want):
        assert torch.equal(a, b)


def test_bytes_handed_in_are_used_as_the_input(int8_or_skip) -> None:
    x, w, _ = _case(3)
    x_u8 = x.to(torch.uint8)
    assert torch.equal(spike_conv2d(x, w, (2, 2), (1, 1), x_u8), F.conv2d(x, w, None, 2, 1))


def test_the_int8_path_is_used_where_onednn_has_it() -> None:
    """CI machines run torch's x86 wheels with oneDNN: the int8 path must not silently fall back."""
    if not torch.backends.mkldnn.is_available():
        pytest.skip("this torch has no oneDNN")
    assert spike_conv_status("cpu").startswith("int8"), spike_conv_status("cpu")
    assert spike_conv_status("meta") == "float32"
