"""The live run hands glibc's free pages back to the OS every TRIM_PERIOD_S
(device/app/heap_trim.py): without it a long run's private memory crept
~0.15 MB a minute between incident clips (scripts/soak.py, issue 23 item 7)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from device.app.heap_trim import THRESHOLD_ENV, TRIM_PERIOD_S, HeapTrimmer, fix_mmap_threshold, glibc_trim


def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_the_trimmer_trims_every_period_until_closed() -> None:
    calls: list[str] = []
    t = HeapTrimmer(lambda: calls.append(threading.current_thread().name), period_s=0.01)
    t.start()
    assert wait_for(lambda: len(calls) >= 3)
    t.close()
    n = len(calls)
    assert set(calls) == {"rearguard-heap-trim"}  # its own thread, never the caller's (the loop)
    assert not any(th.name == "rearguard-heap-trim" for th in threading.enumerate())  # close waited for it
    time.sleep(0.05)
    assert len(calls) == n == t.trims


def test_no_trim_before_the_first_period() -> None:
    calls: list[int] = []
    t = HeapTrimmer(lambda: calls.append(1), period_s=60.0)
    t.start()
    t.close()
    assert calls == []


def test_without_malloc_trim_no_thread_is_started() -> None:
    before = set(threading.enumerate())
    t = HeapTrimmer(None)
    t.start()
    assert set(threading.enumerate()) == before
    t.close()


def test_a_failing_trim_stops_trimming_and_nothing_else() -> None:
    calls: list[int] = []

    def broken() -> None:
        calls.append(1)
        raise OSError("no")

    t = HeapTrimmer(broken, period_s=0.01)
    t.start()
    assert wait_for(lambda: not any(th.name == "rearguard-heap-trim" for th in threading.enumerate()))
    t.close()
    assert calls == [1] and t.trims == 0


def test_a_period_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HeapTrimmer(lambda: None, period_s=0.0)
    assert TRIM_PERIOD_S > 0


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's malloc_trim")
def test_glibc_trim_calls_malloc_trim() -> None:
    trim = glibc_trim()
    assert trim is not None
    assert trim() in (0, 1)  # 1: memory was returned, 0: none to return


# In a process of its own (the setting is process-wide): glibc's mallinfo2
# counts the blocks that are mappings of their own (hblks). After a 4 MB
# block is freed glibc raises its threshold to 4 MB, so a frame-sized block
# comes from the heap, unless the threshold was pinned.
MAPPED_PROBE = """
import ctypes, sys
from device.app import heap_trim

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
if sys.argv[1] == "pinned":
    assert heap_trim.fix_mmap_threshold()
libc.free(libc.malloc(4 << 20))
before = libc.mallinfo2().hblks
frame = libc.malloc(640 * 360 * 3)
print(libc.mallinfo2().hblks - before)
libc.free(frame)
"""


def mapped_frames(how: str) -> int:
    env = {k: v for k, v in os.environ.items() if k != THRESHOLD_ENV}
    r = subprocess.run([sys.executable, "-c", MAPPED_PROBE, how], env=env, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    return int(r.stdout)


@pytest.mark.skipif(sys.platform != "linux" or platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_a_pinned_mmap_threshold_keeps_frame_sized_blocks_out_of_the_arenas() -> None:
    assert mapped_frames("glibc's default") == 0  # the raised threshold: the frame came from the heap
    assert mapped_frames("pinned") == 1  # a mapping of its own, handed back when freed


def test_the_environment_s_threshold_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THRESHOLD_ENV, "262144")
    assert fix_mmap_threshold() is False


# A live run (missing model: quick) with the period shortened and the trim
# counted; the count is printed after `rearguard run` returns.
HARNESS = """
import sys
import device.app.heap_trim as heap_trim
calls = []
heap_trim.TRIM_PERIOD_S = 0.05
heap_trim.glibc_trim = lambda: (lambda: calls.append(1))
pinned = []
heap_trim.fix_mmap_threshold = lambda: pinned.append(1) or True
from device.cli.main import main
code = main(sys.argv[1:])
print(f"trims {len(calls)} pinned {len(pinned)}", file=sys.stderr)
sys.exit(code)
"""


def test_a_live_run_pins_the_threshold_and_trims_the_heaps(tmp_path: Path) -> None:
    import cv2
    import numpy as np

    video = tmp_path / "small.avi"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 15, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(45):
        out.write(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    out.release()
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[detector]\nmodel = "{tmp_path / "missing.onnx"}"\n')
    env = dict(os.environ, GPIOZERO_PIN_FACTORY="mock", REARGUARD_CONFIG=str(cfg))
    env.pop("NOTIFY_SOCKET", None)
    r = subprocess.run([sys.executable, "-c", HARNESS, "run", "--source", str(video), "--duration", "2",
                        "--no-self-test", "-q"], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    trims = int(r.stderr.rsplit("trims ", 1)[1].split()[0])
    assert trims >= 3, r.stderr  # 2 s of loop at a 0.05 s period: dozens, unless the loop ended at once
    assert int(r.stderr.rsplit("pinned ", 1)[1].split()[0]) == 1, r.stderr
