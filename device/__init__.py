"""Rearguard: a rear-obstacle alert for people who run backwards."""

import os

__version__ = "0.1.0"

# onnxruntime (1.2x+ on Linux) writes a telemetry device id and database to
# $XDG_CACHE_HOME or ~/.cache/Microsoft/DeveloperTools/.onnxruntime/ as soon
# as it is imported: unasked-for writes to the SD card, into the service's
# state directory. It reads this switch at import, so it is set here, before
# any module of the package can import onnxruntime; the systemd unit sets it
# too. A user who wants the telemetry can still set it to 0.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
