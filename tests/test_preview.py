"""The preview page: overlays, the server's routes and limits, the loop's
view, and the page itself in headless Chromium on a replayed recording.

The browser test skips when Chromium is not installed, except under
REARGUARD_REQUIRE_BROWSER=1 (set by .ci/run, which installs it), where a
missing browser fails the run.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from gpiozero.pins.mock import MockFactory, MockPWMPin

from device.camera_path import DetectStage
from device.cli.main import main
from device.core.camera import CameraTrack
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import Config
from device.core.types import AlertLevel, Frame, Range
from device.output.alerts import Alerter, effective_level
from device.perception.geometry import CameraGeometry
from device.pipeline import Pipeline
from device.sensing.ultrasonic import RecordedRanges
from device.view.annotate import LEVEL_BGR, TRACK_BGR, Overlay, column_for_bearing, draw
from device.view.preview import PreviewError, PreviewServer, RateMeter, parse_address
from fakes import FixedDetector, ListFrames, dets, inline_camera, ns

CFG = Config()
SENSOR = CFG.ranging.sensors[0]
W, H = 320, 240
BOX = (140.0, 60.0, 180.0, 200.0)  # a person straight behind, ~4 m away
REQUIRE_BROWSER = os.environ.get("REARGUARD_REQUIRE_BROWSER") == "1"


def near(img: np.ndarray, bgr: tuple[int, int, int], tol: int = 40) -> np.ndarray:
    """Mask of pixels within tol of a colour on every channel (JPEG and
    browser scaling move colours a little)."""
    return np.all(np.abs(img.astype(np.int16) - np.array(bgr, np.int16)) <= tol, axis=2)


# ------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("8080", ("127.0.0.1", 8080)),
        ("0.0.0.0:8080", ("0.0.0.0", 8080)),
        ("192.168.1.20:9000", ("192.168.1.20", 9000)),
        ("localhost:0", ("localhost", 0)),
        ("[::1]:8080", ("::1", 8080)),
        ("[::]:80", ("::", 80)),
    ],
)
def test_address_parsing_defaults_to_localhost(spec: str, expected: tuple[str, int]) -> None:
    assert parse_address(spec) == expected


@pytest.mark.parametrize("spec", ["", "http", "70000", ":8080", "0.0.0.0:", "::1:8080", "[::1]8080", "-1"])
def test_bad_address_is_a_clear_error(spec: str) -> None:
    with pytest.raises(PreviewError, match="preview address"):
        parse_address(spec)


def test_cli_rejects_a_bad_preview_address(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "--mock-pins", "--preview", ":8080"])
    assert exit_info.value.code == 2
    assert "0.0.0.0:PORT" in capsys.readouterr().err


def test_cli_reports_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        # The port is checked before the recording is even opened.
        code = main(["replay", str(tmp_path / "none"), "--preview", str(port)])
    assert code == 1
    err = capsys.readouterr().err
    assert f"cannot serve the preview on 127.0.0.1:{port}" in err


# ------------------------------------------------------------ drawing


def test_column_for_bearing_inverts_the_detector_geometry() -> None:
    geo = CameraGeometry(640, 360, 66.0, 1.1, 0.0)
    for x in (0.0, 100.0, 320.0, 517.5, 639.0):
        assert column_for_bearing(geo.bearing_deg(x), 640, 66.0) == pytest.approx(x, abs=1e-6)
    assert column_for_bearing(20.0, 640, 66.0) < 320 < column_for_bearing(-20.0, 640, 66.0)


def overlay(**kw: object) -> Overlay:
    track = CameraTrack(track_id=7, label="person", box=BOX, confidence=0.9, hits=3, distance_m=4.2,
                        bearing_deg=0.0, ttc_s=2.0)
    base: dict[str, object] = dict(
        level=AlertLevel.WARN, threat=None, tracks=(track,), sensors=(SENSOR,),
        ranges={SENSOR.name: Range(0, SENSOR.name, 1.5)}, hfov_deg=66.0, alerts=CFG.alerts,
        camera_fps=10.0, loop_hz=50.0,
    )
    base.update(kw)
    return Overlay(**base)  # type: ignore[arg-type]


def test_draw_marks_box_beam_and_level_and_leaves_the_frame_alone() -> None:
    image = np.full((H, W, 3), 90, np.uint8)
    before = image.copy()
    out = draw(image, overlay())
    assert np.array_equal(image, before), "the loop's frame must not be drawn on"
    # The box's left edge, in the track colour, down its whole height.
    x0, y0, x1, y1 = (int(v) for v in BOX)
    edge = near(out[y0 + 5 : y1 - 5, x0 - 1 : x0 + 2], TRACK_BGR, 5)
    assert edge.any(axis=1).all()
    # The level banner across the top, in WARN's colour.
    assert near(out[2:6, :], LEVEL_BGR[AlertLevel.WARN], 5).mean() > 0.5
    # The centre beam (15 deg wide, straight back) tints the columns around
    # the middle just below the horizon, and nothing far to the side there.
    half = (column_for_bearing(-7.5, W, 66.0) - W / 2)
    row = out[H // 2 + 20]
    assert not np.array_equal(row[W // 2 - int(half * 0.2)], before[0, 0])
    assert np.array_equal(row[10], before[0, 0]) and np.array_equal(row[W - 10], before[0, 0])


def test_beam_is_drawn_where_the_sensor_points() -> None:
    """A sensor aimed 20 deg to the runner's left appears right of centre
    (the camera looks backwards), between its beam edges' columns."""
    left = SENSOR.model_copy(update={"name": "left", "bearing_deg": -20.0, "beam_deg": 10.0})
    image = np.full((H, W, 3), 90, np.uint8)
    out = draw(image, overlay(tracks=(), sensors=(left,), ranges={}))
    xa, xb = column_for_bearing(-15.0, W, 66.0), column_for_bearing(-25.0, W, 66.0)
    assert W / 2 < xa < xb
    # The wedge runs from the bottom centre (the device) to the beam's edge
    # columns on the horizon (mid-height); check a row a quarter of the way up.
    y = H - 1 - (H - 1 - H / 2) / 4
    xa_y, xb_y = (W / 2 + (x - W / 2) / 4 for x in (xa, xb))
    changed = np.flatnonzero(np.any(out[round(y)] != 90, axis=1))
    assert changed.size > 0
    assert changed.min() >= xa_y - 2 and changed.max() <= xb_y + 2
    assert changed.min() <= xa_y + 2 and changed.max() >= xb_y - 2


