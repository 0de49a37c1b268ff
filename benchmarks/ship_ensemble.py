"""Ship a trained, exported ensemble in the repository, ready to simulate or deploy without training.

Usage::

    python benchmarks/ship_ensemble.py RUN --out models/NAME [--max-mb 10]

``RUN`` is a finished run folder: ``ensemble.pt``, ``export/`` (``sne export``, with its Lava
parity check), ``report.md`` (``sne evaluate``). ``models/NAME`` receives:

- ``export/``: the netx files, ``manifest.json`` (head, input encoding, hashes) and the Loihi 2
  readiness report, as ``sne export`` wrote them;
- ``ensemble.pt``: the torch ensemble the export came from (``sne simulate`` compares Lava with
  it spike for spike; loaded with ``weights_only=True``);
- ``report.md``, ``report.json``, the plots, ``config.toml`` and the learning curves;
- ``PROVENANCE.json``: the commit and whether the tree was clean, the date, the CPU, the data
  set, the config, the accuracies (teacher, ensemble, Lava parity) and the SHA-256 of every file;
- ``README.md``: what it is and the commands to run it.

No teacher checkpoint is shipped (the students do not need it). Refuses an incomplete run, an
export whose parity check found mismatches or did not run, an export whose files or source
``ensemble.pt`` changed since, an existing ``--out`` and a folder over ``--max-mb``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

#: Files of the run folder that are shipped beside the export (the ones present).
#: ``cascade_head.pt`` lets a re-export (e.g. ``--first-layer bias``) keep per-sample activation;
#: ``partition.json`` says which teacher features each student learnt.
SHIPPED_FILES = ("ensemble.pt", "cascade_head.pt", "partition.json", "report.md", "report.json", "config.toml",
                 "metrics_students.jsonl", "metrics_teacher.jsonl", "lava.json")


def _git(*args: str) -> str:
    root = Path(__file__).resolve().parents[1]
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=True).stdout.strip()


def check_run(run: Path) -> dict[str, Any]:
    """The run's manifest and report, after checking the run is complete and exact.

    Raises:
        SystemExit: A missing file, or an export without a clean parity check.
    """
    for name in ("ensemble.pt", "export/manifest.json", "report.json", "config.toml"):
        if not (run / name).is_file():
            raise SystemExit(f"error: {run / name} not found (train, export and evaluate the run first)")
    from sne_loihi.errors import SneError
    from sne_loihi.io import sha256_file
    from sne_loihi.netx_format.manifest import load_manifest

    try:
        checked = load_manifest(run / "export")  # every netx file present and unchanged (sha256)
    except SneError as exc:
        raise SystemExit(f"error: {exc}") from None
    if checked.ensemble_sha256 is None:
        raise SystemExit("error: the export does not record which ensemble.pt it came from; export it again")
    if sha256_file(run / "ensemble.pt") != checked.ensemble_sha256:
        raise SystemExit(f"error: {run / 'ensemble.pt'} is not the ensemble the export was made from; export it again")
    manifest = checked.to_dict()
    parity = manifest.get("parity")
    if not parity or parity.get("samples", 0) < 1:
        raise SystemExit("error: the export ran no Lava parity check; export it with --check-samples N")
    if parity.get("mismatches", 1) != 0:
        raise SystemExit(f"error: the export's parity check found {parity.get('mismatches')} mismatches")
    return {"manifest": manifest, "report": json.loads((run / "report.json").read_text())}


def _accuracies(report: dict[str, Any]) -> dict[str, Any]:
    rows = report.get("evaluation", {}).get("rows", [])
    out = {}
    for r in rows:
        if r["model"].startswith(("teacher", "ensemble")):
            out[r["model"]] = {"accuracy": r["accuracy"], "macs": r["macs"], "acs": r["acs"],
                               "energy_pj": r["energy_pj"], "active": r.get("active")}
    return out


def ship(run: Path, out: Path, max_mb: float) -> Path:
    """Copy the shippable part of ``run`` into ``out`` (a new folder) with its provenance."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from machine import cpu_name

    from sne_loihi.io import sha256_file

    if out.exists():
        raise SystemExit(f"error: {out} exists; choose a new --out")
    info = check_run(run)
    tmp = out.with_name(out.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    shutil.copytree(run / "export", tmp / "export")
    for name in SHIPPED_FILES:
        if (run / name).is_file():
            shutil.copy2(run / name, tmp / name)
    for png in sorted(run.glob("*.png")):
        shutil.copy2(png, tmp / png.name)
    report, manifest = info["report"], info["manifest"]
    provenance = {
        "commit": _git("rev-parse", "HEAD"),
        "tree_clean": _git("status", "--porcelain", "--untracked-files=no") == "",
        "shipped": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cpu": cpu_name(),
        "run": run.name,
        "data": report.get("data"),
        "config": report.get("config"),
        "accuracies": _accuracies(report),
        "energy_profile": report.get("energy_profile", {}).get("name"),
        "lava_parity": manifest.get("parity"),
        "files": {str(p.relative_to(tmp)): sha256_file(p) for p in sorted(tmp.rglob("*")) if p.is_file()},
    }
    (tmp / "PROVENANCE.json").write_text(json.dumps(provenance, indent=1) + "\n")
    (tmp / "README.md").write_text(_readme(out, provenance))
    size_mb = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file()) / 2**20
    if size_mb > max_mb:
        shutil.rmtree(tmp)
        raise SystemExit(f"error: the shipped folder would hold {size_mb:.1f} MB, over --max-mb {max_mb:g}")
    tmp.rename(out)
    print(f"shipped {run} -> {out} ({size_mb:.2f} MB)")
    return out


