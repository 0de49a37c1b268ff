"""Markdown and PNG of the reproduction report (:mod:`sne_loihi.analysis.reproduction`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sne_loihi.analysis.reproduction import ClaimResult, Row, Section
from sne_loihi.analysis.stats import Estimate, Verdict, format_estimate

#: Number format per unit: accuracies in fixed points, op counts (millions) and ratios in
#: significant digits (a digits-size ensemble has 0.002M ACs, a CIFAR one 20M).
_SPEC = {"%": ".2f", "points": ".2f", "M": ".4g", "x": ".3g"}


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:{_SPEC.get(unit, '.4g')}}"


def _est(est: Estimate, unit: str, signed: bool = False) -> str:
    return format_estimate(est, signed=signed, spec=_SPEC.get(unit, ".4g"))


def _row_line(r: Row) -> str:
    seeds = ", ".join(_fmt(v, r.unit) for _, v in sorted(r.per_seed.items()))
    return f"| {r.label} | {r.unit} | {_est(r.estimate, r.unit, r.unit == 'points')} | {r.estimate.n} | {seeds} | {_fmt(r.paper, r.unit)} |"


def _claim_line(c: ClaimResult) -> str:
    mark = {Verdict.HOLDS: "**holds**", Verdict.FAILS: "**does not hold**", Verdict.UNRESOLVED: "not resolved at this budget",
            Verdict.ONE_SEED_FOR: "*one seed: on the claimed side*", Verdict.ONE_SEED_AGAINST: "*one seed: on the other side*"}
    return (f"| {c.table} | {c.claim.text} | {c.quantity} ({c.unit}) | {_est(c.estimate, c.unit, True)} | "
            f"{c.estimate.n} | {_fmt(c.paper, c.unit)} | {mark[c.verdict]} |")


def claims_table(sections: Sequence[Section]) -> str:
    """Every claim of every section: estimate, paper's value and verdict."""
    lines = ["| table | claim | tested quantity | ours: mean +/- SEM [95% CI] | seeds | paper | verdict |",
             "|---|---|---|---|---|---|---|"]
    lines += [_claim_line(c) for s in sections for c in s.claims]
    return "\n".join(lines)


def section_markdown(sec: Section) -> str:
    """One section's table of quantities (ours next to the paper's) and its note."""
    lines = [f"## {sec.title}", "", "| quantity | unit | ours: mean +/- SEM [95% CI] | seeds | per seed | paper |",
             "|---|---|---|---|---|---|"]
    lines += [_row_line(r) for r in sec.rows]
    if sec.note:
        lines += ["", sec.note]
    return "\n".join(lines)


def markdown(sections: Sequence[Section], meta: Mapping[str, Any], plot_name: str | None) -> str:
    """The whole report: setup, verdicts, one table per experiment, machine and wall time."""
    counts = {v: sum(c.verdict == v for s in sections for c in s.claims) for v in Verdict}
    m = meta["machine"]
    lines = [
        f"# Reproduction of the paper's CIFAR-10 claims: {meta['dataset']}", "",
        f"Seeds {', '.join(map(str, meta['seeds']))}; {meta['description']}", "",
        *([f"**Incomplete** (a report rewritten from an unfinished folder): missing {', '.join(meta['missing'])}.", ""]
          if meta.get("missing") else []),
        "Every number comes from the runs' own `report.json` files (per seed) and the partition benchmark's "
        "`bench_partition.json`. Mean +/- SEM over seeds; 95% intervals from Student's t with n - 1 degrees "
        "of freedom; differences are paired by seed. A claim **holds** when its whole interval lies on the "
        "claimed side (of 0, or of the stated margin), **does not hold** when it lies wholly on the other side, "
        "and is *not resolved at this budget* when the interval contains the margin. One seed gives no interval: "
        "its claims say only on which side its value lies (*one seed: on the claimed side* / *on the other side*), "
        "which is no verdict.", "",
        f"Verdicts: {counts[Verdict.HOLDS]} hold, {counts[Verdict.FAILS]} do not hold, "
        f"{counts[Verdict.UNRESOLVED]} not resolved"
        + (f"; on one seed (a point, no interval): {counts[Verdict.ONE_SEED_FOR]} on the claimed side, "
           f"{counts[Verdict.ONE_SEED_AGAINST]} on the other side" if counts[Verdict.ONE_SEED_FOR] + counts[Verdict.ONE_SEED_AGAINST]
           else "") + ".", "",
        "## Claims", "", claims_table(sections), "",
    ]
    lines += [section_markdown(s) + "\n" for s in sections]
    if plot_name:
        lines += [f"![reproduction]({plot_name})", ""]
    lines += [
        "## Machine and wall time", "",
        f"- CPU: {m['cpu']} ({m['cores']} cores), {m['platform']}; Python {m['python']}, torch {m['torch']}; "
        f"device {m['device']}" + (f" ({m['gpu']})" if m.get("gpu") else "") + f"; torch threads {m['threads']}.",
        f"- Wall time of the invocation that ran it: {meta['wall_s'] / 60:.1f} min (steps reused from earlier "
        "invocations are not included)." ,
    ]
    if meta.get("report_only_command"):
        lines.append("- This report was rewritten afterwards from the same folder (`--report-only`).")
    if meta.get("wall_time"):
        lines.append(wall_time_line(meta["wall_time"]))
    for seed, t in meta.get("seed_timings", {}).items():
        parts = ", ".join(f"{k} {v:.0f} s" for k, v in t.items())
        lines.append(f"- Seed {seed} (timings of the invocation that wrote its report): {parts}.")
    for seed, stages in meta.get("seed_training", {}).items():
        parts = ", ".join(f"{k} {v['seconds'] / 60:.1f} min wall, {v.get('cpu_seconds', 0.0) / 60:.1f} min CPU "
                          f"({v['timed']} of {v['epochs']} epochs timed"
                          + ("" if v.get("cpu_timed", v["timed"]) == v["timed"] else f", {v['cpu_timed']} with CPU time")
                          + ")" for k, v in stages.items())
        if parts:
            lines.append(f"- Seed {seed} training, the sum of its epochs' wall and CPU times over every attempt (wall "
                         f"includes any pause; an epoch without a record predates the epoch timer): {parts}.")
    if meta.get("partition_wall_s") is not None:
        lines.append(f"- Partition benchmark by its own clock: {meta['partition_wall_s'] / 60:.1f} min over its "
                     "invocations, each up to its last finished run (a run cut short is in the sum over every "
                     "invocation above, not here).")
    lines += ["", "## Command", "", f"```\n{meta['command']}\n```", ""]
    return "\n".join(lines)


