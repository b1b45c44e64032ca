"""Shared fixtures: the materials in ../shared, the real model, mock pins.
(Shared test doubles are plain classes and functions in tests/fakes.py.)

Real-model tests skip when the weights cannot be found, except under
REARGUARD_REQUIRE_MODEL=1 (set by .ci/run), where a missing model fails
the run and the session fails unless real-model tests actually ran.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gpiozero.pins.mock import MockFactory

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
SHARED_MODEL = SHARED / "models" / "yolox_nano.onnx"
VTEST = SHARED / "footage" / "vtest.avi"
HCSR04_LOG = SHARED / "ultrasonic" / "hcsr04_log.csv"
COCO_DIR = SHARED / "images" / "coco"

REQUIRE_MODEL = os.environ.get("REARGUARD_REQUIRE_MODEL") == "1"


def _missing(what: str) -> None:
    if REQUIRE_MODEL:
        pytest.fail(f"{what} is missing and REARGUARD_REQUIRE_MODEL=1: real-model tests must run")
    pytest.skip(f"{what} not found")


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The real YOLOX-Nano weights: ../shared's copy, else the installed one."""
    if SHARED_MODEL.is_file():
        return SHARED_MODEL
    try:
        from device.model_store import store as models

        return models.resolve("yolox_nano")
    except Exception:  # noqa: BLE001 - whatever stops it resolving, there is no model here
        _missing("the YOLOX-Nano model")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        _missing(f"{SHARED}")
    return SHARED


@pytest.fixture
def mock_factory() -> Iterator[MockFactory]:
    """gpiozero's MockFactory for one test, closed after it (pins freed)."""
    f = MockFactory()
    yield f
    f.close()


THREAD_GRACE_S = 10.0


@pytest.fixture(autouse=True)
def no_thread_outlives_its_test() -> Iterator[None]:
    """A thread a test starts is stopped by the test's end. One left running
    (a worker polling a source that was closed under it) burns CPU for the
    rest of the session: a leaked looming thread in test_compose once took
    over half the suite's CPU time, and more the longer a loaded machine
    made the run. Torn down after the test's own fixtures. Threads that
    were told to stop get up to THREAD_GRACE_S to finish (a loaded CI
    machine can take seconds to end an inference or a request); a join
    returns the moment they do, so only a leaked thread waits it out."""
    before = set(threading.enumerate())
    yield
    started = [t for t in threading.enumerate() if t not in before]
    deadline = time.monotonic() + THREAD_GRACE_S
    for t in started:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = sorted(t.name for t in started if t.is_alive())
    if alive:
        pytest.fail(
            f"threads the test started are still running after it: {', '.join(alive)} (close what the test starts)",
            pytrace=False,
        )


_real_model_outcomes: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "real_model" in report.keywords and (report.when == "call" or report.skipped):
        _real_model_outcomes.append(report.outcome)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_MODEL and session.testscollected and "passed" not in _real_model_outcomes:
        print("\nREARGUARD_REQUIRE_MODEL=1 but no real-model test passed: failing the run")
        session.exitstatus = 1
