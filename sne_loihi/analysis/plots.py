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


def _finish(plt, fig, ax, path: Path, xlabel: str, title: str, *, grid_which: str = "major",
            legend_size: float | None = None, ylabel: str = "test accuracy (%)") -> Path:
    """Title the figure, label the axes (accuracy on y), add grid and legend, and save it as ``path``."""
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
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
    return _finish(plt, fig, ax, path, "active students K (of N)", "Test accuracy vs number of active students")


#: How a policy point's series is drawn: ``policy name -> (legend label, colour, line style)``.
#: One colour per policy, the line style says which head reads the rates (solid: the ensemble's
#: head trained with every student; dashed: the cascade head refit under random prefix masks).
POLICY_STYLES: dict[str, tuple[str, str, str]] = {
    "random": ("random K, ensemble head", "C0", "-"),
    "random (cascade head)": ("random K, cascade head", "C0", "--"),
    "per-sample (ensemble head)": ("per-sample, ensemble head", "C1", "-"),
    "per-sample": ("per-sample, cascade head", "C1", "--"),
    "subset": ("each fixed subset, ensemble head", "C2", "none"),
    "dropout-trained": ("dropout-trained at its K, own head", "C3", "none"),
}


def plot_pareto(
    points: Sequence[PolicyPoint], energies_nj: Sequence[float], path: Path,
    teacher: tuple[float, float] | None = None, profile: str = "",
) -> Path:
    """Accuracy vs energy per inference for every policy point (legend entries pair each
    policy's two heads by colour); the teacher as a star; ``profile`` names the energy profile."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    by_policy: dict[str, list[tuple[float, float]]] = {}
    for p, e in zip(points, energies_nj):
        by_policy.setdefault(p.policy, []).append((e, 100 * p.accuracy))
    order = [name for name in POLICY_STYLES if name in by_policy] + sorted(set(by_policy) - set(POLICY_STYLES))
    for name in order:
        pts = sorted(by_policy[name])
        label, colour, style = POLICY_STYLES.get(name, (name, None, "-"))
        ax.plot(*zip(*pts), marker="o", markersize=4, linestyle=style, color=colour, label=label, alpha=0.85)
    if teacher is not None:
        ax.scatter([teacher[0]], [100 * teacher[1]], marker="*", s=160, color="k", label="teacher", zorder=5)
        ax.set_xscale("log")
    unit = f"energy per inference (nJ, profile {profile})" if profile else "energy per inference (nJ)"
    return _finish(plt, fig, ax, path, unit, "Test accuracy vs energy per inference", grid_which="both",
                   legend_size=7)


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
    return _finish(plt, fig, ax, path, "Gaussian noise sigma (pixels in [0, 1])",
                   "Test accuracy under Gaussian input noise (mean +/- SEM)")


def plot_learning_curves(curves: dict[str, Sequence[tuple[int, float]]], path: Path) -> Path:
    """Accuracy per epoch, one line per stage and split: ``"<stage> train"`` dashed,
    ``"<stage> test"`` solid, one colour per stage."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8))
    colours: dict[str, str] = {}
    for name, pts in curves.items():
        if not pts:
            continue
        stage, _, split = name.rpartition(" ")
        colour = colours.setdefault(stage, f"C{len(colours)}")
        epochs, accs = zip(*pts)
        ax.plot(epochs, [100 * a for a in accs], color=colour, linestyle="--" if split == "train" else "-",
                marker="." if len(pts) < 60 else None, label=name)
    return _finish(plt, fig, ax, path, "epoch", "Learning curves (train: augmented batches; test: whole test set)",
                   ylabel="accuracy (%)")
