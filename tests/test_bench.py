"""`rearguard bench`: matching maths, the side-by-side runner, the load, and
the JSON it prints. Correctness only: no speed is asserted here."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from device.cli import main as cli_main
from device.core.config import Config
from device.core.types import Detections
from device.tools import bench
from device.tools.bench import Agreement, Case, iou_matrix, match_count

KEYS = {"preprocess_ms", "inference_ms", "postprocess_ms", "total_ms", "overhead_ratio",
        "model", "input_size", "threads", "frames"}


def dets(boxes: list[list[float]], scores: list[float] | None = None, cls: list[int] | None = None) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.asarray(boxes, np.float32).reshape(n, 4),
        confidence=np.asarray(scores if scores is not None else [0.9] * n, np.float32),
        class_id=np.asarray(cls if cls is not None else [0] * n, np.int32),
    )


# --- agreement ----------------------------------------------------------------------


def test_iou_matrix() -> None:
    m = iou_matrix(np.array([[0, 0, 10, 10]], np.float32),
                   np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32))
    np.testing.assert_allclose(m, [[1.0, 1 / 3, 0.0]], atol=1e-6)


def test_match_count_one_to_one_by_score_and_class() -> None:
    ref = dets([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], [0.9, 0.8, 0.7])
    # One box overlapping both close reference boxes: it can match only one,
    # and the higher-scored reference box takes it.
    test = dets([[0, 0, 10, 10], [50, 50, 60, 70], [100, 100, 110, 110]])
    assert match_count(ref, test) == (2, 3, 3)  # the far pair overlaps 100/200: IoU 0.5 counts
    assert match_count(ref, test, iou=0.51) == (1, 3, 3)
    # Other classes are ignored.
    cars = dets([[0, 0, 10, 10]], cls=[2])
    assert match_count(ref, cars) == (0, 3, 0)
    assert match_count(Detections.empty(), test) == (0, 0, 3)


def test_agreement_totals() -> None:
    a = Agreement()
    assert a.recall is None and a.precision is None
    a.add((3, 4, 5))
    a.add((1, 1, 1))
    assert (a.recall, a.precision) == (4 / 5, 4 / 6)
    assert a.to_json()["matched"] == 4


# --- the runner on a tiny model --------------------------------------------------------


def tiny_model(path: Path, size: int = 64) -> Path:
    """Constant YOLOX-shaped output with one person box, whatever the input."""
    n = sum((size // s) ** 2 for s in (8, 16, 32))
    raw = np.zeros((1, n, 85), np.float32)
    raw[0, 0, :5] = (0.5, 0.5, np.log(2.0), np.log(4.0), 1.0)
    raw[0, 0, 5] = 0.9
    images = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, n, 85])
    nodes = [
        helper.make_node("ReduceMean", ["images"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["raw", "z"], ["output"]),
    ]
    inits = [numpy_helper.from_array(raw, "raw"), numpy_helper.from_array(np.array(0.0, np.float32), "zero")]
    model = helper.make_model(helper.make_graph(nodes, "tiny", [images], [output], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


def tiny_video(path: Path, frames: int = 12) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (96, 64))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(frames):
        writer.write(np.full((64, 96, 3), 10 * i, np.uint8))
    writer.release()
    return path


def test_run_side_by_side_records_every_measured_frame(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "t.onnx")
    cases = [Case("a", model, 64, 1, False), Case("b", model, 64, 1, True)]
    frames = list(bench.video_frames(tiny_video(tmp_path / "v.avi"), 100))
    assert len(frames) == 12
    done: list[int] = []
    results = bench.run(cases, frames, warmup=2, block=3, progress=done.append, images=frames[:2])
    assert done == list(range(1, 11))
    for r in results:
        assert len(r.total) == len(r.inference) == len(r.preprocess) == len(r.postprocess) == 10
        assert all(t > 0 for t in r.total) and r.overhead_ratio is not None
        assert r.windows and all(a < b for a, b in r.windows)
        assert r.detections == 10  # the one constant box per frame
    # Same model: the second case agrees fully with the first.
    assert (results[1].frames_agreement.recall, results[1].frames_agreement.precision) == (1.0, 1.0)
    assert results[1].frames_agreement.reference == 10
    assert results[1].images_agreement.reference == 2
    out = bench.BenchResult(results, "v.avi").to_json()
    assert out["reference"] == cases[0].label and len(out["cases"]) == 2
    assert KEYS <= set(out["cases"][1]) and out["cases"][1]["vs_reference"]["person_agreement_frames"]["recall"] == 1.0


def test_run_with_only_warmup_frames_is_an_error(tmp_path: Path) -> None:
    model = tiny_model(tmp_path / "t.onnx")
    with pytest.raises(bench.BenchError, match="no frames measured"):
        bench.run([Case("a", model, 64, 1, False)], [np.zeros((8, 8, 3), np.uint8)] * 2, warmup=5)


def test_video_frames_errors(tmp_path: Path) -> None:
    with pytest.raises(bench.BenchError, match="no such video"):
        list(bench.video_frames(tmp_path / "none.avi", 3))
    junk = tmp_path / "junk.avi"
    junk.write_bytes(b"not a video")
    with pytest.raises(bench.BenchError, match="junk.avi"):
        list(bench.video_frames(junk, 3))


def test_load_runs_ranging_and_alerts_until_stopped() -> None:
    import threading

    load = bench.Load(Config())
    done = threading.Event()
    with load:
        # Wait on a condition (ticks recorded), generously, never a fixed sleep.
        for _ in range(500):
            if load.updates >= 5:
                done.set()
                break
            threading.Event().wait(0.02)
        t = bench.time.monotonic_ns()
    assert done.is_set(), "the alert loop never ticked"
    seen = load.during([(0, t)])
    assert seen["ticks"] >= 5 and seen["alert_tick_late_ms"]["median"] is not None
    assert not load._thread.is_alive()


# --- the command ------------------------------------------------------------------------


def test_cli_bench_json_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model(tmp_path / "t.onnx")
    video = tiny_video(tmp_path / "v.avi")
    rc = cli_main(["bench", "--json", "--model", str(model), "--input-size", "64", "--threads", "1",
                   "--video", str(video), "--frames", "4", "--warmup", "1"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads(out)
    assert KEYS <= set(data)
    assert data["frames"] == 4 and data["input_size"] == 64 and data["threads"] == 1
    assert data["model"] == str(model)
    assert data["input_layout"] == "NCHW float32"
    for k in ("preprocess_ms", "inference_ms", "postprocess_ms", "total_ms"):
        assert set(data[k]) == {"median", "p90"} and data[k]["median"] > 0
    assert data["overhead_ratio"] > 0
    # The detect stage's camera-motion step is timed beside it on the same frames.
    assert len(data["ego"]["ego_ms"]) == 2 and data["ego"]["vs_inference"] is not None
    assert "bench: frame 4/4" in err  # progress on stderr, not in the JSON


def test_cli_bench_table_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tiny_model(tmp_path / "t.onnx")
    video = tiny_video(tmp_path / "v.avi")
    assert cli_main(["bench", "-q", "--model", f"{model},{model}", "--input-size", "64",
                     "--video", str(video), "--frames", "3", "--spin", "on,off"]) == 0
    out = capsys.readouterr().out
    assert out.count("@64") >= 4 and "person agreement" in out
    assert cli_main(["bench", "--model", str(model), "--input-size", "50", "--video", str(video)]) == 1
    assert "multiple of 32" in capsys.readouterr().err
    assert cli_main(["bench", "--model", str(tmp_path / "none.onnx"), "--video", str(video)]) == 1
    err = capsys.readouterr().err
    assert "not found" in err and "Traceback" not in err
    assert cli_main(["bench", "--model", str(model), "--input-size", "64",
                     "--video", str(tmp_path / "none.avi")]) == 1
    assert "no such video" in capsys.readouterr().err


@pytest.mark.real_model
def test_cli_bench_real_model_on_vtest_with_load(model_path: Path, shared: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rc = cli_main(["bench", "--json", "-q", "--model", str(model_path), "--frames", "6", "--load"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    data = json.loads(out)
    assert KEYS <= set(data) and data["frames"] == 6 and data["input_size"] == 416
    assert data["video"].endswith("vtest.avi")
    assert data["detections_per_frame"] > 2  # people in every vtest frame
    assert data["load"]["ticks"] > 0 and data["load"]["alert_tick_late_ms"]["median"] is not None
