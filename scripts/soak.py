#!/usr/bin/env python3
"""Memory soak of a live run: is the device's RSS flat over a long run?

Runs `rearguard run` on looped footage (vtest.avi re-encoded N times into
one file, cached in the work dir), simulated pins, recording on and the
preview polled over loopback (the page's two requests, /frame.jpg and
/status.json, like an open browser tab), and samples the process's RSS
from /proc. Its output is the figures: RSS at the end of the warm-up, min
and max after it, the least-squares slope, frames the loop took, their
rate, preview polls and the host's load.

    .venv/bin/python scripts/soak.py                       # the 30-minute soak
    .venv/bin/python scripts/soak.py --variant glibc: --variant unit:unit  # before/after
    .venv/bin/python scripts/soak.py --minutes 6 --warmup 2 \
        --variant glibc: --variant arena2:MALLOC_ARENA_MAX=2  # a short side by side

Each --variant NAME:K=V,K=V runs its own device at the same time with
those environment variables (so a busy host slows all alike); NAME:unit
takes the allocator settings (Environment=MALLOC_*) of
systemd/rearguard.service, NAME: none. Without --variant, a single device
runs with the unit's settings. Linux only (/proc).
Exit status 0 once the runs ended as asked (a device that died is 1),
whatever the figures: judging them is the reader's job.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FOOTAGE = REPO.parent / "shared" / "footage" / "vtest.avi"
UNIT = REPO / "systemd" / "rearguard.service"


def unit_malloc_env(unit: Path = UNIT) -> dict[str, str]:
    """The allocator settings the installed service runs with (its
    Environment=MALLOC_* lines), so a soak measures what a Pi runs."""
    env: dict[str, str] = {}
    for line in unit.read_text().splitlines():
        key, _, value = line.strip().partition("=")
        if key == "Environment":
            env.update(kv.partition("=")[::2] for kv in value.split() if kv.startswith("MALLOC_"))
    return env


# The camera's default capture size (config [camera] width/height). A file
# of another size is decoded at its own size and resized by the device every
# frame (vtest.avi is 768x576: a 1.3 MB decode a frame that a Pi camera,
# delivering 640x360 itself, never makes), so the soak's footage is made at
# this size and the device's memory is measured on the frames a Pi has.
SIZE = (640, 360)


def looped_footage(src: Path, dest: Path, min_seconds: float, size: tuple[int, int] = SIZE) -> Path:
    """`src` at `size`, repeated into one file at least `min_seconds` long (cached)."""
    import cv2  # the venv's OpenCV; imported here so --help needs none

    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise SystemExit(f"soak: cannot read {src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 10.0
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    loops = max(1, math.ceil(min_seconds * fps / count))
    stem = f"{src.stem}-{size[0]}x{size[1]}"
    for have in sorted(dest.glob(f"{stem}-x*.avi")):
        n = have.stem.rpartition("-x")[2]
        if n.isdigit() and int(n) >= loops:
            return have  # a longer one made before will do
    out = dest / f"{stem}-x{loops}.avi"
    tmp = out.with_suffix(".part.avi")
    writer = None
    for _ in range(loops):
        cap = cv2.VideoCapture(str(src))
        while True:
            ok, img = cap.read()
            if not ok:
                break
            if writer is None:
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter.fourcc(*"FMP4"), fps, size)
            writer.write(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
        cap.release()
    assert writer is not None
    writer.release()
    tmp.rename(out)
    return out


def rss_mb(pid: int) -> tuple[float, float, float] | None:
    """The process's resident memory in MB: all of it (VmRSS), its private
    memory (RssAnon: the heaps, the arenas, the frames) and the files it has
    mapped (RssFile: mostly library code, paged in the first time a path
    runs, e.g. the JPEG decoder at the first incident clip, and shared)."""
    got: dict[str, float] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile"):
                got[key] = int(value.split()[0]) / 1024
    except OSError:
        return None
    if "VmRSS" not in got:
        return None
    return got["VmRSS"], got.get("RssAnon", float("nan")), got.get("RssFile", float("nan"))


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds the process has used."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load1() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


@dataclass
class Device:
    name: str
    env: dict[str, str]
    port: int
    work: Path
    proc: subprocess.Popen[bytes] | None = None
    samples: list[tuple[float, float, int, float, float, float]] = field(default_factory=list)
    # (s, RSS MB, frames, CPU s, RssAnon MB, RssFile MB)
    polls: int = 0
    poll_errors: int = 0
    frames: int = 0
    status_error: str = ""

    def start(self, source: Path, minutes: float, config: Path | None) -> None:
        rec = self.work / f"rec-{self.name}"
        shutil.rmtree(rec, ignore_errors=True)
        cmd = [str(Path(sys.executable).with_name("rearguard")), "run", "--source", str(source),
               "--mock-pins", "--no-self-test", "-q", "--record", str(rec),
               "--preview", f"127.0.0.1:{self.port}", "--duration", f"{minutes * 60:g}"]
        if config is not None:
            cmd += ["--config", str(config)]
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / f"stderr-{self.name}.txt", "wb"))

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as r:
            return bytes(r.read())

    def poll_preview(self, stop: threading.Event, hz: float) -> None:
        """The page's requests: a frame and the status, `hz` times a second."""
        while not stop.wait(1.0 / hz):
            try:
                self.get("/frame.jpg")
                st = json.loads(self.get("/status.json"))
                self.frames = int(st.get("frames") or 0)
                self.polls += 1
            except (OSError, ValueError):
                self.poll_errors += 1  # before the preview is up, or at the end


