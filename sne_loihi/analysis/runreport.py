"""Build a run's full report: cost table, activation policies, noise, Lava results, plots."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import tomli_w
import torch

from sne_loihi.cost.energy import resolve_profile
from sne_loihi.analysis.options import ReportOptions
from sne_loihi.config import ReportConfig
from sne_loihi.report import markdown_table, percent, two_decimals, whole, write_report
from sne_loihi.run import DROPOUT_GLOB, ENSEMBLE_FILE, FINETUNE_FILE, TEACHER_FILE, Run, as_run, load_data
from sne_loihi.json_files import read_json_file

NEUROBENCH_SECTION = "NeuroBench cross-check of the synaptic-op counts"


POLICY_COLUMNS = (
    ("setting", "active", str),
    ("accuracy", "test acc. (%)", percent),
    ("macs", "MACs/sample", whole),
    ("acs", "ACs/sample", whole),
    ("energy_nj", "energy (nJ)", two_decimals),
)


def _data_line(data_cfg: Any, data: Any) -> str:
    """The data set in one Markdown line: source, shape, sizes, and the labels' class names."""
    c, h, w = data.in_shape
    where = f" from `{data_cfg.data_dir}`" if data_cfg.data_dir else ""
    names = ", ".join(f"{i} {n}" for i, n in enumerate(data.class_names[:20]))
    names += f", ... ({len(data.class_names)} in all)" if len(data.class_names) > 20 else ""
    return (f"- Data: {data.name}{where}, {c}x{h}x{w} images, {len(data.y_train):,} training and "
            f"{len(data.y_test):,} test; classes (label: name) {names}.")


def first_layer_sentence(choices: Sequence[dict[str, str]]) -> str:
    """How the students' first layers are counted (``Evaluation.meta["first_layer"]``), as a sentence."""
    bias = [i for i, c in enumerate(choices) if c["first_layer"] == "bias"]
    notes = [f"student {i}: {c['first_layer_note']}" for i, c in enumerate(choices) if c.get("first_layer_note")]
    if not bias and not notes:
        return ""
    text = (f" The first layer of student(s) {', '.join(map(str, bias))} is driven by a per-sample neuron bias "
            "(`lava.first_layer`): the host computes its W * x + b once per sample, so its MACs are counted once, "
            "not T times." if bias else " Every first layer is driven through its synapses (MACs counted every step).")
    return text + (" " + "; ".join(notes) + "." if notes else "")


