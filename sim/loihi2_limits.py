"""Loihi 2 limits the readiness report checks, each with its source and whether it is verified.

``verified``: the limit is enforced by code installed here (Lava's bit-accurate fixed-point
CPU models, netx's reader, Lava's weight utilities), which models the chip; the report can
check an export against it exactly. ``assumed``: the figure comes from Intel's public
material (the Loihi 2 product brief) or from the Loihi 1 documentation; nothing installed
here enforces it, and only hardware (or Intel's non-public lava-loihi compiler) can confirm
it.

No Lava import here: plain data, read by :mod:`sne_loihi.sim.readiness` and the graph plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sne_loihi.netx_format.neuron_bias import BIAS_MANT_MAX, BIAS_MANT_MIN


class Status(str, Enum):
    """Outcome of one readiness row."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Limit:
    """One limit of the chip.

    Attributes:
        name: What is limited.
        value: The limit (an integer bound).
        source: Where the figure comes from (file and symbol, or document).
        verified: True when code installed here enforces it (see the module docstring).
    """

    name: str
    value: int
    source: str
    verified: bool

    @property
    def basis(self) -> str:
        """``verified`` or ``assumed``."""
        return "verified" if self.verified else "assumed"


LAVA_LIF = "lava-nc 0.10 lava/proc/lif/models.py PyLifModelBitAcc (Loihi's bit-accurate LIF)"
LAVA_WEIGHTS = "lava-nc 0.10 lava/utils/weightutils.py clip_weights / truncate_weights"
NETX = "lava-dl 0.6 lava/lib/dl/netx/hdf5.py (create_dense: optimize_weight_bits; create_conv: bits 8, exponent 0)"
BRIEF = "Intel Loihi 2 product brief (2021): 128 neuro-cores, up to 1M neurons and 120M synapses per chip"

#: Weight mantissa bits netx passes at most; Lava's MIXED sign mode then holds the even
#: integers in [-2**8, 2**8 - 2] (clip_weights with num_bits 8, one bit truncated for the sign).
WEIGHT_BITS = Limit("weight mantissa bits", 8, LAVA_WEIGHTS + "; " + NETX, True)
#: Weight exponent range of the synapse (Loihi 1's weightExponent; Loihi 2's is not public).
WEIGHT_EXP_MIN = Limit("weight exponent (min)", -8, "Loihi 1 NxSDK weightExponent range; Loihi 2 not public", False)
WEIGHT_EXP_MAX = Limit("weight exponent (max)", 7, "Loihi 1 NxSDK weightExponent range; Loihi 2 not public", False)
#: Threshold mantissa: unsigned 17 bits (left-shifted by 6 on the chip).
THRESHOLD_MAX = Limit("threshold mantissa vth", 2 ** 17 - 1, LAVA_LIF + ": vth unsigned 17 bits", True)
#: Neuron bias mantissa: signed 13 bits, at netx's exponent 6 (the value added each step is
#: ``bias_mant << 6``; see :mod:`sne_loihi.netx_format.neuron_bias`). Checked as ``|bias_mant|``.
BIAS_MANT_RANGE = (BIAS_MANT_MIN, BIAS_MANT_MAX)
BIAS_MANT = Limit("neuron bias |bias_mant| (exponent 6)", -BIAS_MANT_MIN,
                  LAVA_LIF + ": bias_mant signed 13 bits (-4096..4095); " + NETX + ", get_neuron_params: bias_exp 6", True)
#: Neuron bias exponent: unsigned 3 bits; netx always writes 6. A per-sample bias (a first layer
#: driven by it) wider than 13 bits needs a larger exponent, exact only on a coarser grid.
BIAS_EXP_MAX = Limit("neuron bias exponent bias_exp", 7, LAVA_LIF + ": bias_exp unsigned 3 bits (0..7)", True)
#: Current and voltage decays: unsigned 12 bits.
DECAY_MAX = Limit("decay du / dv", 2 ** 12 - 1, LAVA_LIF + ": du, dv unsigned 12 bits", True)
#: State u and v: signed 24 bits (u wraps, v saturates beyond it).
STATE_MAX = Limit("state |u|, |v|", 2 ** 23 - 1, LAVA_LIF + ": u, v 24-bit (u wraps, v saturates)", True)
#: Axonal delays netx keeps (it clamps larger ones).
DELAY_MAX = Limit("axonal delay (steps)", 62, NETX + ": delays clamped to 62", True)
#: Graded spike payload of the input (Lava's ports carry 24 bits).
MESSAGE_BITS = Limit("graded input message bits", 24, "lava-nc 0.10 PyOutPort precision 24 (graded spikes)", True)
#: Chip resources (product brief; how conv weights share synaptic memory is not public).
CORES_PER_CHIP = Limit("neuro-cores per chip", 128, BRIEF, False)
NEURONS_PER_CHIP = Limit("neurons per chip", 1_000_000, BRIEF, False)
SYNAPSES_PER_CHIP = Limit("synapses per chip", 120_000_000, BRIEF, False)
#: Per core: the chip figures divided by 128 (an even spread, an assumption).
NEURONS_PER_CORE = Limit("neurons per core", 8192, BRIEF + "; 1M / 128 cores, rounded to 2**13", False)
SYNAPSES_PER_CORE = Limit("synapses per core", 120_000_000 // 128, BRIEF + "; 120M / 128 cores", False)

ALL_LIMITS: tuple[Limit, ...] = (
    WEIGHT_BITS, WEIGHT_EXP_MIN, WEIGHT_EXP_MAX, THRESHOLD_MAX, BIAS_MANT, BIAS_EXP_MAX, DECAY_MAX, STATE_MAX, DELAY_MAX, MESSAGE_BITS,
    CORES_PER_CHIP, NEURONS_PER_CHIP, SYNAPSES_PER_CHIP, NEURONS_PER_CORE, SYNAPSES_PER_CORE,
)

#: Assumptions of the core estimate, stated with every report.
CORE_ASSUMPTIONS: tuple[str, ...] = (
    f"a core holds at most {NEURONS_PER_CORE.value} neurons and {SYNAPSES_PER_CORE.value:,} synapses "
    "(the product brief's chip figures spread evenly over 128 cores)",
    "layers do not share cores (each layer's neurons start a new core)",
    "dense-equivalent: every non-zero connection is a stored synapse (conv kernels copied per output neuron)",
    "shared kernels: a core stores each conv kernel once for all its output neurons (whether Loihi 2's conv "
    "synapses share weights this way is not public)",
    "input injection, readout and the host-side processes take no neuro-core",
)
