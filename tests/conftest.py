"""Shared fixtures: the materials in ../shared, the real model, mock pins.
(Shared test doubles are plain classes and functions in tests/fakes.py.)

Real-model tests skip when the weights cannot be found, except under
REARGUARD_REQUIRE_MODEL=1 (set by .ci/run), where a missing model fails
the run and the session fails unless real-model tests actually ran.
"""

from __future__ import annotations

import os
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


_real_model_outcomes: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "real_model" in report.keywords and (report.when == "call" or report.skipped):
        _real_model_outcomes.append(report.outcome)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if REQUIRE_MODEL and session.testscollected and "passed" not in _real_model_outcomes:
        print("\nREARGUARD_REQUIRE_MODEL=1 but no real-model test passed: failing the run")
        session.exitstatus = 1
