"""The netx export format, read by both stages: netx HDF5 networks (h5py only) and the export
manifest. Core code: :mod:`sne_loihi.export` writes the format and :mod:`sne_loihi.sim` runs
it, and neither imports the other for it."""

from sne_loihi.netx_format.manifest import (
    LOIHI2_REPORT, MANIFEST_FILE, CascadeHead, InputEncoding, Manifest, ParityRecord, StudentEntry, load_manifest,
)
from sne_loihi.netx_format.netx_file import NetxLayer, NetxNetwork, read_netx_layers, read_netx_network

__all__ = [
    "LOIHI2_REPORT", "MANIFEST_FILE", "CascadeHead", "InputEncoding", "Manifest", "NetxLayer", "NetxNetwork",
    "ParityRecord", "StudentEntry", "load_manifest", "read_netx_layers", "read_netx_network",
]
