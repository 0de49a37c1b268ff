"""Export trained students to netx HDF5 with a manifest, and verify them in Lava.

This package itself imports no Lava; the parity check calls into :mod:`sne_loihi.sim`.
"""

from sne_loihi.export.exporter import check_parity, export_ensemble, export_loaded, export_model, torch_layer_spikes
from sne_loihi.export.manifest import (
    MANIFEST_FILE, CascadeHead, InputEncoding, Manifest, ParityRecord, StudentEntry, load_manifest, sha256_file,
)
from sne_loihi.export.netx_file import LayerKind, NetxLayer, NetxNetwork, read_netx_layers, read_netx_network, write_student_hdf5

__all__ = [
    "MANIFEST_FILE", "CascadeHead", "InputEncoding", "LayerKind", "Manifest", "NetxLayer", "ParityRecord", "StudentEntry",
    "NetxNetwork", "check_parity", "export_ensemble", "export_loaded", "export_model", "load_manifest", "read_netx_layers",
    "read_netx_network", "sha256_file",
    "torch_layer_spikes", "write_student_hdf5",
]
