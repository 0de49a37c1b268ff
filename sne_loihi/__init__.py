"""sne-loihi: distilled spiking-student ensembles for Loihi 2.

The public Python API, imported on first use (PEP 562), so ``import sne_loihi`` loads
nothing else; Lava is imported only when a simulator is built:

* :class:`Run` opens a run folder (its config, data set, teacher, ensemble, cascade head).
* :func:`load_ensemble` rebuilds a trained ensemble from ``ensemble.pt`` alone.
* :func:`predict` classifies images with an active set of students or the per-sample
  policy and counts the synaptic ops (:class:`Prediction`).
* :func:`export_run` writes the netx export, verified in Lava.
* :class:`EnsembleSimulator` runs an export in Lava (active sets, per-sample activation).
* :func:`resolve_profile` and :func:`energy_pj` price op counts in picojoules.
* :class:`SneError` is the base of every one-line error the toolkit raises.

Example::

    import sne_loihi

    run = sne_loihi.Run("runs/digits")
    pred = sne_loihi.predict(run.ensemble(), run.data().x_test_nchw[:20], active=[0, 1])
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported on first access).
_PUBLIC: dict[str, str] = {
    "Run": "sne_loihi.run",
    "load_ensemble": "sne_loihi.ensemble.checkpoint",
    "predict": "sne_loihi.ensemble.predict",
    "Prediction": "sne_loihi.ensemble.predict",
    "export_run": "sne_loihi.export.stage",
    "EnsembleSimulator": "sne_loihi.sim.simulator",
    "resolve_profile": "sne_loihi.cost.energy",
    "energy_pj": "sne_loihi.cost.energy",
    "SneError": "sne_loihi.errors",
}

__all__ = ["__version__", *sorted(_PUBLIC)]


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})
