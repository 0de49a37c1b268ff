"""The core must not pull in Lava, cv2 or torchvision (only the simulation stage imports Lava)."""

from __future__ import annotations

import subprocess
import sys

CORE_MODULES = [
    "sne_loihi",
    "sne_loihi.cli",
    "sne_loihi.config",
    "sne_loihi.data",
    "sne_loihi.teachers",
    "sne_loihi.partition",
    "sne_loihi.students",
    "sne_loihi.ensemble",
    "sne_loihi.cost",
    "sne_loihi.pipeline",
    "sne_loihi.train",
    "sne_loihi.export",
    "sne_loihi.export.nir_export",
    "sne_loihi.export.nir_check",
    "sne_loihi.cost.neurobench_check",
]
#: Lava only in the simulation stage; the interop packages only when a NIR check or the
#: NeuroBench cross-check runs.
FORBIDDEN = ("lava", "cv2", "torchvision", "snntorch", "nirtorch", "neurobench", "tonic")


def test_core_imports_stay_light() -> None:
    code = (
        "import sys\n"
        f"for m in {CORE_MODULES!r}: __import__(m)\n"
        f"bad = sorted({{n.split('.')[0] for n in sys.modules}} & set({FORBIDDEN!r}))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"core imports pulled in: {out.stdout.strip()}"


def test_lava_imports_after_a_progress_bar_fixed_the_start_method() -> None:
    """tqdm creates a multiprocessing lock (fixing the start method) before the pipeline's
    simulation stage imports Lava, whose import calls ``set_start_method('fork')``."""
    code = (
        "import multiprocessing as mp\n"
        "from tqdm import tqdm\n"
        "for _ in tqdm(range(2), disable=False): pass\n"
        "assert mp.get_start_method(allow_none=True) == 'fork'\n"
        "import sne_loihi.sim.processes\n"
        "from sne_loihi.sim import loihi_available\n"
        "print('lava-loihi', loihi_available())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("lava-loihi ")
