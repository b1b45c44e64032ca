"""onnxruntime must not write its telemetry files (a device id and a
database under ~/.cache/Microsoft/DeveloperTools/.onnxruntime) on the
device: on the Pi, HOME is the service's state directory on the SD card.

Each case imports in a fresh interpreter with a throwaway HOME, since
onnxruntime decides at import and writes at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def files_written(tmp_path: Path, code: str, **env: str) -> list[str]:
    home = tmp_path / "home"
    home.mkdir()
    # onnxruntime also keeps quiet where CI is set (as CI sets it), which
    # would make the control case below prove nothing: dropped too.
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ORT_DISABLE_TELEMETRY", "XDG_CACHE_HOME", "HOME", "CI")}
    clean.update(HOME=str(home), **env)
    subprocess.run([sys.executable, "-c", code], env=clean, cwd=REPO, check=True, timeout=120)
    return sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file())


def test_importing_the_detector_writes_nothing_to_home(tmp_path: Path) -> None:
    assert files_written(tmp_path, "import device.perception.detector") == []


def test_the_model_tools_write_nothing_to_home(tmp_path: Path) -> None:
    # the derive tools import onnxruntime without going through the detector
    assert files_written(tmp_path, "import device.model_store.derive; import onnxruntime.quantization") == []


def test_the_switch_is_what_stops_them(tmp_path: Path) -> None:
    # Without the switch this onnxruntime does write: the tests above would
    # prove nothing otherwise. (If a later onnxruntime stops writing, this
    # fails: then the switch in device/__init__.py can go.)
    written = files_written(tmp_path, "import device, onnxruntime", ORT_DISABLE_TELEMETRY="0")
    if not written and sys.platform != "linux":
        pytest.skip("onnxruntime writes its device id on Linux only")
    assert any("onnxruntime" in f for f in written), written
