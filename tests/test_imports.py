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
]
FORBIDDEN = ("lava", "cv2", "torchvision")


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
