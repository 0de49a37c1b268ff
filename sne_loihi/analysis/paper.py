"""The paper's CIFAR-10 numbers (Konstantaropoulos et al., arXiv:2502.14023), as
``/work/shared/docs/method.md`` section 7 quotes them: the one table every report compares
with. Accuracies in %, ops per sample in millions. ``None``: the paper did not report it.
"""

from __future__ import annotations

#: Tables I/II, VGG family: teacher VGG19 and the 4 x VGG5mini ensemble (fixed partition).
PAPER_TEACHER = {"arch": "vgg19", "accuracy": 92.22, "macs_m": 398.0}
PAPER_ENSEMBLE = {"arch": "4 x vgg5mini", "accuracy": 87.94, "acs_m": 18.4}

#: Table III: partition strategy -> 4 x VGG5mini accuracy.
PAPER_TABLE3: dict[str, float | None] = {
    "fixed": 87.94, "agglomerative": 89.11, "kmeans": 88.42, "balanced-kmeans": None,
    "balanced-optimal": None, "finetune": 90.38,
}

#: Table IV: Gaussian pixel noise levels (10 draws, mean +/- SEM). method.md quotes no
#: numbers, only the finding below.
PAPER_TABLE4_SIGMAS = (0.01, 0.03, 0.05, 0.07)
PAPER_TABLE4_FINDING = "the 4-student ensembles held up better than teacher and single student at high noise"

#: Table V: random K of 4 at evaluation -> (accuracy, ACs in millions).
PAPER_TABLE5: dict[int, tuple[float, float]] = {4: (87.94, 18.5), 3: (86.57, 13.7), 2: (82.67, 9.2), 1: (75.71, 4.6)}

#: Table VI: dropout-trained with fixed K -> (accuracy, ACs in millions or None).
PAPER_TABLE6: dict[int, tuple[float, float | None]] = {4: (87.94, None), 3: (87.69, None), 2: (86.91, None), 1: (85.39, 7.8)}

#: Energy per op of the 45 nm profile the paper's literature uses (pJ).
PAPER_PJ_PER_MAC = 4.6
PAPER_PJ_PER_AC = 0.9


def paper_ops_ratio() -> float:
    """Teacher MACs over ensemble ACs as the paper reports them (398M / 18.4M = 21.6)."""
    return PAPER_TEACHER["macs_m"] / PAPER_ENSEMBLE["acs_m"]


def paper_energy_ratio() -> float:
    """The same counts priced at 4.6 pJ/MAC and 0.9 pJ/AC (derived here, not a number the
    paper prints)."""
    return PAPER_TEACHER["macs_m"] * PAPER_PJ_PER_MAC / (PAPER_ENSEMBLE["acs_m"] * PAPER_PJ_PER_AC)