def test_rate_meter() -> None:
    m = RateMeter()
    assert m.update(0, 0) is None
    assert m.update(ns(0.5), 5) is None  # less than a second of evidence
    assert m.update(ns(1.0), 10) == pytest.approx(10.0)
    assert m.update(ns(3.0), 110) == pytest.approx(50.0)


# ------------------------------------------------------------ the loop's view


@pytest.fixture
def pipeline() -> Pipeline:
    """A real pipeline (mock pins, the detector replaced by one that always
    sees one person) after three passes: three frames, two sensor readings."""
    clock = ReplayClock(0)
    images = [np.full((H, W, 3), 60 + i, np.uint8) for i in range(3)]
    frames = [Frame(i, ns(0.1 * i), img) for i, img in enumerate(images)]
    cam = inline_camera(ListFrames(frames, W, H), DetectStage(FixedDetector(dets(BOX)), CFG.camera), clock)
    ranges = RecordedRanges([Range(ns(0.05), SENSOR.name, 1.4), Range(ns(0.15), SENSOR.name, 1.3)])
    alerter = Alerter(CFG.outputs, pin_factory=MockFactory(pin_class=MockPWMPin))
    p = Pipeline(CFG, clock, ranges, alerter, cam)
    for i in range(3):
        clock.set(frames[i].t_ns)
        p.step()
    p.test_frames = frames  # type: ignore[attr-defined]
    yield p
    alerter.close()


def test_view_holds_references_to_the_newest_state(pipeline: Pipeline) -> None:
    v = pipeline.view()
    assert v.frame is pipeline.test_frames[-1]  # type: ignore[attr-defined]  # the same object: no copy
    assert v.camera is not None and v.camera.seq == v.frame.seq
    assert [t.label for t in v.camera.tracks] == ["person"]
    assert v.ranges[SENSOR.name].metres == 1.3  # the newest reading per sensor
    assert v.threat is pipeline.threat
    assert v.steps == 3 and v.frames == 3


