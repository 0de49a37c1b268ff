"""PNG plots for reports (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sne_loihi.analysis.noise import NoiseResult
from sne_loihi.ensemble.policies import PolicyPoint


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: Path) -> None:
    """Render ``fig`` as PNG into memory and write it atomically (a new file renamed over
    ``path``: a link at ``path`` is replaced, never written through), then close it."""
    import io

    from sne_loihi.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, dpi=120, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def _finish(plt, fig, ax, path: Path, xlabel: str, *, grid_which: str = "major", legend_size: float | None = None) -> Path:
    """Label the axes (accuracy on y), add grid and legend, and save the figure as ``path``."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3, which=grid_which)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    save_figure(plt, fig, Path(path))
    return Path(path)


def plot_active_students(curves: dict[str, Sequence[tuple[int, float]]], path: Path) -> Path:
    """Accuracy vs number of active students, one line per policy (e.g. random, dropout)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, pts in curves.items():
        ks, accs = zip(*sorted(pts))
        ax.plot(ks, [100 * a for a in accs], marker="o", label=name)
    ax.set_xticks(sorted({k for pts in curves.values() for k, _ in pts}))
    return _finish(plt, fig, ax, path, "active students K")


def plot_pareto(
    points: Sequence[PolicyPoint], energies_nj: Sequence[float], path: Path,
    teacher: tuple[float, float] | None = None,
) -> Path:
    """Accuracy vs energy per inference for every policy point; the teacher as a star."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    by_policy: dict[str, list[tuple[float, float]]] = {}
    for p, e in zip(points, energies_nj):
        by_policy.setdefault(p.policy, []).append((e, 100 * p.accuracy))
    for name, pts in by_policy.items():
        pts.sort()
        ax.plot(*zip(*pts), marker="o", linestyle="-" if name != "subset" else "none", label=name, alpha=0.85)
    if teacher is not None:
        ax.scatter([teacher[0]], [100 * teacher[1]], marker="*", s=160, color="k", label="teacher", zorder=5)
        ax.set_xscale("log")
    return _finish(plt, fig, ax, path, "energy per inference (nJ)", grid_which="both", legend_size=8)


def plot_noise(results: Sequence[NoiseResult], path: Path) -> Path:
    """Accuracy vs noise sigma with SEM error bars, one line per model."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    models: dict[str, list[NoiseResult]] = {}
    for r in results:
        models.setdefault(r.model, []).append(r)
    for name, rs in models.items():
        rs.sort(key=lambda r: r.sigma)
        ax.errorbar([r.sigma for r in rs], [100 * r.mean for r in rs], yerr=[100 * r.sem for r in rs],
                    marker="o", capsize=3, label=name)
    return _finish(plt, fig, ax, path, "Gaussian noise sigma (pixels in [0, 1])")
