"""The device's own pace (issue 11 item 6): detections per second and result
age on an exact clock, the degraded and too-slow judgements, the board
choice, and the Pi's health flags read from fake sysfs files."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from device.app.pace_watch import PaceWatch, choose_board
from device.camera_path import CameraPath
from device.camera_path.watch import FrameWatch
from device.core.camera import CameraResult
from device.core.clock import NS_PER_S, ReplayClock
from device.core.config import BOARD_NAMES, ConfigError, from_dict
from device.core.faults import Kind, Part
from device.perception import boards
from device.perception.pace import Pace, PaceLimits, PaceMeter, judge
from device.sensing.pi_health import Health, HealthMonitor, HealthReader, parse_throttled, read_model

MS = 1_000_000


def feed_results(meter: PaceMeter, *, period_ms: int, latency_ms: int, until_ms: int, detect_ms: float = 100.0) -> None:
    for t in range(0, until_ms + 1, period_ms):
        meter.note(frame_t_ns=t * MS, now_ns=(t + latency_ms) * MS, detect_ms=detect_ms)


def test_meter_counts_results_per_second_and_their_age_on_an_exact_clock() -> None:
    meter = PaceMeter(window_s=2.0, now_ns=0)
    feed_results(meter, period_ms=125, latency_ms=140, until_ms=4000)  # 8 a second, 140 ms late
    p = meter.reading(4140 * MS)
    assert p.rate_hz == 8.0  # 16 results arrived in (2.14 s, 4.14 s]
    assert p.latency_s == 0.14
    assert p.age_s == 0.14
    assert p.detect_ms == 100.0
    later = meter.reading(4640 * MS)  # nothing new for 0.5 s
    assert later.age_s == 0.64 and later.rate_hz == 6.0


def test_meter_gives_no_rate_until_a_full_window_has_passed() -> None:
    meter = PaceMeter(window_s=3.0, now_ns=0)
    feed_results(meter, period_ms=100, latency_ms=50, until_ms=2000)
    assert meter.reading(2050 * MS).rate_hz is None  # 2 s of a 3 s window: too early to call it slow
    assert meter.reading(3000 * MS).rate_hz == 7.0  # 21 results (0 to 2 s) in 3 s
    meter.restart(3000 * MS)  # a new feed
    p = meter.reading(3000 * MS)
    assert (p.rate_hz, p.latency_s, p.age_s, p.results) == (None, None, None, 0)


LIMITS = PaceLimits(degraded_factor=1.5, min_rate_hz=2.0, max_latency_s=0.5)


def pace(rate: float | None = 7.0, latency: float | None = 0.15, detect: float | None = 140.0) -> Pace:
    return Pace(rate_hz=rate, latency_s=latency, age_s=latency, detect_ms=detect, results=10)


def test_degraded_only_past_the_factor_and_only_with_a_board() -> None:
    assert judge(pace(detect=232.0), 155.1, LIMITS).degraded is None  # 1.496x: within
    v = judge(pace(detect=233.0), 155.1, LIMITS)
    assert v.degraded is not None and "233 ms" in v.degraded and "1.5x" in v.degraded
    assert v.too_slow is None  # slower than it should be, but still useful
    assert judge(pace(detect=900.0), None, LIMITS).degraded is None  # no board (a laptop): no check


def test_too_slow_below_the_rate_floor_or_when_results_arrive_stale() -> None:
    assert judge(pace(rate=2.0), None, LIMITS).too_slow is None
    low = judge(pace(rate=1.9), None, LIMITS).too_slow
    assert low is not None and "1.9 detections/s" in low and "pace.min_rate_hz" in low
    # a result stands camera.max_age_s (0.5) plus the detector's interval (at most 0.5 more)
    assert judge(pace(rate=4.0, latency=0.74), None, LIMITS).too_slow is None  # 0.5 + 0.25
    stale = judge(pace(rate=4.0, latency=0.76), None, LIMITS).too_slow
    assert stale is not None and "0.76 s old" in stale and "0.75 s" in stale and "camera.max_age_s" in stale
    assert judge(pace(rate=None, latency=0.99), None, LIMITS).too_slow is None  # rate not known yet: 0.5 + 0.5
    assert judge(pace(rate=None, latency=1.01), None, LIMITS).too_slow is not None
    assert judge(pace(rate=None, latency=None), None, LIMITS).too_slow is None  # nothing measured yet


def test_pace_config_is_strict() -> None:
    cfg = from_dict({"pace": {"board": "pi4", "degraded_factor": 2, "min_rate_hz": 3.5}})
    assert (cfg.pace.board, cfg.pace.degraded_factor, cfg.pace.min_rate_hz) == ("pi4", 2.0, 3.5)
    for bad, key in ([{"board": "pi3"}, "pace.board"], [{"degraded_factor": 1.0}, "pace.degraded_factor"],
                     [{"min_rate_hz": "2"}, "pace.min_rate_hz"], [{"speed": 1}, "pace.speed"]):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            from_dict({"pace": bad})


def test_the_config_knows_the_boards_the_profiles_file_has() -> None:
    assert tuple(boards.load().boards) == BOARD_NAMES


def test_board_from_device_tree_or_config_and_none_on_a_laptop() -> None:
    cfg = from_dict({})
    pi4 = choose_board(cfg, "Raspberry Pi 4 Model B Rev 1.4")
    assert pi4.name == "pi4" and pi4.expected_ms == pytest.approx(260 * 1.1, abs=0.1)
    laptop = choose_board(cfg, None)
    assert laptop.name is None and laptop.expected_ms is None and "no degraded check" in laptop.why
    override = choose_board(from_dict({"pace": {"board": "zero2w"}}), "Raspberry Pi 4 Model B Rev 1.4")
    assert override.name == "zero2w" and override.expected_ms == pytest.approx(1100 * 1.1, abs=0.1)
    assert choose_board(from_dict({"pace": {"board": "none"}}), "Raspberry Pi 5 Model B").name is None
    odd = choose_board(from_dict({"detector": {"input_size": 640}}), "Raspberry Pi 5 Model B Rev 1.0")
    assert odd.name == "pi5" and odd.expected_ms is None and "no figure" in odd.why


class ListRunner:
    """A camera path's runner that hands over prepared results at given clock times."""

    def lens_fault(self) -> str | None:
        return None

    error = None
    ended = False
    unavailable = None
    generation = 1

    def __init__(self, clock: ReplayClock, results: dict[int, CameraResult]) -> None:
        self.clock, self.results, self.closed = clock, results, False
        self.watch = FrameWatch()

    def start(self) -> None:
        pass

    def poll(self) -> dict[str, CameraResult]:
        result = self.results.pop(self.clock.now_ns(), None)
        return {"camera": result} if result is not None else {}

    def side_errors(self) -> list:
        return []

    def close(self) -> None:
        self.closed = True


