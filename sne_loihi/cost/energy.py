"""Energy per operation: named profiles, user TOML profiles, and the energy estimate.

Two ways a profile prices synaptic work (method.md section 6):

* MAC/AC (``pj_per_synop`` is ``None``): ``macs * pj_per_mac + acs * pj_per_ac``. The
  ``cmos45nm`` profile is the 45 nm figure SNN papers use to compare ANN MACs with SNN ACs.
* Per synaptic event (``pj_per_synop`` set): on Loihi every synaptic event is one synaptic
  spike operation whatever the payload, so ``(macs + acs) * pj_per_synop``; the graded
  first layer is not dearer than the others. (Loihi 1 figure; Loihi 2's graded spikes have
  no published per-op energy, so this is an assumption, stated with every Loihi estimate.)

Neuron updates (one per neuron per time step) are charged only by profiles that give
``pj_per_neuron_update``; the MAC/AC literature convention leaves them out.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sne_loihi.config import DEFAULT_ENERGY_PROFILE
from sne_loihi.errors import ConfigError
from sne_loihi.registry import Registry


@dataclass(frozen=True)
class EnergyProfile:
    """Energy per operation in picojoules.

    Attributes:
        name: Short name.
        pj_per_mac: Energy of one multiply-accumulate.
        pj_per_ac: Energy of one accumulate.
        pj_per_synop: Energy of one synaptic event; when set it prices MACs and ACs alike.
        pj_per_neuron_update: Energy of one neuron update (per neuron per step), or
            ``None`` when the profile does not charge neuron updates.
        source: Where the figures come from.
    """

    name: str
    pj_per_mac: float
    pj_per_ac: float
    pj_per_synop: float | None = None
    pj_per_neuron_update: float | None = None
    source: str = ""


ENERGY_PROFILES: Registry[Callable[[], EnergyProfile]] = Registry("energy profile")


@ENERGY_PROFILES.register(DEFAULT_ENERGY_PROFILE)
def cmos45nm() -> EnergyProfile:
    """45 nm CMOS, 32-bit float: MAC 4.6 pJ (3.7 multiply + 0.9 add), AC 0.9 pJ."""
    return EnergyProfile(
        name="cmos45nm", pj_per_mac=4.6, pj_per_ac=0.9,
        source="Horowitz, 'Computing's energy problem', ISSCC 2014 (45 nm, fp32: add 0.9 pJ, mult 3.7 pJ)",
    )


@ENERGY_PROFILES.register("loihi")
def loihi() -> EnergyProfile:
    """Loihi: 23.6 pJ per synaptic spike op (MACs and ACs alike), 81 pJ per neuron update.

    The neuron-update figure is the active one (52 pJ inactive); the 120 pJ synaptic
    update is for on-chip learning and does not apply to inference.
    """
    return EnergyProfile(
        name="loihi", pj_per_mac=23.6, pj_per_ac=23.6, pj_per_synop=23.6, pj_per_neuron_update=81.0,
        source=("Davies et al., 'Loihi: a neuromorphic manycore processor', IEEE Micro 2018 "
                "(synaptic spike op 23.6 pJ, neuron update 81 pJ active / 52 pJ inactive, "
                "synaptic update 120 pJ); Loihi 1 figures, every synaptic event priced as one op"),
    )


_REQUIRED = ("pj_per_mac", "pj_per_ac")
_OPTIONAL = ("pj_per_synop", "pj_per_neuron_update")


#: Largest price per op accepted (pJ): far above any hardware (a millijoule per op), low enough
#: that no count times it overflows.
MAX_PJ_PER_OP = 1e9


def _energy_value(path: Path, key: str, value: object) -> float:
    if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0
            or value > MAX_PJ_PER_OP):
        raise ConfigError(f"{path}: {key} must be a number of pJ in 0..{MAX_PJ_PER_OP:g}, got {value!r}")
    return float(value)


def load_energy_profile(path: Path) -> EnergyProfile:
    """Read a profile from a TOML file with top-level keys.

    ``pj_per_mac`` and ``pj_per_ac`` are required; ``pj_per_synop``,
    ``pj_per_neuron_update``, ``name`` (default: the file's stem, or its whole name where the
    stem is a built-in profile's, e.g. ``cmos45nm.toml``) and ``source`` are optional.

    Raises:
        ConfigError: Missing, unreadable or invalid file; unknown keys; bad values; a ``name``
            of a built-in profile.
    """
    from sne_loihi.config import load_toml

    path = Path(path)
    data = load_toml(path, "energy profile")
    unknown = sorted(set(data) - {*_REQUIRED, *_OPTIONAL, "name", "source"})
    if unknown:
        raise ConfigError(f"{path}: unknown energy profile key(s): {', '.join(unknown)}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ConfigError(f"{path}: energy profile needs {', '.join(missing)}")
    for key in ("name", "source"):
        if key in data and not isinstance(data[key], str):
            raise ConfigError(f"{path}: {key} must be a string, got {data[key]!r}")
    if data.get("name") in ENERGY_PROFILES.names():  # a report would print another profile's prices under it
        raise ConfigError(f"{path}: name {data['name']!r} is a built-in energy profile's; give this profile its own name")
    values = {k: _energy_value(path, k, data[k]) for k in (*_REQUIRED, *_OPTIONAL) if k in data}
    stem = path.stem if path.stem not in ENERGY_PROFILES.names() else path.name
    return EnergyProfile(name=data.get("name", stem), source=data.get("source", str(path)), **values)


def energy_pj(profile: EnergyProfile | str | Path, macs: float, acs: float, neuron_updates: float = 0) -> float:
    """Energy estimate in pJ for the given operation counts (see the module doc).

    Args:
        profile: The prices: an :class:`EnergyProfile`, or a name or TOML file
            (:func:`resolve_profile`).
        macs: Synaptic ops on graded input (multiply-accumulates).
        acs: Synaptic ops on binary spikes (accumulates).
        neuron_updates: Neuron updates (one per neuron per time step); charged only by profiles
            with ``pj_per_neuron_update``.

    Raises:
        ConfigError: A count that is not a non-negative finite number; an unknown profile or
            an invalid profile file.
    """
    if not isinstance(profile, EnergyProfile):
        profile = resolve_profile(profile)
    counts = {}
    for name, value in (("macs", macs), ("acs", acs), ("neuron_updates", neuron_updates)):
        try:
            number = float(value) if not isinstance(value, (str, bytes, bool)) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number < 0:
            raise ConfigError(f"energy_pj: {name} must be a non-negative number, got {value!r}")
        counts[name] = number
    macs, acs, neuron_updates = counts["macs"], counts["acs"], counts["neuron_updates"]
    if profile.pj_per_synop is not None:
        synaptic = (macs + acs) * profile.pj_per_synop
    else:
        synaptic = macs * profile.pj_per_mac + acs * profile.pj_per_ac
    neurons = neuron_updates * profile.pj_per_neuron_update if profile.pj_per_neuron_update is not None else 0.0
    return synaptic + neurons


def resolve_profile(name: str | Path) -> EnergyProfile:
    """A registered energy profile by name, or a user TOML file.

    Args:
        name: ``cmos45nm``, ``loihi`` (:data:`ENERGY_PROFILES`), or the path of a TOML file
            (:func:`load_energy_profile`), as a string or a :class:`~pathlib.Path`.

    Raises:
        ConfigError: Unknown name, or a file that is no valid profile.
    """
    if not isinstance(name, (str, Path)):
        raise ConfigError(f"an energy profile is a name ({', '.join(ENERGY_PROFILES.names())}) or a TOML file, got {name!r}")
    name = str(name)
    if is_profile_file(name):
        return load_energy_profile(Path(name).expanduser())
    return ENERGY_PROFILES.get(name)()  # an unknown name is refused by name


def is_profile_file(name: str) -> bool:
    """Whether an energy-profile argument names a TOML file rather than a registered profile.

    A registered name wins whatever files lie in the working folder; otherwise a ``.toml``
    name, a path with a folder, or an existing file is a file.
    """
    if name in ENERGY_PROFILES.names():
        return False
    path = Path(name).expanduser()
    return name.endswith(".toml") or len(path.parts) > 1 or path.is_file()