def build_report(run: Run | Path, title: str, options: ReportOptions, timings: dict[str, float] | None = None,
                 stage_sections: Sequence[tuple[str, str, str, Any]] = ()) -> dict[str, Any]:
    """Evaluate the run in ``run_dir`` and write ``report.md``, ``report.json`` and PNGs.

    Args:
        stage_sections: ``(heading, markdown, json key, data)`` of sections a stage package
            wrote (the Lava simulation's, from :mod:`sne_loihi.sim.stage`), placed after the
            fine-tuning section; the top floor (:func:`sne_loihi.pipeline.report_run`) reads them.
    """
    from sne_loihi.analysis import plots
    from sne_loihi.analysis.activity import activity_markdown
    from sne_loihi.analysis.activation import analyse_activation, point_energy_nj, test_table
    from sne_loihi.analysis.evaluation import evaluate_run

    run = as_run(run)
    run_dir = run.dir
    profile = resolve_profile(options.energy_profile)
    evaluation = evaluate_run(run, energy_profile=options.energy_profile, batch_size=options.batch_size)
    loaded = run.ensemble()
    cfg = loaded.config
    data = load_data(cfg)
    data_line = _data_line(cfg.data, data)
    teacher_row = next((r for r in evaluation.rows if r["model"].startswith("teacher")), None)
    sections: list[tuple[str, str]] = [
        ("Accuracy and cost per sample (test set)", markdown_table(evaluation.rows)
         + f"\n\nEnergy profile `{profile.name}` ({profile.source}). MACs: synaptic ops on graded "
         "(pixel) input; ACs: on binary spikes. Student ops are counted exactly: non-zero inputs "
         "x fan-out of non-zero quantised weights, summed over layers and time steps."
         + first_layer_sentence(evaluation.meta["first_layer"])),
    ]
    config = cfg.to_dict()  # the ensemble's training config, with the report settings this report used
    config["report"] = {f.name: getattr(options, f.name) for f in fields(ReportConfig)}
    out: dict[str, Any] = {"config": config, "evaluation": evaluation.to_dict(), "energy_profile": asdict(profile)}
    out["data"] = {"name": data.name, "in_shape_chw": list(data.in_shape), "class_names": list(data.class_names),
                   "train_samples": len(data.y_train), "test_samples": len(data.y_test)}
    if loaded.fold is not None:
        sections.append(("Batch norm folded into the students", fold_markdown(loaded.fold)))
        out["fold"] = loaded.fold
    training = training_section(run, loaded.history)
    if training is not None:
        sections.append(("Training", training[0]))
        out["training"] = training[1]
    sections.append(("Spiking activity per layer (test set)", activity_markdown(evaluation.activity)))
    out["activity"] = [a.to_dict() for a in evaluation.activity]
    if options.neurobench:
        from sne_loihi.cost.neurobench_check import cross_check, referee_markdown

        n = options.neurobench_samples or len(data.y_test)
        referee = cross_check(loaded.model, data.x_test_nchw[:n], options.batch_size)
        sections.append((NEUROBENCH_SECTION, referee_markdown(referee)))
        out["neurobench"] = [r.to_dict() for r in referee]

    head_lines: list[str] = []
    if cfg.ensemble.train_active:  # not the paper's all-students training: say so where the numbers are
        head_lines.append(f"- The ensemble was trained with {cfg.ensemble.train_active} random students active per "
                          f"batch (ensemble.train_active), as the dropout-trained variants are.")
    if teacher_row is not None and run.file(TEACHER_FILE).is_file():
        tta = teacher_tta_line(run.teacher()[2].get("history") or [], teacher_row["accuracy"])
        head_lines += [tta] if tta else []
    if options.activation:
        from sne_loihi.ensemble.cascade import ensure_cascade_head

        cascade_head, _ = ensure_cascade_head(run_dir, loaded.model, data.x_train_nchw, data.y_train, config=cfg.to_dict(),
                                              batch_size=options.batch_size, seed=cfg.train.seed)
        modes = [c["first_layer"] for c in evaluation.meta["first_layer"]]
        analysis = analyse_activation(loaded.model, test_table(loaded.model, data, options.batch_size, modes), cascade_head,
                                      batch_size=options.draw_batch, seed=cfg.train.seed)
        dropout = _dropout_points(run, data, options.draw_batch)
        rows = []
        for p in analysis.random_k:
            k = int(p.setting.split("=")[1])
            mean = analysis.subset_mean(k)
            rows.append({"k": k, "random": p, "subset_mean": mean, "dropout": dropout.get(k)})
        draws = -(-len(data.y_test) // options.draw_batch)
        sections.append(("Accuracy and ops vs active students (Tables V/VI)", _k_table(rows, profile)
                         + f"\n\nRandom K and dropout-trained: a new draw of K students every {options.draw_batch} "
                         f"test samples ({draws} draws); all-subsets mean: every one of the C(N, K) subsets on every "
                         "sample, averaged (the expectation of random K)."))
        cascade_rows = [{**asdict(p), "energy_nj": point_energy_nj(p, profile)} for p in analysis.cascade]
        sections.append(("Per-sample activation (cascade, threshold sweep)", markdown_table(cascade_rows, POLICY_COLUMNS)
                         + "\n\nStudents run in order 0..N-1; after each, a head trained with random prefix "
                         "masks stops the sample when its top softmax probability reaches the threshold."))
        sections.append(("Per-sample vs random K at equal cost, both heads", _compare(analysis)))
        if analysis.random_k_cascade_head:
            every = analysis.random_k_cascade_head[-1]  # K = N: every student, read by the cascade head
            head_lines.append(
                f"- The same {int(every.mean_active)} students read by the cascade head (the ensemble's head refit "
                f"with random prefix masks, which per-sample activation uses): **{100 * every.accuracy:.2f}%** at "
                "the same cost; the threshold sweep below uses this head.")
        out["activation"] = analysis.to_dict()
        out["dropout"] = {str(k): asdict(v) for k, v in dropout.items()}
        curves = {"random K": [(r["k"], r["random"].accuracy) for r in rows],
                  "all subsets (mean)": [(r["k"], r["subset_mean"]["accuracy"]) for r in rows]}
        if dropout:
            curves["dropout-trained"] = [(k, v.accuracy) for k, v in dropout.items()]
        plots.plot_active_students(curves, run_dir / "accuracy_vs_active.png")
        pareto = (analysis.random_k + analysis.cascade + analysis.random_k_cascade_head + analysis.cascade_ensemble_head)
        pareto += [p for k in analysis.subsets for p in analysis.subsets[k]] + list(dropout.values())
        teacher_pt = (teacher_row["energy_pj"] / 1000.0, teacher_row["accuracy"]) if teacher_row else None
        plots.plot_pareto(pareto, [point_energy_nj(p, profile) for p in pareto], run_dir / "accuracy_vs_energy.png", teacher_pt,
                          profile=profile.name)
        sections.append(("Plots", "![accuracy vs active students](accuracy_vs_active.png)\n\n"
                         "![accuracy vs energy](accuracy_vs_energy.png)"))
    else:
        _remove_stale_plots(run_dir, ("accuracy_vs_active.png", "accuracy_vs_energy.png"))

    if options.noise:
        results = _noise(run, loaded, data, options)
        out["noise"] = [asdict(r) for r in results]
        lines = ["| model | sigma | accuracy (%) mean +/- SEM |", "|---|---|---|"]
        lines += [f"| {r.model} | {r.sigma:g} | {100 * r.mean:.2f} +/- {100 * r.sem:.2f} |" for r in results]
        plots.plot_noise(results, run_dir / "accuracy_vs_noise.png")
        sections.append((f"Noise robustness ({options.repeats} repeats, Table IV)", "\n".join(lines)
                         + "\n\n![accuracy vs noise](accuracy_vs_noise.png)"))
    else:
        _remove_stale_plots(run_dir, ("accuracy_vs_noise.png",))

    finetune = finetune_section(run_dir, loaded.partition.strategy.value)  # written by teacher fine-tuning
    if finetune is not None:
        sections.append(("Teacher fine-tuning (disentanglement)", finetune[0]))
        out["finetune"] = finetune[1]
    for heading, body, key, data in stage_sections:  # e.g. the pipeline's export + Lava stage
        sections.append((heading, body))
        out[key] = data
    sections += options.extra_sections
    out.update(options.extra_data)
    if timings:
        out["timings"] = timings
        sections.append(("Timings (s)", ", ".join(f"{k} {v:.1f}" for k, v in timings.items())))
    sections.append(("Files in this run folder", _index_markdown(run_dir)))
    sections.append(("Config (the ensemble's training config, with the report settings this report used)",
                     "```toml\n" + tomli_w.dumps(_toml_safe(config)) + "```"))
    summary = "\n".join([_summary(evaluation.rows), *head_lines, *_readiness_link(run_dir), data_line])
    write_report(run_dir, title, [("Summary", summary), *sections], out)
    out["rows"] = evaluation.rows
    return out


def _toml_safe(tree: Any) -> Any:
    """A JSON-like config tree TOML can hold: ``None`` values left out, tuples as lists."""
    if isinstance(tree, dict):
        return {k: _toml_safe(v) for k, v in tree.items() if v is not None}
    if isinstance(tree, (list, tuple)):
        return [_toml_safe(v) for v in tree]
    return tree


def _remove_stale_plots(run_dir: Path, names: Sequence[str]) -> None:
    """Plots an earlier report drew for a section this report leaves out (they would
    contradict it, and the folder index would list them as its plots)."""
    for name in names:
        (run_dir / name).unlink(missing_ok=True)


#: The learning-curve plot's file name.
LEARNING_CURVES_PNG = "learning_curves.png"
#: The training table's columns: (key, header, format).
TRAINING_COLUMNS: tuple[tuple[str, str, Any], ...] = (
    ("stage", "stage", str), ("epochs", "epochs", whole), ("train", "last train acc. (%)", percent),
    ("test", "last test acc. (%)", percent), ("wall", "training wall time", str),
)


def epoch_time_totals(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """A training history's epochs, how many carry a ``seconds`` record (runs trained before
    the epoch timer have none) and how many a ``cpu_seconds`` one (added later), and the sums
    of their ``seconds`` and ``cpu_seconds``."""
    timed = [r for r in records if isinstance(r.get("seconds"), (int, float))]
    cpu_timed = [r for r in timed if isinstance(r.get("cpu_seconds"), (int, float))]
    return {"epochs": len(records), "timed": len(timed), "cpu_timed": len(cpu_timed),
            "seconds": sum(float(r["seconds"]) for r in timed),
            "cpu_seconds": sum(float(r["cpu_seconds"]) for r in cpu_timed)}


def training_section(run: Run, student_history: Sequence[dict[str, Any]]) -> tuple[str, dict[str, Any]] | None:
    """The run's learning curves (``RUN/learning_curves.png``) and training time: per stage
    (teacher, students), its epochs, last train / test accuracy and the sum of its epochs'
    wall seconds (over every attempt: the history is the checkpoint's); ``None`` without any
    history. The teacher's history comes from ``teacher.pt`` (the run's cached load; a user's
    external teacher may have none)."""
    from sne_loihi.analysis import plots

    run_dir = run.dir
    histories: dict[str, list[dict[str, Any]]] = {}
    if run.file(TEACHER_FILE).is_file():
        histories["teacher"] = list(run.teacher()[2].get("history") or [])
    histories["students"] = list(student_history or [])
    histories = {k: [r for r in v if isinstance(r, dict) and "epoch" in r] for k, v in histories.items()}
    histories = {k: v for k, v in histories.items() if v}
    if not histories:
        return None
    rows, data, curves = [], {}, {}
    for stage, hist in histories.items():
        t = epoch_time_totals(hist)
        last = hist[-1]
        data[stage] = {"epochs": t["epochs"], "timed_epochs": t["timed"], "seconds": t["seconds"],
                       "cpu_seconds": t["cpu_seconds"], "train_accuracy": last.get("train_accuracy"),
                       "test_accuracy": last.get("test_accuracy")}
        for split in ("train", "test"):
            curves[f"{stage} {split}"] = [(int(r["epoch"]), float(r[f"{split}_accuracy"])) for r in hist
                                          if isinstance(r.get(f"{split}_accuracy"), (int, float))]
        cpu_of = "" if t["cpu_timed"] == t["timed"] else f" over the {t['cpu_timed']} epochs recording it"
        wall = (f"{t['seconds'] / 60:.1f} min ({t['cpu_seconds'] / 60:.1f} min CPU{cpu_of})" + ("" if t["timed"] == t["epochs"] else
                f"; {t['timed']} of {t['epochs']} epochs timed, older ones predate the epoch timer")) if t["timed"] else "not recorded"
        rows.append({"stage": stage, "epochs": len(hist), "train": last.get("train_accuracy"),
                     "test": last.get("test_accuracy"), "wall": wall})
    plots.plot_learning_curves(curves, run_dir / LEARNING_CURVES_PNG)
    body = (markdown_table(rows, TRAINING_COLUMNS)
            + "\n\nTrain accuracy is measured on the epoch's (augmented) batches as they trained; test accuracy on the "
            "whole test set after the epoch (the students' before the batch-norm fold, when there is one). Wall time: "
            "the sum of the epochs' own times over every attempt of a resumed run (set-up, teacher features and the "
            "fold not included; a paused run's pauses are in the wall time, not in the CPU time, which counts "
            f"every thread).\n\n![learning curves]({LEARNING_CURVES_PNG})")
    return body, data


def _dropout_points(run: Run, data: Any, batch_size: int) -> dict[int, Any]:
    """Dropout-trained ensembles in ``RUN/dropout-k*/``, each evaluated at its own K."""
    from sne_loihi.analysis.evaluation import first_layer_choices
    from sne_loihi.ensemble.evaluate import evaluate_ensemble
    from sne_loihi.cost.ops import neuron_updates_per_sample
    from sne_loihi.ensemble.policies import PolicyPoint

    points = {}
    for sub in sorted(run.dir.glob(DROPOUT_GLOB)):
        if not (sub / ENSEMBLE_FILE).is_file():
            continue
        loaded = run.ensemble(sub)
        _check_dropout_variant(run, sub, loaded)
        if loaded.epoch < loaded.config.train.epochs:  # killed mid-training: not a result
            import sys

            print(f"warning: {sub.name} is unfinished ({loaded.epoch} of {loaded.config.train.epochs} epochs) and is "
                  f"left out of the report; finish it with 'sne pipeline --run-dir {run.dir} --resume --dropout-k "
                  f"{loaded.config.ensemble.train_active}'", file=sys.stderr)
            continue
        k = loaded.config.ensemble.train_active
        modes = [c.mode for c in first_layer_choices(run, loaded.model)]  # counted like the main ensemble
        r = evaluate_ensemble(loaded.model, data.x_test_nchw, data.y_test, active=k, batch_size=batch_size,
                              seed=loaded.config.train.seed, first_layer=modes)
        per_student = [neuron_updates_per_sample(st.spec) for st in loaded.model.students]
        neurons = k * sum(per_student) / len(per_student)  # K random students: K x the mean student
        points[k] = PolicyPoint("dropout-trained", f"K={k}", r.accuracy, r.macs_per_sample, r.acs_per_sample, float(k),
                                neuron_updates=neurons)
    return points


def _check_dropout_variant(run: Run, sub: Path, loaded: Any) -> None:
    """A dropout variant is checked like the main ensemble: trained with K students, on the
    run's split, from the run's teacher (another run's folder copied in is refused).

    Raises:
        ConfigError: It is not a dropout-trained ensemble of this run.
    """
    from sne_loihi.data.dataset import split_mismatch
    from sne_loihi.errors import ConfigError
    from sne_loihi.run import file_sha256

    where = sub / ENSEMBLE_FILE
    if loaded.config.ensemble.train_active < 1:
        raise ConfigError(f"{where} is not a dropout-trained ensemble (it trained every student; ensemble.train_active "
                          "is 0)")
    main = run.ensemble()
    why = split_mismatch(loaded.config.data, loaded.config.train.seed, main.config.data, main.config.train.seed)
    if why:
        raise ConfigError(f"{where} does not belong to {run.dir}: {why}")
    teacher = run.file(TEACHER_FILE)
    if loaded.teacher_sha256 is not None and teacher.is_file() and file_sha256(teacher) != loaded.teacher_sha256:
        raise ConfigError(f"{where} was distilled from another teacher than {teacher}; evaluate it in its own run folder")


def _k_table(rows: list[dict[str, Any]], profile: Any) -> str:
    from sne_loihi.cost.energy import energy_pj

    lines = ["| K | random K acc. (%) | ACs | MACs | energy (nJ) | all-subsets mean acc. (%) | dropout-trained acc. (%) | dropout ACs |",
             "|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: -r["k"]):
        p, d = r["random"], r["dropout"]
        lines.append(
            f"| {r['k']} | {100 * p.accuracy:.2f} | {p.acs:,.0f} | {p.macs:,.0f} | "
            f"{energy_pj(profile, macs=p.macs, acs=p.acs, neuron_updates=p.neuron_updates) / 1000:,.2f} | {100 * r['subset_mean']['accuracy']:.2f} | "
            + (f"{100 * d.accuracy:.2f} | {d.acs:,.0f} |" if d else "- | - |")
        )
    return "\n".join(lines)


def _compare(analysis: Any) -> str:
    """Per-sample accuracy at the ops of random K = 1..N-1, each policy read by each head."""
    from sne_loihi.analysis.activation import Head

    if not analysis.cascade:
        return "no cascade points"
    if not analysis.equal_cost(Head.ENSEMBLE):
        return "one student: no random K below all of them to compare with"
    by_head = {h: analysis.equal_cost(h) for h in Head}
    pct = lambda v: "-" if v is None else f"{100 * v:.2f}"  # noqa: E731
    lines = ["| K | random K ops | " + " | ".join(f"random K acc. ({h.value}) | per-sample acc. at same ops ({h.value}) "
                                              f"| difference ({h.value})" for h in Head) + " |",
             "|---|---|" + "---|---|---|" * len(Head)]
    for i, first in enumerate(by_head[Head.ENSEMBLE]):
        cells = []
        for h in Head:
            r = by_head[h][i]
            cells += [pct(r["random_accuracy"]), pct(r["per_sample_accuracy"]),
                      "-" if r["difference"] is None else f"{100 * r['difference']:+.2f}"]
        lines.append(f"| K={first['k']} | {first['ops']:,.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + (
        "\n\nPer-sample accuracy is the best point of the threshold sweep at or below that cost, linearly "
        "interpolated ('-': the sweep starts above it). The ensemble head was trained with every student "
        "active; the cascade head is it refit with random prefix masks. Random K uses the same draws with "
        "either head; each sweep lets its own head decide and classify.")


def _noise(run: Run, loaded: Any, data: Any, options: ReportOptions) -> list:
    from sne_loihi.analysis.noise import noise_sweep

    models = {}
    if run.file(TEACHER_FILE).exists():
        teacher, _, _ = run.teacher()
        models["teacher"] = lambda x: _batched(lambda b: teacher(b).argmax(-1), x, options.batch_size)
    ens = loaded.model
    models[f"ensemble {ens.num_students}x"] = lambda x: _batched(lambda b: ens(b).logits.argmax(-1), x, options.batch_size)
    return noise_sweep(models, data.x_test_nchw, data.y_test, options.noise, options.repeats, seed=loaded.config.train.seed)


@torch.no_grad()
def _batched(fn: Any, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    return torch.cat([fn(x[i : i + batch_size]).cpu() for i in range(0, len(x), batch_size)])


def finetune_section(run_dir: Path, partition: str = "finetune") -> tuple[str, dict[str, Any]] | None:
    """Markdown and data of ``RUN/finetune.json`` (teacher accuracy and L_sim before and
    after fine-tuning with ``CE + beta * L_sim``), or ``None`` when the run has none.

    Raises:
        CheckpointError: The file exists but cannot be read or lacks the before/after values.
    """
    from sne_loihi.errors import CheckpointError

    path = Path(run_dir) / FINETUNE_FILE
    if not path.exists():
        return None
    try:
        data = read_json_file(path, FINETUNE_FILE, CheckpointError)
        b, a = data["before"], data["after"]
        table = ["| teacher | before | after |", "|---|---|---|",
                 f"| test accuracy (%) | {100 * b['test_accuracy']:.2f} | {100 * a['test_accuracy']:.2f} |",
                 f"| L_sim (test set) | {b['l_sim']:.4f} | {a['l_sim']:.4f} |"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"cannot read {path}: {type(exc).__name__} {str(exc).splitlines()[0] if str(exc) else ''}".rstrip()) from None
    text = ("\n".join(table) + f"\n\nFine-tuned with CE + beta * L_sim over {data.get('students')} contiguous "
            f"chunks (beta = {data.get('beta')}, {data.get('epochs')} epochs, lr {data.get('lr')}); the students "
            + ("then learn the contiguous equal split." if partition == "finetune" else
               f"then learn the {partition} partition of the fine-tuned teacher's features.")
            + " L_sim of post-ReLU features is at most sqrt(2) = 1.414.")
    return text, data


def _index_markdown(run_dir: Path) -> str:
    """The run folder's index: each file present, what it is, which command wrote it."""
    from sne_loihi.run_files import REPORT_FILE, run_folder_index

    rows = run_folder_index(run_dir, about_to_write=(REPORT_FILE,))
    lines = ["| file | what it is | written by |", "| --- | --- | --- |"]
    lines += [f"| `{r.pattern}` | {r.what} | `{r.made_by}` |" for r in rows]
    return "\n".join(lines)


def _readiness_link(run_dir: Path) -> list[str]:
    """A summary line pointing to the export's Loihi 2 readiness report, where there is one."""
    from sne_loihi.netx_format.manifest import LOIHI2_REPORT
    from sne_loihi.run_files import EXPORT_DIR

    report = run_dir / EXPORT_DIR / LOIHI2_REPORT
    if not report.is_file():
        return []
    return [f"- Loihi 2 readiness of the exported students: [{EXPORT_DIR}/{LOIHI2_REPORT}]({EXPORT_DIR}/{LOIHI2_REPORT})."]


def teacher_tta_line(history: Sequence[dict[str, Any]], plain_accuracy: float) -> str | None:
    """A summary line for a teacher trained with test-time augmentation (``teacher.tta``): its
    last epoch's averaged-views accuracy next to the single view the report scores and counts
    (``None`` without such a record)."""
    last = history[-1] if history else {}
    tta = last.get("test_accuracy_tta") if isinstance(last, dict) else None
    if not isinstance(tta, (int, float)):
        return None
    return (f"- The teacher averaged over its test-time views (`teacher.tta`, its training's last record): "
            f"{100 * tta:.2f}%; the rows score and count one view ({100 * plain_accuracy:.2f}%), the like-for-like "
            "comparison with the students' one pass.")


def _summary(rows: list[dict[str, Any]]) -> str:
    lines = []
    for r in rows:
        if r["model"].startswith("teacher"):
            lines.append(f"- Teacher ({r['model'].split(' ', 1)[1]}): test accuracy **{100 * r['accuracy']:.2f}%**, "
                         f"{r['macs']:,.0f} MACs per sample, {r['energy_pj'] / 1000:,.2f} nJ.")
        elif r["model"].startswith("ensemble"):
            lines.append(f"- Ensemble ({r['model'].split(' ', 1)[1]}, {r['active']} active, read by its own linear head "
                         "trained with the students): test accuracy "
                         f"**{100 * r['accuracy']:.2f}%**, {r['acs']:,.0f} ACs + {r['macs']:,.0f} MACs per sample, "
                         f"{r['energy_pj'] / 1000:,.2f} nJ.")
    return "\n".join(lines)


def fold_markdown(fold: dict[str, Any]) -> str:
    """The fold's record as a table: test accuracy with batch norm (statistics recomputed on the
    training images), folded and requantised, and after the fine-tuning."""
    rows = [("with batch norm (training form)", fold.get("test_accuracy_batch_norm")),
            ("folded: weights requantised, per-channel neuron bias", fold.get("test_accuracy_folded"))]
    if "test_accuracy_fine_tuned" in fold:
        rows.append((f"folded, fine-tuned {fold.get('fine_tune_epochs')} epochs (stored, exported)",
                     fold["test_accuracy_fine_tuned"]))
    lines = ["| students | test acc. (%) |", "| --- | --- |"]
    lines += [f"| {name} | {percent(float(v)) if isinstance(v, (int, float)) else '-'} |" for name, v in rows]
    return ("\n".join(lines) + f"\n\nStatistics of {fold.get('recalibration_samples', '?')} training images (augmented as in training when data.augment); "
            "every accuracy here is the per-epoch test evaluation's.")

