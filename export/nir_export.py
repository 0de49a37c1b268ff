"""NIR (Neuromorphic Intermediate Representation) export of a trained ensemble, and its re-import.

``sne export RUN --format nir`` writes into ``RUN/nir``:

* ``student_{i}.nir``: one NIR graph per student, ``input -> (Conv2d | Flatten | Linear ->
  CubaLIF)... -> output``, with the weights the student multiplies with (SLAYER's
  ``pre_hook_fx``: 8-bit grid, real step 1/32), zero biases except a folded batch norm's
  per-channel bias (real units, added to the synaptic input: the ``Conv2d`` bias, or an
  ``Affine`` instead of a ``Linear`` for a dense layer; with ``current_decay = 1`` this is
  SLAYER's and Loihi's neuron bias exactly), and every neuron's parameters from
  SLAYER's own device parameters (``iDecay``, ``vDecay``, ``vThMant``, what netx stores);
* ``head.nir``: the ensemble's readout, ``input [sum F] -> Affine -> output [classes]``, applied
  once per sample to the students' concatenated firing rates (output spikes / T);
* ``nir_manifest.json``: files, SHA-256, dt, the mapping, the input encoding and the result of
  the re-import check.

The mapping (forward Euler with dt = :data:`NIR_DT`; ``cd = iDecay / 4096``, ``vd = vDecay /
4096``): ``tau_syn = dt / cd``, ``w_in = 1 / cd``, ``tau_mem = dt / vd``, ``r = 1 / vd``,
``v_leak = 0``, ``v_reset = 0``, ``v_threshold = vThMant / 64`` (real units). Euler steps of NIR's
CubaLIF equations then read ``I[t] = (1 - cd) I[t-1] + S[t]``, ``v[t] = (1 - vd) v[t-1] + I[t]``,
spike when ``v[t] > v_threshold``, then ``v = 0``: SLAYER's CUBA neuron. dt is 1e-4 because
snnTorch's importer assumes that value (``r == tau_mem / dt`` and ``w_in * dt / tau_syn == 1``
hold for it exactly as written here).

**Input.** The first layer is fed graded input, the integers ``round(pixel * (2**bits - 1))``
repeated for T steps (what Lava's input sends), and its threshold is ``threshold * (2**bits -
1)``; so the NIR graph's input is those integers, not pixels in [0, 1].

**Fixed point.** Loihi and SLAYER keep the states as integers (1/4096 of a unit) and truncate
each decayed state toward zero every step; NIR's CubaLIF is a real-valued model and has no
such rounding. A re-import in a float framework therefore reproduces SLAYER's spikes except
where a voltage ends up within that truncation of its threshold. The check here runs every
student twice: the snnTorch re-import against SLAYER's fixed-point spikes (differences
counted and reported), and against the same dynamics without truncation computed here in
float32 (:func:`float_cuba_layer_spikes`), which must agree exactly (any difference is a
mapping error and fails the export). With decays that are exact in binary (e.g. 0.5 and T <= 7)
the fixed-point and real-valued dynamics coincide, and so do all three.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sne_loihi.errors import ExportError
from sne_loihi.json_files import read_json_file
from sne_loihi.export.netx_write import check_norm_folded
from sne_loihi.export.nir_params import DECAY_SCALE, NIR_DT, WEIGHT_SCALE, cuba_params, synapse_bias
from sne_loihi.netx_format.manifest import NIR_MANIFEST_FILE

HEAD_FILE = "head.nir"
NIR_DIR = "nir"


def _check_slayer(student: Any) -> None:
    library = str(getattr(student.spec.neuron_library, "value", student.spec.neuron_library))
    if library != "slayer":
        raise ExportError(f"only SLAYER students can be exported to NIR (this student uses {library!r})")


def student_nir_graph(student: Any, dt: float = NIR_DT) -> Any:
    """A SLAYER student as a ``nir.NIRGraph`` (batch-less types, torch ``[C, H, W]`` layout).

    Weights are the quantised ones the student multiplies with
    (:func:`sne_loihi.cost.ops.synapse_view`, the same values netx stores divided by 64).

    Raises:
        ExportError: Not a SLAYER student, or a neuron NIR's CubaLIF cannot express.
    """
    import nir

    from sne_loihi.cost.ops import synapse_view
    from sne_loihi.layers import LayerKind

    _check_slayer(student)
    check_norm_folded(student)
    spec = student.spec
    nodes: dict[str, Any] = {"input": nir.Input(input_type=np.array(spec.in_shape))}
    edges: list[tuple[str, str]] = []
    prev, provenance = "input", []
    for i, (layer, block, (in_shape, out_shape)) in enumerate(zip(spec.layers, student.blocks, spec.layer_shapes())):
        if layer.kind is LayerKind.FLATTEN:
            # batch-less types: the node flattens every dim (C, H, W row-major, as SLAYER's Flatten)
            nodes[f"flatten_{i}"] = nir.Flatten(input_type={"input": np.array(in_shape)}, start_dim=0, end_dim=-1)
            edges.append((prev, f"flatten_{i}"))
            prev = f"flatten_{i}"
            continue
        view = synapse_view(block, layer.kind)
        w = view.weight.detach().cpu().double().numpy()
        bias = synapse_bias(block)
        if layer.kind is LayerKind.CONV:
            syn = nir.Conv2d(input_shape=tuple(int(v) for v in in_shape[1:]), weight=w, stride=view.stride,
                             padding=view.padding, dilation=view.dilation, groups=view.groups,
                             bias=np.zeros(w.shape[0], dtype=np.float64) if bias is None else bias)
        else:
            syn = nir.Linear(weight=w) if bias is None else nir.Affine(weight=w, bias=bias)
        cuba = cuba_params(block)
        nodes[f"synapse_{i}"], nodes[f"neuron_{i}"] = syn, cuba.nir_node(out_shape, dt)
        edges += [(prev, f"synapse_{i}"), (f"synapse_{i}", f"neuron_{i}")]
        prev = f"neuron_{i}"
        provenance.append({"layer": i, "kind": layer.kind.value, "iDecay": cuba.i_decay, "vDecay": cuba.v_decay,
                           "vThMant": cuba.v_th_mant, "weights_int": "weight * 64 (even integers -256..254)"})
    nodes["output"] = nir.Output(output_type=np.array(spec.layer_shapes()[-1][1]))
    edges.append((prev, "output"))
    bits = int(spec.input_bits)
    metadata = {
        "dt": float(dt),
        "time_steps": int(spec.time_steps),
        "input_bits": bits,
        "input_encoding": f"integers round(pixel * {2**bits - 1}) for pixels in [0, 1] (input_bits = {bits}), the "
                          f"same at each of the {spec.time_steps} steps; the first layer's threshold is "
                          f"threshold * {2**bits - 1} to match",
        "layout": "torch: Conv2d input (C, H, W), weights (C_out, C_in, kH, kW); Flatten row-major over (C, H, W)",
        "neuron_mapping": "forward Euler: cd = iDecay/4096, vd = vDecay/4096, tau_syn = dt/cd, w_in = 1/cd, "
                          "tau_mem = dt/vd, r = 1/vd, v_leak = 0, v_reset = 0, v_threshold = vThMant/64",
        "fixed_point": "Loihi/SLAYER state is integer (1/4096 units) and each decayed state is truncated toward "
                       "zero every step; NIR CubaLIF is real-valued (no truncation)",
        "source": "sne-loihi SLAYER student (lava-dl slayer.block.cuba), the same network as its netx export",
        "provenance_json": json.dumps({"weight_scale": WEIGHT_SCALE, "decay_scale": DECAY_SCALE,
                                       "spec": spec.to_dict(), "layers": provenance}),
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=metadata)


def head_nir_graph(weight_cd: np.ndarray, bias_c: np.ndarray, sizes: Sequence[int], class_names: Sequence[str]) -> Any:
    """The ensemble head as ``input [sum F] -> Affine -> output [classes]`` over the rates."""
    import nir

    weight_cd = np.asarray(weight_cd, dtype=np.float64)
    bias_c = np.asarray(bias_c, dtype=np.float64)
    nodes = {"input": nir.Input(input_type=np.array([weight_cd.shape[1]])),
             "head": nir.Affine(weight=weight_cd, bias=bias_c),
             "output": nir.Output(output_type=np.array([weight_cd.shape[0]]))}
    metadata = {"applies_to": "once per sample, to the concatenated firing rates (output spikes / T) of "
                              "student_0.nir .. student_{N-1}.nir in this order; logits = W rates + b",
                "student_sizes_json": json.dumps([int(s) for s in sizes]),
                "class_names_json": json.dumps([str(c) for c in class_names])}
    return nir.NIRGraph(nodes=nodes, edges=[("input", "head"), ("head", "output")], metadata=metadata)


def describe_graph(graph: Any) -> list[dict[str, str]]:
    """One row per node along the graph's edges: name, type, output shape, parameters."""
    import nir

    def uniq(a: Any) -> str:
        v = np.unique(np.asarray(a))
        return f"{v[0]:.6g}" if v.size == 1 else f"{v.size} values"

    details = {
        nir.CubaLIF: lambda n: (f"tau_syn {uniq(n.tau_syn)}, tau_mem {uniq(n.tau_mem)}, r {uniq(n.r)}, "
                                f"w_in {uniq(n.w_in)}, v_threshold {uniq(n.v_threshold)}, v_reset {uniq(n.v_reset)}"),
        nir.Conv2d: lambda n: (f"weight {list(n.weight.shape)} ({int(np.count_nonzero(n.weight))} non-zero), stride "
                               f"{list(np.atleast_1d(n.stride))}, padding {list(np.atleast_1d(n.padding))}, groups {n.groups}"),
        nir.Linear: lambda n: f"weight {list(n.weight.shape)} ({int(np.count_nonzero(n.weight))} non-zero)",
        nir.Affine: lambda n: f"weight {list(n.weight.shape)}, bias {list(n.bias.shape)}",
        nir.Flatten: lambda n: f"start_dim {n.start_dim}, end_dim {n.end_dim}",
    }
    following = dict(graph.edges)
    rows, node = [], "input"
    while node is not None:
        n = graph.nodes[node]
        shape = next(iter(n.output_type.values()), None)
        rows.append({"node": node, "type": type(n).__name__, "shape": str(list(np.atleast_1d(shape))),
                     "parameters": details.get(type(n), lambda _n: "")(n)})
        node = following.get(node)
    return rows


