"""Exceptions that carry a message meant for the user, not a traceback."""


class DmbenchError(Exception):
    """Base class: the CLI prints these as one clear message and exits with ``exit_code``.

    Exit codes (``dmbench``): 0 ok; 1 a claim that is not a recorded finding fails; 2 a
    usage error (``UsageError``, argparse); 3 an asset, data, input or environment error
    (every other ``DmbenchError``)."""

    exit_code = 3


class UsageError(DmbenchError):
    """The command was asked for something it cannot mean (a missing argument, an unknown
    backend name, a count below one, an unconfirmed destructive action)."""

    exit_code = 2


class AssetError(DmbenchError):
    """An asset is unknown, missing, corrupt or cannot be obtained."""


class DatasetLayoutError(DmbenchError):
    """A dataset folder does not have a layout we can read."""


class ImageReadError(DmbenchError):
    """One input image cannot be used; the message names the file and the reason."""

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class FrameError(DmbenchError):
    """One frame cannot be prepped: its row in frames.csv says why, and the run goes on
    (a model that cannot load raises its own error, which stops the run)."""


class DeviceError(DmbenchError):
    """A requested accelerator is not usable (we never fall back silently)."""


class OutputError(DmbenchError):
    """An output (a run folder, a table, an image) cannot be written; nothing is half-written."""


class MissingDependencyError(DmbenchError, ImportError):
    """A backend needs an optional Python package that is not installed (names the extra)."""


class RunTableError(DmbenchError):
    """A run folder's table is malformed or names a path outside the run folder."""


class ResultsFileError(DmbenchError):
    """A results.json that this dmbench cannot read: not JSON, another schema_version, or
    against benchmark/specs/results.schema.json. Refused before anything is written."""


class MaskFailure(DmbenchError):
    """A mask cannot be made for this crop; the stage records ``reason`` and writes nothing.

    Here, not in the mask stage, because shared model helpers (dlib landmarks) raise it."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)
