"""sne-loihi: distilled spiking-student ensembles for Loihi 2."""

__version__ = "0.1.0"