def _readme(out: Path, prov: dict[str, Any]) -> str:
    acc = prov["accuracies"]
    lines = [f"# {out.name}: a trained sne-loihi ensemble, exported for Lava and Loihi 2", ""]
    data = prov.get("data") or {}
    lines.append(f"Data: {data.get('name')} ({data.get('train_samples')} training / {data.get('test_samples')} test "
                 f"images, {data.get('in_shape_chw')}); shipped on {prov['cpu']} at commit `{prov['commit'][:12]}`"
                 f"{'' if prov['tree_clean'] else ' (uncommitted changes)'} (the run's own config and learning curves "
                 "are in `config.toml` and `metrics_*.jsonl`).")
    lines += ["", "| model | test accuracy (%) | MACs | ACs | energy (nJ, " + str(prov.get("energy_profile")) + ") |",
              "| --- | --- | --- | --- | --- |"]
    for name, r in acc.items():
        lines.append(f"| {name} | {100 * r['accuracy']:.2f} | {r['macs']:,.0f} | {r['acs']:,.0f} | "
                     f"{r['energy_pj'] / 1000:,.2f} |")
    parity = prov.get("lava_parity") or {}
    lines += ["", f"Lava (fixed_pt) against torch at export: {parity.get('samples')} test samples, "
              f"{parity.get('mismatches')} mismatches.", "",
              "Run it (from the repository root):", "", "```bash",
              f"sne simulate {out}/export --input my_images.npy      # your images: [N, C, H, W] or [N, H, W, C]",
              f"sne simulate {out}/export --active 0,2 --input my_images.npy   # two of the students",
              f"sne simulate {out}/export --cascade 0.6,0.9 --input my_images.npy   # per-sample activation",
              "```", "",
              "To export it again (e.g. with the first layer driven by a per-sample neuron bias, its MACs paid "
              "once per sample), give `--out` a folder outside `models/` and the data set for its Lava check "
              "(or `--check-samples 0`):", "", "```bash",
              f"sne export {out} --first-layer bias --out my_export --data-dir PATH/TO/{data.get('name')}-data",
              "```", "",
              f"`export/loihi2.md` says what the students need on Loihi 2; `report.md` has the full evaluation; "
              "`PROVENANCE.json` the config, data and the SHA-256 of every file.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="finished run folder")
    p.add_argument("--out", type=Path, required=True, help="new folder, e.g. models/cifar10-full")
    p.add_argument("--max-mb", type=float, default=10.0)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    ship(args.run, args.out, args.max_mb)


if __name__ == "__main__":
    main()
