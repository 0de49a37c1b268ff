"""The export stage (installed as ``sne_loihi.export``): trained students to netx HDF5 files
with a manifest, verified in Lava; NIR graphs re-imported in snnTorch; the stage functions
behind ``sne export`` and ``sne nir`` (:mod:`.stage`).

The netx format itself (reader, manifest) is core code in :mod:`sne_loihi.netx_format`, so
the sim stage reads exports without importing this package. This package imports no Lava
itself; the parity check and the Loihi 2 readiness report call into :mod:`sne_loihi.sim`
(one way: sim never imports export).
"""

from sne_loihi.export.exporter import check_parity, export_ensemble, export_loaded, export_model, torch_layer_spikes
from sne_loihi.export.netx_write import write_student_hdf5
from sne_loihi.io import sha256_file
from sne_loihi.layers import LayerKind
from sne_loihi.netx_format.manifest import (
    MANIFEST_FILE, CascadeHead, InputEncoding, Manifest, ParityRecord, StudentEntry, load_manifest,
)
from sne_loihi.netx_format.netx_file import NetxLayer, NetxNetwork, read_netx_layers, read_netx_network

__all__ = [
    "MANIFEST_FILE", "CascadeHead", "InputEncoding", "LayerKind", "Manifest", "NetxLayer", "ParityRecord", "StudentEntry",
    "NetxNetwork", "check_parity", "export_ensemble", "export_loaded", "export_model", "load_manifest", "read_netx_layers",
    "read_netx_network", "sha256_file",
    "torch_layer_spikes", "write_student_hdf5",
]