# ------------------------------------------------------------ the server


class FakeWallClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def get(url: str) -> tuple[int, bytes, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read(), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as err:
        return err.code, err.read(), err.headers.get("Content-Type", "")


def test_server_routes_and_content(pipeline: Pipeline) -> None:
    with PreviewServer(port=0) as server:
        assert server.host == "127.0.0.1"  # localhost unless asked otherwise
        assert get(server.url + "frame.jpg")[0] == 503  # nothing to show yet
        assert json.loads(get(server.url + "status.json")[1])["ready"] is False
        server.show(pipeline)
        status, page, ctype = get(server.url)
        assert status == 200 and ctype.startswith("text/html")
        assert b'src="preview.js"' in page and b"read-only" in page
        assert get(server.url + "preview.js")[0] == 200
        assert get(server.url + "preview.css")[0] == 200
        assert get(server.url + "../etc/passwd")[0] == 404
        status, body, ctype = get(server.url + "frame.jpg")
        assert status == 200 and ctype == "image/jpeg"
        img = cv2.imdecode(np.frombuffer(body, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (H, W, 3)
        assert near(img, TRACK_BGR).sum() > 100  # the person's box
        s = json.loads(get(server.url + "status.json")[1])
        assert s["ready"] is True and s["frame"]["seq"] == 2 and s["steps"] == 3 and s["frames"] == 3
        assert [t["label"] for t in s["tracks"]] == ["person"] and s["tracks"][0]["confirmed"]
        assert s["sensors"] == [{"name": SENSOR.name, "bearing_deg": 0.0, "beam_deg": 15.0,
                                 "metres": 1.3, "fault": None, "reading": "echo"}]
        assert pipeline.threat is not None
        assert s["level"] == effective_level(pipeline.threat.level, pipeline.threat.faults).name


def test_server_is_read_only(pipeline: Pipeline) -> None:
    with PreviewServer(port=0) as server:
        server.show(pipeline)
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            req = urllib.request.Request(server.url + "status.json", data=b"{}", method=method)
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(req, timeout=10)
            assert err.value.code == 405


def test_encoding_is_rate_bounded_and_only_on_demand(pipeline: Pipeline) -> None:
    clock = FakeWallClock()
    with PreviewServer(port=0, max_fps=5.0, clock=clock) as server:
        server.show(pipeline)
        for _ in range(3):
            pipeline.step()
        get(server.url + "status.json")
        assert server.encoded == 0  # nobody asked for a frame: nothing drawn or encoded
        first = get(server.url + "frame.jpg")[1]
        clock.t += 0.1  # within one period of 1/5 s: viewers share the last encoding
        assert get(server.url + "frame.jpg")[1] == first
        assert server.encoded == 1 and server.served == 2
        clock.t += 0.15  # a period after the first: the newest state is drawn again
        get(server.url + "frame.jpg")
        assert server.encoded == 2


def test_a_client_gets_each_encoding_once(pipeline: Pipeline) -> None:
    """A client asking again before the next encoding is due waits for it
    rather than being sent the same frame again, on one keep-alive
    connection or on new ones: no client gets more than max_fps frames a
    second, however greedy."""
    with PreviewServer(port=0, max_fps=20.0) as server:
        server.show(pipeline)
        conn = http.client.HTTPConnection(server.host, server.port, timeout=10)
        try:
            for n in (1, 2, 3):
                conn.request("GET", "/frame.jpg")
                r = conn.getresponse()
                assert r.status == 200 and r.read()[:2] == b"\xff\xd8"  # a JPEG
                assert server.encoded == n
        finally:
            conn.close()
        for n in (4, 5):
            assert get(server.url + "frame.jpg")[0] == 200
            assert server.encoded == n


def test_busy_port_is_a_clear_error() -> None:
    with PreviewServer(port=0) as server:
        with pytest.raises(PreviewError, match=f"cannot serve the preview on 127.0.0.1:{server.port}"):
            PreviewServer(port=server.port)


# ------------------------------------------------------------ the page in a browser


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    if REQUIRE_BROWSER:
        pytest.fail("Chromium is missing and REARGUARD_REQUIRE_BROWSER=1: .ci/run should have installed it")
    pytest.skip("Chromium is not installed (Debian: apt-get install chromium)")
    raise AssertionError("unreachable")


def screenshot(browser: str, url: str, out: Path, profile: Path, limit_s: float = 60, size: str = "800,800",
               budget_ms: int = 3000) -> None:
    """Chromium's own --screenshot. Headless Chromium under a virtual time
    budget now and then hangs, before the capture or after writing it
    (a known Chromium behaviour): each try gets a wall-clock limit, a
    written screenshot counts even if Chromium had to be killed after it,
    and one more try is made if none was written."""
    errors = []
    for attempt in range(2):
        out.unlink(missing_ok=True)
        cmd = [
            browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}-{attempt}", f"--screenshot={out}",
            f"--window-size={size}",
            # Virtual time: the page's timers run this long, waiting for each fetch.
            f"--virtual-time-budget={budget_ms}", url,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            _, err = proc.communicate(timeout=limit_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # this Chromium and its helpers only
            _, err = proc.communicate()
            err = f"(killed after {limit_s} s) {err}"
        if out.is_file() and cv2.imread(str(out)) is not None:
            return
        errors.append(f"try {attempt + 1}: exit {proc.returncode}: {err[-1500:]}")
    pytest.fail("chromium wrote no screenshot:\n" + "\n".join(errors))


@pytest.mark.real_model
def test_page_shows_the_annotated_replay_in_chromium(tmp_path: Path, shared: Path, model_path: Path) -> None:
    """vtest.avi with the real HC-SR04 log from the start: the replay is held
    at the first pass after 1 s where people are tracked and the sensor's
    ~1 m echo has raised WARN; Chromium loads the page then, and its screenshot must
    show the frame with the boxes, the WARN banner and the beam's reading."""
    from device.app.replay import replay
    from device.record.format import from_video

    browser = chromium()
    rec = from_video(shared / "footage" / "vtest.avi", tmp_path / "rec",
                     ranges_csv=shared / "ultrasonic" / "hcsr04_log.csv", max_frames=30, hfov_deg=60.0)
    cfg = Config()
    cfg = cfg.model_copy(update={"detector": cfg.detector.model_copy(update={"model": str(model_path)})})

    ready, release = threading.Event(), threading.Event()
    failure: list[BaseException] = []

    def hold(p: Pipeline) -> None:
        if ready.is_set():
            return
        server.status()  # what the page's polling does: samples the rates
        v = p.view()
        echo = v.ranges.get("centre")
        if (v.camera is not None and any(t.hits >= 2 for t in v.camera.tracks)
                and echo is not None and echo.metres is not None
                and v.threat is not None and v.threat.level == AlertLevel.WARN
                and v.threat.t_ns >= NS_PER_S * 1.05):  # rates need a second of evidence
            ready.set()
            release.wait(180)

    with PreviewServer(port=0) as server:
        def run() -> None:
            try:
                replay(rec, cfg, on_start=server.show, on_step=hold)
            except BaseException as err:  # surfaced in the test's thread below
                failure.append(err)
            finally:
                ready.set()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            assert ready.wait(180), "the replay never reached a tracked frame with a WARN echo"
            assert not failure, failure
            assert worker.is_alive(), "the replay ended without reaching a tracked frame with a WARN echo"
            shot = tmp_path / "preview.png"
            screenshot(browser, server.url, shot, tmp_path / "profile")
            status = json.loads(get(server.url + "status.json")[1])
        finally:
            release.set()
            worker.join(120)
    assert not failure, failure
    assert status["level"] == "WARN" and status["sensors"][0]["metres"] == pytest.approx(1.0, abs=0.05)
    assert any(t["confirmed"] for t in status["tracks"])
    # Rates in recording time: 10 frames and 50 loop passes per second.
    assert status["camera_fps"] == pytest.approx(10.0, abs=1.0)
    assert status["loop_hz"] == pytest.approx(50.0, abs=1.0)
    assert server.served >= 1, "the page never fetched a frame"

    img = cv2.imread(str(shot))
    assert img is not None and img.shape[:2] == (800, 800)
    # The frame is there, overlays and all: track boxes in cyan, the WARN
    # banner and the beam's reading tick in WARN's orange, and the footage
    # itself (many distinct colours, not a blank page).
    assert near(img, TRACK_BGR).sum() > 300, "no track boxes in the screenshot"
    assert near(img, LEVEL_BGR[AlertLevel.WARN], 30).sum() > 5000, "no WARN banner in the screenshot"
    assert len(np.unique(img.reshape(-1, 3) // 16, axis=0)) > 200, "the screenshot shows no footage"
    keep = os.environ.get("REARGUARD_PREVIEW_SCREENSHOT")
    if keep:  # docs/preview.png is made this way
        shutil.copyfile(shot, keep)


def test_the_preview_shows_the_decisions_distances() -> None:
    """One camera geometry: the distance on the page is the distance the
    decision used (configured mount height and pitch, the ground plane only
    once trusted), never the camera stage's first guess."""
    cam_cfg = CFG.camera.model_copy(update={"width": W, "height": H, "pitch_deg": 6.0})
    cfg = CFG.model_copy(update={"camera": cam_cfg})
    clock = ReplayClock(0)
    frames = [Frame(i, ns(0.1 * i), np.full((H, W, 3), 60 + i, np.uint8)) for i in range(16)]
    pipe = Pipeline(cfg, clock, RecordedRanges([]), Alerter(cfg.outputs, pin_factory=MockFactory(pin_class=MockPWMPin)),
                    inline_camera(ListFrames(frames, W, H), DetectStage(FixedDetector(dets(BOX)), cfg.camera), clock))
    server = PreviewServer(port=0)
    try:
        server.show(pipe)
        seen, camera_threats = set(), 0
        for f in frames:
            clock.set(f.t_ns)
            threat = pipe.step()
            decided = pipe.estimator.camera
            assert decided is not None and decided.frame is f
            [track] = decided.tracks
            s = server.status()
            assert s["frame"]["seq"] == f.seq
            assert s["tracks"][0]["distance_m"] == round(track.distance_m, 3)
            if threat.source == "camera":
                assert threat.distance_m == track.distance_m  # the terminal's number too
                assert s["threat"]["distance_m"] == round(track.distance_m, 3)
                camera_threats += 1
            seen.add(round(track.distance_m, 3))
        # The box-height distance first, the fused one once the ground plane
        # is trusted; the old hidden defaults (pitch 0) give neither.
        assert len(seen) == 2 and pipe.camera.runner.main.distances.ground_trusted and camera_threats > 5
        hidden = CameraGeometry(W, H, cfg.camera.hfov_deg, 1.1, 0.0).distance_m(BOX, "person")
        assert all(abs(d - hidden) > 0.05 for d in seen)
    finally:
        server.close()
        pipe.alerter.close()  # type: ignore[attr-defined]


def test_status_json_carries_the_devices_pace(pipeline: Pipeline) -> None:
    with PreviewServer(port=0) as server:
        server.show(pipeline, extra=lambda: {"pace": {"rate_hz": 7.5, "text": "7.5 det/s, result 0.14 s old"}})
        s = json.loads(get(server.url + "status.json")[1])
        assert s["pace"]["rate_hz"] == 7.5 and s["level"]
        assert b'id="pace"' in get(server.url)[1] and b"s.pace.text" in get(server.url + "preview.js")[1]


def test_slow_clients_cannot_lock_a_real_viewer_out(pipeline: Pipeline) -> None:
    """16 connections that trickle a request a byte at a time (each byte
    within the idle timeout) held every slot indefinitely (issue 23): a
    viewer wanting a slot now takes that of the one waiting longest for
    its request."""
    from device.view.preview import MAX_CONNECTIONS

    with PreviewServer(port=0) as server:
        server.show(pipeline)
        slow = []
        for _ in range(MAX_CONNECTIONS):
            s = socket.create_connection((server.host, server.port), timeout=10)
            s.sendall(b"GET /status.json HTTP/1.1\r\n")  # the headers never end
            slow.append(s)
        time.sleep(0.5)  # every slot taken
        try:
            for _ in range(3):
                status, body, _ = get(server.url + "status.json")
                assert status == 200 and json.loads(body)["ready"] is True
        finally:
            for s in slow:
                s.close()
