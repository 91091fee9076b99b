"""dmbench: a pytest-driven reproducibility benchmark for face-privacy claims."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dmbench")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.1.0+src"