@dataclass
class NirExport:
    """A NIR export read back (:func:`read_nir_export`).

    Attributes:
        directory: The export folder.
        students: One ``nir.NIRGraph`` per student, in order.
        head: The readout graph.
        manifest: ``nir_manifest.json`` as written.
    """

    directory: Path
    students: list[Any]
    head: Any
    manifest: dict[str, Any]


def read_nir_graph(path: Path) -> Any:
    """``nir.read`` with one-line errors.

    Raises:
        ExportError: Missing, unreadable or invalid file.
    """
    import nir

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"NIR file not found: {path}")
    try:
        return nir.read(path)
    except Exception as exc:  # h5py / nir raise OSError, KeyError, ValueError, AssertionError
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ExportError(f"{path} is not a readable NIR graph: {first}") from None


def read_nir_export(directory: Path) -> NirExport:
    """Read and validate a NIR export folder written by :func:`export_nir`.

    Every file's SHA-256 must match the manifest, every graph must read with ``nir.read``,
    and the head's input must equal the students' total output size.

    Raises:
        ExportError: One line naming what is missing or inconsistent.
    """
    from sne_loihi.io import sha256_file

    directory = Path(directory)
    if not (directory / NIR_MANIFEST_FILE).is_file():
        raise ExportError(f"{directory} holds no NIR export ({NIR_MANIFEST_FILE} not found)")
    try:
        manifest = read_json_file(directory / NIR_MANIFEST_FILE, NIR_MANIFEST_FILE, ExportError)
        files = [str(e["file"]) for e in manifest["students"]] + [str(manifest["head"]["file"])]
        hashes = [str(e["sha256"]) for e in manifest["students"]] + [str(manifest["head"]["sha256"])]
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise ExportError(f"{directory}/{NIR_MANIFEST_FILE} is not a NIR export manifest ({type(exc).__name__})") from None
    for name, digest in zip(files, hashes):
        if Path(name).name != name:
            raise ExportError(f"{NIR_MANIFEST_FILE} lists {name!r}, which is not a file name inside the export")
        if not (directory / name).is_file():
            raise ExportError(f"{directory / name} is listed in {NIR_MANIFEST_FILE} but missing")
        if sha256_file(directory / name) != digest:
            raise ExportError(f"{directory / name} does not match its SHA-256 in {NIR_MANIFEST_FILE} (changed or corrupt)")
    graphs = [read_nir_graph(directory / f) for f in files]
    students, head = graphs[:-1], graphs[-1]
    total = sum(int(np.prod(next(iter(g.nodes["output"].output_type.values())))) for g in students)
    head_in = int(np.prod(next(iter(head.nodes["input"].input_type.values()))))
    if head_in != total:
        raise ExportError(f"{directory}: the head reads {head_in} rates but the students output {total}")
    return NirExport(directory=directory, students=students, head=head, manifest=manifest)


