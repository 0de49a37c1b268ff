"""Loihi 2 readiness report of the CIFAR preset's ensemble shape (4 x vgg5mini, 3x32x32, T=4, 4-bit input).

Usage::

    python benchmarks/loihi2_readiness.py [--samples 4] [--data-dir DIR] [--out benchmarks/results/loihi2_cifar]
    python benchmarks/loihi2_readiness.py --export RUN/export --label "trained cpu-cifar10, seed 0" [--out ...]

With ``--export``: copies the report ``sne export`` wrote for a trained run (``loihi2.md``,
retitled with ``--label``, and the manifest's ``loihi2`` JSON); nothing is recomputed.
Without it:

Exports an *untrained* ensemble (the chip's limits on neurons, synapses, cores, traffic and
placement depend on the shape only; weights, thresholds and states do depend on training, so
those rows describe the initialisation, not a trained model) through ``export_model`` (which
writes ``loihi2.md``), then rebuilds the report with the state measured on ``--samples`` CIFAR
test images (or random images without ``--data-dir``). Writes ``OUT.md`` and ``OUT.json``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path


def copy_export_report(export: Path, label: str, out: Path) -> None:
    """Write ``out.md`` / ``out.json`` from the readiness report of an existing export."""
    from sne_loihi.export import load_manifest

    manifest = load_manifest(export)
    if manifest.loihi2 is None or not (export / "loihi2.md").is_file():
        raise SystemExit(f"{export} holds no readiness report (re-export it with this version: sne export RUN --out DIR)")
    lines = (export / "loihi2.md").read_text().splitlines()
    samples = manifest.parity.samples if manifest.parity is not None else 0
    lines[0] = f"# Loihi 2 readiness: {label} (state measured on its {samples} parity samples)"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    out.with_suffix(".json").write_text(json.dumps({"label": label, **manifest.loihi2}, indent=1, default=str))
    print(out.with_suffix(".md"), manifest.loihi2.get("counts"))


def main() -> None:
    import torch

    from sne_loihi.config import StudentConfig
    from sne_loihi.ensemble import encode_for
    from sne_loihi.ensemble.checkpoint import build_ensemble
    from sne_loihi.export import export_model, load_manifest
    from sne_loihi.partition import Partition
    from sne_loihi.sim.readiness import build_report
    from sne_loihi.sim.readiness_md import readiness_markdown

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/loihi2_cifar"))
    ap.add_argument("--export", type=Path, default=None, help="a trained run's export folder (written by sne export)")
    ap.add_argument("--label", default="", help="what the export is (with --export)")
    args = ap.parse_args()
    if args.export is not None:
        copy_export_report(args.export, args.label, args.out)
        return
    if args.data_dir is not None:
        from sne_loihi.config import DataConfig
        from sne_loihi.data import DATASETS

        data = DATASETS.get("cifar10")(DataConfig(name="cifar10", data_dir=str(args.data_dir)), 0)
        x = data.x_test_nchw[: args.samples].float()
        source = f"the first {args.samples} CIFAR-10 test images"
    else:
        x = torch.rand(args.samples, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        source = f"{args.samples} uniform random images"
    torch.manual_seed(0)
    features, chw = 512, (3, 32, 32)
    partition = Partition.from_dict({"strategy": "fixed", "feature_dim": features,
                                     "groups": [list(range(i * 128, (i + 1) * 128)) for i in range(4)]})
    model = build_ensemble(StudentConfig(arch="vgg5mini", time_steps=4, input_bits=4), partition, chw, 10).eval()
    with tempfile.TemporaryDirectory() as tmp:
        export = Path(tmp) / "export"
        export_model(model, export, partition=partition.to_dict(), in_shape_chw=chw,
                     class_names=[str(i) for i in range(10)], config={}, verify_samples=0)
        manifest = load_manifest(export)
        if not (export / "loihi2.md").is_file() or manifest.loihi2 is None:
            raise SystemExit("the export wrote no readiness report")
        x_nchwt = encode_for(model.students[0].spec, x)
        report = build_report(manifest.net_paths(), manifest.input.bits, manifest.input.time_steps,
                              students=list(model.students), x_nchwt=x_nchwt)
    title = f"Loihi 2 readiness: CIFAR preset shape, untrained 4 x vgg5mini (state measured on {source})"
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(readiness_markdown(report, title=title))
    args.out.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=1, default=str))
    print(args.out.with_suffix(".md"), report.counts(), report.totals)


if __name__ == "__main__":
    main()
