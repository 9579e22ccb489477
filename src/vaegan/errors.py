"""Exceptions raised by vaegan. Each message names the problem and how to fix it."""


class VaeganError(Exception):
    """Base class of vaegan's own errors."""


class ConfigError(VaeganError, ValueError):
    """A configuration value is invalid (names the field and the allowed values)."""


class CheckpointError(VaeganError, OSError):
    """A model folder or repo cannot be loaded safely (missing, corrupt or pickle-only weights)."""


class WeightsMismatchError(CheckpointError):
    """The weights on disk do not match the model built from config.json."""


class DiskFullError(VaeganError, OSError):
    """The disk filled up while vaegan wrote ``path``: nothing half-written is left there, earlier files are kept."""

    def __init__(self, message: str, path: object = None) -> None:
        super().__init__(message)
        self.path = path
