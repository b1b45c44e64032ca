"""Background threads lower themselves only inside `lowering()` (the live
device), by one step however deep they nest, and what `build_in_background`
makes (onnxruntime's pool) starts lowered too."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest

from device.app.compose import build_detector
from device.core.config import Config
from device.core.priority import (
    BACKGROUND_NICE,
    background_thread,
    build_in_background,
    lower_this_thread,
    lowering,
    thread_nice,
)
from fakes import thread_nices

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")

BASE = os.getpriority(os.PRIO_PROCESS, os.getpid())
LOW = min(19, BASE + BACKGROUND_NICE)


def nice_in_thread(plain: bool = False) -> int | None:
    got: list[int | None] = []
    probe = lambda: got.append(thread_nice())  # noqa: E731
    t = threading.Thread(target=probe) if plain else background_thread(probe, name="probe")
    t.start()
    t.join()
    return got[0]


def test_nothing_is_lowered_outside_the_live_device() -> None:
    assert nice_in_thread() == BASE
    assert lower_this_thread() is None
    assert build_in_background(threading.get_ident) == threading.get_ident()  # a plain call
    assert thread_nice() == BASE


def test_background_threads_lower_themselves_once_however_deep() -> None:
    with lowering():
        assert nice_in_thread() == LOW
        nested: list[int | None] = []

        def outer() -> None:
            nested.append(nice_in_thread())  # started from a lowered thread: still one step

        t = background_thread(outer, name="outer")
        t.start()
        t.join()
        assert nested == [LOW]
        assert nice_in_thread(plain=True) == BASE  # a plain thread of the loop's keeps its priority
        deeper: list[int | None] = []
        t = background_thread(lambda: deeper.append(thread_nice()), name="clip", further=5)
        t.start()
        t.join()
        assert deeper == [min(19, LOW + 5)]
    assert thread_nice() == BASE  # the calling (main) thread never lowers itself
    assert nice_in_thread() == BASE


def test_what_a_background_build_makes_starts_lowered_and_its_error_comes_back() -> None:
    with lowering():
        assert build_in_background(thread_nice) == LOW
        assert build_in_background(lambda: nice_in_thread(plain=True)) == LOW  # made there: inherits
        with pytest.raises(ValueError, match="rotten"):
            build_in_background(lambda: (_ for _ in ()).throw(ValueError("rotten")))


@pytest.mark.real_model
def test_the_detectors_onnxruntime_pool_starts_lowered(model_path: Path) -> None:
    cfg = Config.model_validate({"detector": {"model": str(model_path), "threads": 2}})
    before = thread_nices()
    with lowering():
        det, faults = build_detector(cfg)
    try:
        assert det is not None and faults == ()
        made = {tid: n for tid, n in thread_nices().items() if tid not in before}
        assert made, "onnxruntime made no pool thread for 2 intra-op threads"
        assert set(made.values()) == {LOW}, made
        assert thread_nices()[threading.get_native_id()] == BASE
    finally:
        det.close()
