"""SLAYER CUBA-LIF students: exactly the network netx/Lava runs, quantisation included.

Import this module only when building a SLAYER student (it imports ``lava.lib.dl.slayer``
inside the builder; the library pulls in cv2/torchvision).

What makes the torch model the Lava model:

* Blocks are ``slayer.block.cuba.Conv/Flatten/Dense`` with their default synapse
  ``pre_hook_fx = neuron.quantize_8bit``: every forward uses weights rounded to the 8-bit
  grid Loihi stores (even integers -256..254 over a scale of 64, i.e. real step 1/32).
  Thresholds and decays are quantised by the neuron (12-bit decays, threshold mantissa);
  the CUBA dynamics run in SLAYER's fixed-point emulation.
* No weight normalisation (``export_hdf5`` would strip it). No bias, except the per-channel
  neuron bias of a folded batch norm (``student.norm``, :mod:`sne_loihi.students.fold`).
* No input block with a neuron: the first weighted block receives the encoded integers
  (``encode_input``) directly, as the Lava graph's input (the gate's stream) sends them with
  ``input_message_bits = input_bits``. Its threshold is multiplied by ``2**bits - 1``, so in
  real terms the first layer acts as if fed [0, 1] pixels while its weights stay on SLAYER's
  8-bit grid (documented in docs/architecture.md).
* ``delay_shift=False``: in torch a block's spikes at step t depend on its input up to and
  including step t (no per-layer delay). On Loihi every layer adds one step of latency, so
  weighted layer ``l`` (0-based) of the Lava network emits torch's step-t spikes at step
  ``t + l``; the export/simulation side aligns (or pads) by that shift.
"""

from __future__ import annotations

import torch
from torch import nn

from sne_loihi.config import StudentEngine
from sne_loihi.students.base import Student, StudentOutput
from sne_loihi.students.fast_cuba import run_fast
from sne_loihi.students.norms import add_norms
from sne_loihi.layers import LayerKind
from sne_loihi.students.spec import StudentSpec

#: Initial-weight multiplier (``weight_scale`` of the SLAYER synapse). It only scales the
#: default Kaiming-uniform initialisation so enough weights survive the 1/32 quantisation
#: step and neurons fire at the start of training; it is not needed to rebuild a trained
#: student and has no effect on the exported network.
INIT_WEIGHT_SCALE = 2.0


def neuron_params(spec: StudentSpec, threshold_multiplier: float = 1.0) -> dict[str, float | bool]:
    """SLAYER ``cuba.Neuron`` keyword arguments from the spec's :class:`NeuronConfig`.

    Decays are fixed (``requires_grad=False``); only weights are learnt.
    """
    n = spec.neuron
    return {
        "threshold": float(n.threshold) * threshold_multiplier,
        "current_decay": float(n.current_decay),
        "voltage_decay": float(n.voltage_decay),
        "tau_grad": float(n.tau_grad),
        "scale_grad": float(n.scale_grad),
        "requires_grad": False,
    }


class SlayerStudent(Student):
    """A SLAYER student; ``blocks`` are the cuba blocks, one per layer of the spec.

    ``spec.engine`` chooses how the blocks run: ``fast`` (:func:`run_fast`, time-major, the
    same spikes) or ``slayer`` (each block's own forward).
    """

    def run_blocks(self, x_nchwt: torch.Tensor) -> StudentOutput:
        if self.spec.engine is StudentEngine.FAST:
            out = run_fast(self.blocks, x_nchwt)
            return StudentOutput(spikes_nft=out.spikes_nft, layer_inputs=out.layer_inputs)
        return self.run_slayer_blocks(x_nchwt)

    def run_slayer_blocks(self, x_nchwt: torch.Tensor) -> StudentOutput:
        """SLAYER's own path: every block's forward, time last."""
        layer_inputs: list[torch.Tensor] = []
        x = x_nchwt
        for layer, block in zip(self.spec.layers, self.blocks):
            if layer.weighted:
                layer_inputs.append(x)
            norm = getattr(block, "batch_norm", None)
            x = block(x) if norm is None else block.neuron(norm(block.synapse(x)))
        return StudentOutput(spikes_nft=x, layer_inputs=layer_inputs)


def import_slayer():  # -> the lava.lib.dl.slayer module
    """``import lava.lib.dl.slayer`` without its import-time chatter.

    Importing it prints "No CUDA runtime is found, using CUDA_HOME=..." (torch's
    cpp_extension, stderr) and a Prophesee-toolbox warning (stdout) on a CPU-only machine;
    on the terminal those lines would sit next to, e.g., a one-line ``error:``. Import errors
    still propagate.
    """
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import lava.lib.dl.slayer as slayer
    return slayer


def build_slayer_student(spec: StudentSpec) -> SlayerStudent:
    """Build the SLAYER CUBA network described by ``spec``.

    The first weighted block's threshold is ``threshold * (2**input_bits - 1)`` (graded
    integer input); all other blocks use the configured threshold.
    """
    slayer = import_slayer()
    blocks: list[nn.Module] = []
    first_weighted = True
    for layer, (in_shape, _) in zip(spec.layers, spec.layer_shapes()):
        if layer.kind is LayerKind.FLATTEN:
            blocks.append(slayer.block.cuba.Flatten())
            continue
        mult = float(2**spec.input_bits - 1) if first_weighted else 1.0
        params = neuron_params(spec, mult)
        first_weighted = False
        common = {"weight_scale": INIT_WEIGHT_SCALE, "weight_norm": False, "delay_shift": False}
        if layer.kind is LayerKind.CONV:
            blocks.append(slayer.block.cuba.Conv(
                params, in_shape[0], layer.out_features, layer.kernel,
                stride=layer.stride, padding=layer.padding, **common,
            ))
        else:
            blocks.append(slayer.block.cuba.Dense(params, in_shape[0], layer.out_features, **common))
    blocks = nn.ModuleList(blocks)
    add_norms(blocks, spec, [float(getattr(getattr(b, "neuron", None), "threshold", 0.0)) for b in blocks])
    return SlayerStudent(spec, blocks)