def fit_slope(xs: list[float], ys: list[float]) -> float:
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=30.0, help="measured time after the warm-up")
    ap.add_argument("--warmup", type=float, default=5.0, help="warm-up minutes (not judged)")
    ap.add_argument("--sample-s", type=float, default=10.0, help="seconds between RSS samples")
    ap.add_argument("--poll-hz", type=float, default=2.0, help="preview polls a second (each a frame + status)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/soak"), help="looped footage, recordings, CSVs")
    ap.add_argument("--config", type=Path, help="a config TOML for the device (default: built-in)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:K=V,...",
                    help="a device with these environment variables; several run side by side")
    ap.add_argument("--port", type=int, default=8931, help="first preview port (one per variant)")
    args = ap.parse_args()

    args.work.mkdir(parents=True, exist_ok=True)
    total_min = args.warmup + args.minutes
    source = looped_footage(FOOTAGE, args.work, total_min * 60 + 120)
    devices = []
    for i, spec in enumerate(args.variant or ["device:unit"]):
        name, _, kv = spec.partition(":")
        env = unit_malloc_env() if kv == "unit" else dict(p.partition("=")[::2] for p in kv.split(",") if p)
        devices.append(Device(name or f"v{i}", env, args.port + i, args.work))

    stop = threading.Event()
    started = time.monotonic()
    for d in devices:
        d.start(source, total_min + 0.5, args.config)
    pollers = [threading.Thread(target=d.poll_preview, args=(stop, args.poll_hz), daemon=True) for d in devices]
    for t in pollers:
        t.start()
    loads: list[float] = []
    end = started + total_min * 60
    try:
        while time.monotonic() < end and all(d.proc and d.proc.poll() is None for d in devices):
            s = time.monotonic() - started
            loads.append(load1())
            for d in devices:
                r = rss_mb(d.proc.pid) if d.proc else None
                c = cpu_s(d.proc.pid) if d.proc else None
                if r is not None and c is not None:
                    d.samples.append((s, r[0], d.frames, c, r[1], r[2]))
            time.sleep(max(0.0, args.sample_s - (time.monotonic() - started - s)))
    finally:
        stop.set()
        for d in devices:
            if d.proc and d.proc.poll() is None:
                d.proc.send_signal(signal.SIGTERM)
        for d in devices:
            if d.proc:
                try:
                    d.proc.wait(30)
                except subprocess.TimeoutExpired:
                    d.proc.kill()
                    d.proc.wait()

    elapsed = time.monotonic() - started
    warm_s = args.warmup * 60
    failed = False
    print(f"soak: {source.name}, {args.warmup:g} min warm-up + {args.minutes:g} min measured "
          f"(ran {elapsed / 60:.1f} min), RSS every {args.sample_s:g} s, preview polled {args.poll_hz:g}/s")
    print(f"host: {os.cpu_count()} CPUs, load average (1 min) over the run: mean "
          f"{sum(loads) / max(1, len(loads)):.2f}, min {min(loads, default=0):.2f}, max {max(loads, default=0):.2f}")
    for d in devices:
        rc = d.proc.returncode if d.proc else None
        (args.work / f"rss-{d.name}.csv").write_text(
            "seconds,rss_mb,frames,cpu_s,rss_anon_mb,rss_file_mb\n"
            + "".join(f"{s:.1f},{r:.1f},{f},{c:.2f},{a:.1f},{fm:.1f}\n" for s, r, f, c, a, fm in d.samples))
        after = [x for x in d.samples if x[0] >= warm_s]
        warm = [x for x in d.samples if x[0] < warm_s]
        said = ",".join(f"{k}={v}" for k, v in d.env.items()) or "(environment as is)"
        print(f"\n[{d.name}] {said}; exit status {rc}")
        if rc not in (0, -signal.SIGTERM):
            failed = True
        if not after or not warm:
            print("  too short: no samples after the warm-up")
            continue
        rss = [x[1] for x in after]
        frames = after[-1][2] - warm[-1][2]
        span = after[-1][0] - warm[-1][0]
        cpu = after[-1][3] - warm[-1][3]
        slope = fit_slope([x[0] / 60 for x in after], rss)
        print(f"  RSS at warm-up end {warm[-1][1]:.1f} MB; after it min {min(rss):.1f}, max {max(rss):.1f} "
              f"(range {max(rss) - min(rss):.1f} MB), last {rss[-1]:.1f}; slope {slope:+.3f} MB/min")
        for what, col in (("private (RssAnon)", 4), ("files (RssFile)", 5)):
            ys = [x[col] for x in after]
            print(f"  {what}: at warm-up end {warm[-1][col]:.1f} MB; after it {min(ys):.1f}-{max(ys):.1f} "
                  f"(range {max(ys) - min(ys):.1f} MB); slope {fit_slope([x[0] / 60 for x in after], ys):+.3f} MB/min")
        print(f"  frames taken after warm-up {frames} in {span / 60:.1f} min = {frames / span:.2f}/s "
              f"(all: {after[-1][2]}); preview polls {d.polls} (each frame + status), failed {d.poll_errors}")
        print(f"  CPU after warm-up {cpu:.0f} s = {cpu / span:.2f} cores, "
              f"{1000 * cpu / frames if frames else float('nan'):.0f} ms a frame taken")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