def test_a_slow_camera_path_becomes_a_typed_fault_and_clears(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    model = tmp_path / "model"
    model.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    clock = ReplayClock(0)
    watch = PaceWatch(from_dict({"pace": {"window_s": 2.0}}), clock, model_path=model,
                      health=HealthMonitor(HealthReader(tmp_path / "none", tmp_path / "none", run=None), 5))
    assert watch.board.name == "pi4" and watch.on_pi
    # one result every 0.6 s (1.7 a second), each 0.3 s late, 500 ms a detection
    results = {t + 300 * MS: CameraResult(t_ns=t, seq=i, tracks=(), detect_ms=500.0)
               for i, t in enumerate(range(0, 10 * NS_PER_S, 600 * MS))}
    runner = ListRunner(clock, results)
    feed = CameraPath(runner, clock, 1.0, meter=watch)  # the camera path notes each result the loop takes
    assert not watch.active
    feed.start()
    assert watch.active
    caplog.set_level(logging.INFO)
    for t in range(0, 6 * NS_PER_S, 20 * MS):  # the loop at 50 passes a second
        clock.set(t)
        feed.poll()
        watch.observe(t)
    (fault,) = watch.faults()
    assert (fault.part, fault.kind) == (Part.CAMERA, Kind.TOO_SLOW)
    assert str(fault).startswith("camera: too slow to help: 1.5 detections/s")
    assert watch.verdict.degraded is not None and "500 ms" in watch.verdict.degraded  # 500 > 1.5 x 286
    assert "degraded:" in watch.text() and "pi4" in watch.text()
    assert watch.as_json()["too_slow"] == watch.verdict.too_slow
    assert "pace degraded" in caplog.text and "too slow to help" in caplog.text
    # the detector recovers: 10 a second, 120 ms each
    base = 6 * NS_PER_S
    runner.results = {base + k * 100 * MS: CameraResult(t_ns=base + k * 100 * MS - 130 * MS, seq=100 + k,
                                                            tracks=(), detect_ms=120.0) for k in range(60)}
    for t in range(base, base + 5 * NS_PER_S, 20 * MS):
        clock.set(t)
        feed.poll()
        watch.observe(t)
    assert watch.faults() == () and watch.verdict.degraded is None
    assert watch.pace is not None and watch.pace.rate_hz == 10.0 and watch.pace.latency_s == 0.13
    feed.close()
    assert runner.closed


def test_no_camera_no_pace_and_no_health_on_a_laptop(tmp_path: Path) -> None:
    watch = PaceWatch(from_dict({}), ReplayClock(0), model_path=tmp_path / "absent")
    assert not watch.active  # no camera path metered it
    assert watch.health is None and not watch.on_pi and watch.board.name is None
    watch.observe(10 * NS_PER_S)
    assert watch.faults() == () and watch.text() == "no camera pace"


# ---------------------------------------------------------------- the Pi's health


def sysfs(tmp_path: Path, throttled: str | None, temp: str | None) -> HealthReader:
    t, c = tmp_path / "get_throttled", tmp_path / "temp"
    if throttled is not None:
        t.write_text(throttled)
    if temp is not None:
        c.write_text(temp)
    return HealthReader(t, c, run=None)


@pytest.mark.parametrize("bit,name", [(0, "under-voltage"), (1, "frequency capped"), (2, "throttled"),
                                      (3, "soft temperature limit")])
def test_each_throttled_bit_now_and_since_boot(tmp_path: Path, bit: int, name: str) -> None:
    now = sysfs(tmp_path, f"{1 << bit:x}\n", "48312\n").read()
    assert now.now == (name,) and now.occurred == ()
    assert now.under_voltage is (bit == 0)
    past = sysfs(tmp_path, f"{1 << (bit + 16):x}\n", None).read()
    assert past.now == () and past.occurred == (name,) and not past.under_voltage
    assert "since boot: " + name in past.text()


def test_health_reads_sysfs_the_temperature_and_the_usual_brown_out_pattern(tmp_path: Path) -> None:
    h = sysfs(tmp_path, "50005\n", "61234\n").read()  # under-voltage and throttled now, and since boot
    assert h.throttled == 0x50005 and h.temp_c == 61.2
    assert h.now == ("under-voltage", "throttled") and h.occurred == ("under-voltage", "throttled")
    assert h.under_voltage
    assert h.text() == "cpu 61 C, UNDER-VOLTAGE now, throttled now"
    assert h.as_json()["throttled"] == "0x50005"
    assert sysfs(tmp_path, "0\n", "40000").read().text() == "cpu 40 C, power ok"


def test_health_falls_back_to_vcgencmd_and_says_nothing_when_neither_works(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def run(args: list[str]) -> str:
        calls.append(args)
        return "throttled=0x80008\n"

    r = HealthReader(tmp_path / "absent", tmp_path / "absent", run=run, which=lambda _: "/usr/bin/vcgencmd")
    h = r.read()
    assert calls == [["vcgencmd", "get_throttled"]]
    assert h.now == ("soft temperature limit",) and h.occurred == ("soft temperature limit",) and h.temp_c is None
    no_cmd = HealthReader(tmp_path / "absent", tmp_path / "absent", run=run, which=lambda _: None)
    assert no_cmd.read() == Health(None, None) and no_cmd.read().text() == ""
    (tmp_path / "garbage").write_text("not hex")
    assert HealthReader(tmp_path / "garbage", tmp_path / "garbage", run=None).read() == Health(None, None)
    with pytest.raises(ValueError):
        parse_throttled("throttled=")


def test_the_monitor_logs_under_voltage_as_a_warning_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    reader = sysfs(tmp_path, "10001", "50000")
    mon = HealthMonitor(reader, period_s=5)
    caplog.set_level(logging.INFO)
    mon.poll()
    mon.poll()
    warns = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warns) == 1 and "UNDER-VOLTAGE" in warns[0].getMessage()
    assert mon.latest is not None and mon.latest.under_voltage
    mon.close()  # never started: nothing to join


def test_model_line_from_the_device_tree(tmp_path: Path) -> None:
    p = tmp_path / "model"
    p.write_bytes(b"Raspberry Pi Zero 2 W Rev 1.0\x00")
    assert read_model(p) == "Raspberry Pi Zero 2 W Rev 1.0"
    assert boards.load().for_device_tree(read_model(p) or "").name == "zero2w"  # type: ignore[union-attr]
    assert read_model(tmp_path / "absent") is None
