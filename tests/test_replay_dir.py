"""`rearguard replay DIR` on the directory `run --record DIR` wrote (the
README's `replay recordings/walk --preview 8080`), and a replay's preview
that stays up while someone is looking."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from device.cli.main import FIRST_VIEWER_S, VIEWER_GONE_S, linger, main
from device.record.format import from_video
from test_run_source import tiny_video


@pytest.fixture()
def walk(tmp_path: Path) -> Path:
    """recordings/walk as `run --record` leaves it: two segments, no meta.json of its own."""
    video = tiny_video(tmp_path / "v.avi", frames=6)
    d = tmp_path / "walk"
    for name in ("seg-000002", "seg-000010"):  # numeric order, not string order
        from_video(video, d / name)
    (d / "incidents").mkdir()
    return d


def test_replay_of_a_recorded_directory_replays_its_segments_in_order(
        walk: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[detector]\nmodel = "{tmp_path / "missing.onnx"}"\n')  # no model: fast
    assert main(["replay", str(walk), "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if ln.startswith("replayed ")]
    assert lines == [f"replayed {walk / 'seg-000002'}: 0.5 s, 6 frames",
                     f"replayed {walk / 'seg-000010'}: 0.5 s, 6 frames"]
    assert main(["replay", str(walk), "--config", str(cfg), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [s["recording"] for s in got["segments"]] == [str(walk / "seg-000002"), str(walk / "seg-000010")]
    assert all(s["frames"] == 6 for s in got["segments"])
    # a single segment is replayed as before
    assert main(["replay", str(walk / "seg-000010"), "--config", str(cfg), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 6


class _Preview:
    url = "http://127.0.0.1:1/"

    def __init__(self) -> None:
        self.last_request: float | None = None


def _linger(preview: _Preview, visits: dict[float, float]) -> float:
    """Runs linger on a fake clock; `visits` = {clock time: request time set then}. Returns when it ended."""
    t = [100.0]

    def sleep(s: float) -> None:
        t[0] += s
        for at, seen in visits.items():
            if abs(t[0] - at) < 1e-9:
                preview.last_request = seen

    import io
    linger(preview, io.StringIO(), clock=lambda: t[0], sleep=sleep)
    return t[0]


def test_a_finished_replays_preview_stays_while_the_page_is_open() -> None:
    # a page polling until 130 s, then closed: served until VIEWER_GONE_S after its last request
    visits = {100.0 + k * 0.25: 100.0 + k * 0.25 for k in range(1, 121)}
    assert _linger(_Preview(), visits) == pytest.approx(130.0 + VIEWER_GONE_S)
    # nobody ever looks: it waits FIRST_VIEWER_S for a first look, then ends
    assert _linger(_Preview(), {}) == pytest.approx(100.0 + FIRST_VIEWER_S)
    # a request from before the replay ended does not count as a look at the last frame... until a new one
    p = _Preview()
    p.last_request = 50.0
    assert _linger(p, {}) == pytest.approx(100.0 + FIRST_VIEWER_S)
