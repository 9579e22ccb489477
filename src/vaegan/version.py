"""The version of vaegan (one place; ``vaegan.__version__`` re-exports it)."""

__version__ = "0.1.0"