def wall_time_line(wt: Mapping[str, Any]) -> str:
    """The report's line for the harness's wall-time ledger (``benchmarks/reproduce.py``'s
    ``wall_time``): the sum over every invocation, per part over all its attempts."""
    stopped = (f", {wt['unfinished']} of them interrupted or stopped by an error, each counted up to its last "
               f"record (at most {wt['heartbeat_s']:.0f} s before it stopped)" if wt["unfinished"] else "")
    parts = []
    for name, p in wt["parts"].items():
        cut = (f", {p['interrupted']} cut short: {p['interrupted_seconds'] / 60:.1f} min to their last record"
               if p["interrupted"] else "")
        parts.append(f"{name} {p['seconds'] / 60:.1f} min ({p['attempts']} attempt{'s' * (p['attempts'] != 1)}{cut})")
    return (f"- Wall time over every invocation that ran work in this folder: {wt['seconds'] / 60:.1f} min in "
            f"{wt['invocations']} invocation{'s' * (wt['invocations'] != 1)}{stopped}. Per part, over all its attempts "
            f"(wall clock, so it includes any pause; what an attempt cut short had saved was kept, the rest redone): "
            f"{', '.join(parts) or 'none'}; start-up, checks, reused parts and report writing "
            f"{wt['other_seconds'] / 60:.1f} min.")


def plot(sections: Sequence[Section], path: Path) -> Path:
    """Left: every accuracy difference tested (ours, 95% CI) next to the paper's. Middle:
    accuracy vs active students (random K and dropout-trained, ours and paper's). Right:
    accuracy under noise, teacher vs ensemble."""
    from sne_loihi.analysis.plots import _pyplot

    plt = _pyplot()
    by_key = {s.key: s for s in sections}
    fig, (ax, bx, cx) = plt.subplots(1, 3, figsize=(15, 4.8))
    claims = [c for s in sections for c in s.claims if c.unit == "points"]
    for i, c in enumerate(claims):
        e = c.estimate
        lo, hi = (e.ci_low, e.ci_high) if e.ci_low is not None else (e.mean, e.mean)
        ax.errorbar([e.mean], [i], xerr=[[e.mean - lo], [hi - e.mean]], fmt="o", color="tab:blue", capsize=3,
                    label="ours (95% CI)" if i == 0 else None)
        if c.paper is not None:
            ax.plot([c.paper], [i], "s", color="tab:orange", label="paper" if not any(q.paper is not None for q in claims[:i]) else None)
    ax.axvline(0.0, color="grey", lw=1)
    ax.set_yticks(range(len(claims)), [c.quantity for c in claims], fontsize=6)
    ax.set_xlabel("difference (accuracy points)")
    ax.legend(fontsize=7)
    ax.grid(axis="x", alpha=0.3)
    _curve(bx, by_key.get("table5"), "K=", " accuracy", "random K", "tab:blue")
    _curve(bx, by_key.get("table6"), "dropout K=", " accuracy", "dropout-trained", "tab:green")
    bx.set_xlabel("active students K")
    bx.set_ylabel("test accuracy (%)")
    bx.legend(fontsize=7)
    bx.grid(alpha=0.3)
    for model, color in (("teacher", "k"), ("ensemble", "tab:red")):
        _curve(cx, by_key.get("table4"), "sigma ", f": {model}", model, color, float)
    cx.set_xlabel("Gaussian noise sigma")
    cx.set_ylabel("test accuracy (%)")
    cx.legend(fontsize=7)
    cx.grid(alpha=0.3)
    fig.tight_layout()
    from sne_loihi.analysis.plots import save_figure

    save_figure(plt, fig, Path(path))
    return Path(path)


def _curve(axis: Any, sec: Section | None, prefix: str, suffix: str, name: str, color: str, parse: Any = int) -> None:
    """Rows ``{prefix}{x}{suffix}`` of ``sec`` as a line with SEM bars (ours) and squares (paper)."""
    if sec is None:
        return
    pts = []
    for r in sec.rows:
        if r.label.startswith(prefix) and r.label.endswith(suffix):
            pts.append((parse(r.label[len(prefix):-len(suffix)]), r.estimate, r.paper))
    if not pts:
        return
    pts.sort(key=lambda p: p[0])
    axis.errorbar([p[0] for p in pts], [p[1].mean for p in pts], yerr=[p[1].sem for p in pts], marker="o",
                  capsize=3, color=color, label=f"{name} (ours, SEM)")
    paper = [(p[0], p[2]) for p in pts if p[2] is not None]
    if paper:
        axis.plot(*zip(*paper), "s--", color=color, alpha=0.5, label=f"{name} (paper)")
