"""Rearguard: a rear-obstacle alert for people who run backwards."""

import os
from importlib.metadata import PackageNotFoundError, version

# One source for the version: pyproject.toml's, read from the installed
# package's metadata (a changed version takes effect at the next install).
try:
    __version__ = version("rearguard")
except PackageNotFoundError:  # a source tree on sys.path, never installed
    __version__ = "0+unknown"

# onnxruntime (1.2x+ on Linux) writes a telemetry device id and database to
# $XDG_CACHE_HOME or ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ as soon
# as it is imported: unasked-for writes to the SD card, into the service's
# state directory. It reads this switch at import, so it is set here, before
# any module of the package can import onnxruntime; the systemd unit sets it
# too. A user who wants the telemetry can still set it to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
