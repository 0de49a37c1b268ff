"""Error types the CLI turns into one-line messages and a non-zero exit."""

from __future__ import annotations


class SneError(Exception):
    """Base class for every user-facing error in sne-loihi.

    The CLI catches it, prints ``error: <message>`` on one line and exits with code 1.
    Raise it (or a subclass) for bad input: missing or corrupt files, wrong shapes,
    impossible options. Programming errors should stay ordinary exceptions.
    """


class DataError(SneError):
    """A data set folder or file is missing, empty or corrupt."""


class CheckpointError(SneError):
    """A checkpoint is missing, corrupt or does not fit the expected model."""


class UnsafeFileError(CheckpointError):
    """A file would run code if loaded (a TorchScript archive, a pickle naming a function or
    class beyond plain data); it is refused before anything in it runs."""


class ConfigError(SneError):
    """A configuration value or combination of options is invalid."""


class ExportError(SneError):
    """Export to netx HDF5 failed, or an exported file is corrupt or inconsistent."""


class ParityError(ExportError):
    """Lava's spikes differ from torch's for an exported network."""


class SimulationError(SneError):
    """The Lava simulation cannot be built or run as asked."""


def one_line(exc: BaseException, limit: int = 240) -> str:
    """An exception's whole message on one line (whitespace collapsed, cut at ``limit``).

    For messages such as torch's ``load_state_dict`` errors, whose first line alone
    ("Error(s) in loading state_dict for X:") does not say what is wrong.
    """
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