def export_nir(loaded: Any, out_dir: Path, *, x_verify_nchw: Any = None, verify_samples: int = 100,
               overwrite: bool = False, ensemble_sha256: str | None = None) -> NirExport:
    """Write a loaded ensemble checkpoint as NIR graphs (+ manifest), checked by re-import.

    Written into a temporary folder beside ``out_dir`` and renamed into place only after the
    check passed and the export reads back, as the netx export does.

    Args:
        loaded: :class:`~sne_loihi.ensemble.checkpoint.LoadedEnsemble`.
        out_dir: Export folder.
        x_verify_nchw: Images in [0, 1] for the re-import check (the first test samples).
        verify_samples: How many (0 skips the check; recorded as null).
        overwrite: Replace an earlier NIR export.
        ensemble_sha256: SHA-256 of the ``ensemble.pt`` it comes from, recorded so that a check
            against another (retrained) checkpoint says so instead of reporting a mapping error.

    Raises:
        ExportError: Existing export without ``overwrite``, non-SLAYER students, snnTorch
            missing for a check. ParityError: the re-import disagrees with the mapping.
    """
    import nir
    import torch

    from sne_loihi.ensemble import encode_for
    from sne_loihi.export.exporter import _replace_dir, check_out_dir, clean_leftovers, make_build_dir
    from sne_loihi.io import sha256_file

    out_dir = Path(out_dir)
    check_out_dir(out_dir, overwrite, NIR_MANIFEST_FILE)
    if verify_samples < 0:
        raise ExportError(f"verify_samples must be >= 0, got {verify_samples}")
    if verify_samples > 0 and x_verify_nchw is None:
        raise ExportError("the re-import check needs samples: pass x_verify_nchw (or verify_samples=0 to skip it)")
    model = loaded.model
    students = list(model.students)
    graphs = [student_nir_graph(s) for s in students]
    head = head_nir_graph(model.head.weight.detach().cpu().numpy(), model.head.bias.detach().cpu().numpy(),
                          model.sizes, loaded.class_names)
    check = None
    if verify_samples > 0:
        from sne_loihi.export.nir_check import check_nir, import_snntorch

        import_snntorch(graphs[0])  # a missing snnTorch fails before any work
        x = torch.as_tensor(np.asarray(x_verify_nchw[:verify_samples]), dtype=torch.float32)
        with torch.no_grad():
            logits = model(x).logits.cpu().numpy()
        check = check_nir(students, graphs, encode_for(students[0].spec, x), head, logits)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(out_dir)
    tmp = make_build_dir(out_dir)
    try:
        entries = []
        for i, graph in enumerate(graphs):
            nir.write(tmp / f"student_{i}.nir", graph)
            entries.append({"file": f"student_{i}.nir", "sha256": sha256_file(tmp / f"student_{i}.nir"),
                            "spec": students[i].spec.to_dict()})
        nir.write(tmp / HEAD_FILE, head)
        spec = students[0].spec
        manifest = {
            "format": "NIR (nir.read); one graph per student + the head",
            "nir_version": nir.version, "dt": NIR_DT, "time_steps": int(spec.time_steps),
            "input": {"bits": int(spec.input_bits), "shape_chw": [int(v) for v in loaded.in_shape],
                      "encoding": graphs[0].metadata["input_encoding"]},
            "neuron_mapping": graphs[0].metadata["neuron_mapping"],
            "fixed_point": graphs[0].metadata["fixed_point"],
            "students": entries,
            "head": {"file": HEAD_FILE, "sha256": sha256_file(tmp / HEAD_FILE),
                     "applies_to": head.metadata["applies_to"]},
            "class_names": [str(c) for c in loaded.class_names],
            "partition": loaded.partition.to_dict(),
            "check": check.to_dict() if check is not None else None,
            "ensemble_sha256": ensemble_sha256,
        }
        from sne_loihi.io import atomic_write_json

        atomic_write_json(tmp / NIR_MANIFEST_FILE, manifest)
        read_nir_export(tmp)  # the export must read back
        _replace_dir(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return read_nir_export(out_dir)
