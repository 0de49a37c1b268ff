"""SLAYER's CUBA neuron in NIR's terms: the constants and the parameter mapping shared by the
NIR export (:mod:`.nir_export`) and its re-import check (:mod:`.nir_check`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sne_loihi.errors import ExportError

#: The time step written into every graph; snnTorch's NIR importer assumes exactly this value.
NIR_DT = 1e-4
#: SLAYER / Loihi scales: weights and thresholds in 1/64, decays in 1/4096.
WEIGHT_SCALE = 64
DECAY_SCALE = 4096

@dataclass(frozen=True)
class CubaParams:
    """One layer's CUBA neuron in SLAYER's integers, and NIR's real-valued parameters for it."""

    i_decay: int
    v_decay: int
    v_th_mant: int

    @property
    def current_decay(self) -> float:
        """``cd``, the fraction of the current lost per step."""
        return self.i_decay / DECAY_SCALE

    @property
    def voltage_decay(self) -> float:
        """``vd``."""
        return self.v_decay / DECAY_SCALE

    @property
    def threshold(self) -> float:
        """Threshold in real units."""
        return self.v_th_mant / WEIGHT_SCALE

    def nir_node(self, shape: Sequence[int], dt: float = NIR_DT) -> Any:
        """The ``nir.CubaLIF`` of ``shape`` neurons (see the module doc for the mapping).

        Raises:
            ExportError: A decay of 0 (an integrator: no finite time constant) or above 1.
        """
        import nir

        for name, d in (("current", self.current_decay), ("voltage", self.voltage_decay)):
            if not 0 < d <= 1:
                raise ExportError(f"a {name} decay of {d} has no CubaLIF time constant (0 < decay <= 1 is mapped)")
        one = np.ones(tuple(int(v) for v in shape), dtype=np.float64)
        cd, vd = self.current_decay, self.voltage_decay
        return nir.CubaLIF(tau_syn=one * (dt / cd), tau_mem=one * (dt / vd), r=one / vd, v_leak=one * 0.0,
                           v_threshold=one * self.threshold, v_reset=one * 0.0, w_in=one / cd)


def cuba_params(block: Any) -> CubaParams:
    """SLAYER's device parameters of a block's neuron (what ``export_hdf5`` writes to netx)."""
    p = block.neuron.device_params
    if str(p.get("type", "CUBA")) != "CUBA" or bool(p.get("gradedSpike", False)):
        raise ExportError(f"only binary CUBA neurons map to NIR CubaLIF, got {p.get('type')} "
                          f"(graded spikes: {p.get('gradedSpike')})")
    return CubaParams(int(p["iDecay"]), int(p["vDecay"]), int(p["vThMant"]))


def synapse_bias(block: Any) -> np.ndarray | None:
    """A block's synapse bias (a folded batch norm's per-channel neuron bias, real units:
    added to the synaptic input before the neuron), float64, or ``None``."""
    bias = getattr(getattr(block, "synapse", None), "bias", None)
    return None if bias is None else bias.detach().cpu().double().numpy().copy()
