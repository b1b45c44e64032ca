"""A live preview page: what the device sees and decides, for aiming it.

`rearguard run --preview [ADDR:]PORT` (and `replay --preview`) serves a
small read-only page: the rear view with the overlays of `device.view.annotate`
(boxes, track IDs, distance, time to collision, the alert level, every
ultrasonic beam and reading, the rates) and a status line beside it.

The server is the standard library's `http.server` (ThreadingHTTPServer):
a Pi already has it, it adds no dependency to install or keep patched, it
needs no event loop beside the device's threads, and two read-only
endpoints for one or two viewers are well within it. Its known limits
(no TLS, basic checks only) are met by binding to localhost unless an
address is given, answering GET/HEAD only, serving fixed routes (no files),
capping the connections and timing out a silent client.

The alert loop never waits for the preview:
- the loop only swaps references (`Pipeline.view()`); drawing and JPEG
  encoding happen here, in the request threads;
- a frame is encoded only when a viewer asks, at most `max_fps` times a
  second whatever the number of viewers (they share the newest encoding),
  and never when nobody is looking;
- the page pulls the next frame only once the last one has arrived, so a
  slow client just gets fewer, always-newest frames: nothing is queued
  for it and the frames in between are dropped; a client (address)
  asking faster than max_fps is made to wait for the next encoding.

Endpoints: `/` the page, `/preview.css` and `/preview.js` its style and script, `/frame.jpg` the newest
annotated frame, `/status.json` the same state as numbers.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

import cv2

from device.core.clock import NS_PER_S
from device.core.config import Config
from device.core.faults import texts
from device.core.priority import background_thread
from device.core.types import Threat
from device.decision.threat import CAMERA_MIN_HITS
from device.pipeline import View
from device.view.annotate import Overlay, blank, draw

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
MAX_FPS = 10.0  # frames encoded per second at most, shared by all viewers
JPEG_QUALITY = 75
MAX_CONNECTIONS = 16  # a few viewers (a browser opens up to 6 each); each holds a thread
CLIENT_TIMEOUT_S = 10.0  # a client silent this long is dropped
EVICT_WAIT_S = 1.0  # a new viewer waits this long for an evicted slow client's slot


class PreviewError(Exception):
    """The preview cannot be served as asked; the message says why."""


class Viewable(Protocol):
    """What the preview shows: a Pipeline."""

    config: Config

    def view(self) -> View: ...


def parse_address(spec: str) -> tuple[str, int]:
    """`PORT`, `ADDR:PORT` or `[IPV6]:PORT` -> (host, port). A bare port
    means localhost: reaching the preview from another machine must be
    asked for by naming an address (0.0.0.0 = every interface)."""
    text = spec.strip()
    host = DEFAULT_HOST
    port_text = text
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise PreviewError(f"preview address {spec!r}: write an IPv6 address as [ADDR]:PORT, e.g. [::1]:8080")
        host, port_text = text[1:end], text[end + 2 :]
    elif ":" in text:
        host, port_text = text.rsplit(":", 1)
        if ":" in host:
            raise PreviewError(f"preview address {spec!r}: write an IPv6 address as [ADDR]:PORT, e.g. [::1]:8080")
    if not host:
        raise PreviewError(
            f"preview address {spec!r} has no address before ':': give PORT for this machine only, "
            "or an address such as 0.0.0.0:PORT to be reached from the network"
        )
    if not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise PreviewError(f"preview address {spec!r}: the port must be a number from 0 to 65535")
    return host, int(port_text)


class RateMeter:
    """Events per second from a growing count, over at least `window_ns`
    of the given clock: the loop's clock, so a replay's rates are in
    recording time."""

    def __init__(self, window_ns: int = NS_PER_S) -> None:
        self.window_ns = window_ns
        self._anchor: tuple[int, int] | None = None
        self.rate: float | None = None

    def update(self, t_ns: int, count: int) -> float | None:
        if self._anchor is None or t_ns < self._anchor[0] or count < self._anchor[1]:
            self._anchor = (t_ns, count)
        elif t_ns - self._anchor[0] >= self.window_ns:
            self.rate = (count - self._anchor[1]) * NS_PER_S / (t_ns - self._anchor[0])
            self._anchor = (t_ns, count)
        return self.rate


def _num(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or not math.isfinite(x) else round(x, nd)


def _threat_json(t: Threat | None) -> dict[str, Any] | None:
    if t is None:
        return None
    return {
        "source": t.source,
        "label": t.label,
        "distance_m": _num(t.distance_m),
        "ttc_s": _num(t.ttc_s),
        "bearing_deg": _num(t.bearing_deg, 1),
        "faults": list(texts(t.faults)),
    }


class PreviewServer:
    """Serves the page on (host, port) from a daemon thread. Bind errors
    are raised by the constructor, before the loop starts; `show()` says
    which pipeline to show (until then the page says it is waiting)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = 8080,
        *,
        max_fps: float = MAX_FPS,
        quality: int = JPEG_QUALITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not max_fps > 0:
            raise PreviewError(f"preview max_fps must be positive, got {max_fps}")
        self.max_fps = max_fps
        self.quality = quality
        self._clock = clock  # wall time: rate limiting only, never a decision
        self._source: Viewable | None = None
        self._extra: Callable[[], dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._jpeg: bytes | None = None
        self._jpeg_at: float | None = None
        self._jpeg_scale = 1.0
        self._jpeg_status: dict[str, Any] | None = None  # the status of the view that frame was drawn from
        self._camera_rate = RateMeter()
        self._loop_rate = RateMeter()
        self.encoded = 0  # frames drawn and encoded
        self.served = 0  # frames sent
        self.last_request: float | None = None  # wall time of the last request: is a page still open?
        # The id of the last frame sent to each client address: a client
        # asking again before the next encoding waits for it.
        self.last_sent: dict[str, int] = {}
        self._conns = threading.BoundedSemaphore(MAX_CONNECTIONS)
        # Connections waiting for (the rest of) a request, since when: when
        # every slot is taken, the one waiting longest makes room (issue 23:
        # 16 clients trickling bytes locked real viewers out indefinitely).
        self.waiting: dict[socket.socket, float] = {}
        self.waiting_lock = threading.Lock()
        try:
            self._httpd = _HTTPServer(host, port, self)
        except socket.gaierror as err:
            raise PreviewError(f"cannot serve the preview on {host!r}: unknown address ({err.strerror})") from None
        except OSError as err:
            raise PreviewError(f"cannot serve the preview on {host}:{port}: {err.strerror or err}") from None
        bound_host, bound_port = self._httpd.server_address[:2]
        # An AF_INET/AF_INET6 socket's host is a str; typeshed's type also allows bytes.
        self.host: str = bound_host if isinstance(bound_host, str) else bytes(bound_host).decode()
        self.port: int = bound_port
        # request threads start from this one, so they are lowered too
        self._thread = background_thread(self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                         name="rearguard-preview")
        self._thread.start()
        log.info("preview on %s", self.url)

    @property
    def url(self) -> str:
        host = self.host if ":" not in str(self.host) else f"[{self.host}]"
        return f"http://{host}:{self.port}/"

    def show(self, source: Viewable, extra: Callable[[], dict[str, Any]] | None = None) -> None:
        """`extra`: more numbers for status.json (the device's pace and health)."""
        self._source = source
        self._extra = extra

    def stop_after(self, seconds: float) -> None:
        """Stop serving after `seconds` (aiming from a phone is for a while only)."""
        timer = threading.Timer(seconds, self._expire)
        timer.daemon = True
        timer.start()
        self._timer = timer

    def _expire(self) -> None:
        log.warning("preview on %s closed: its time is up", self.url)
        self._httpd.shutdown()
        self._httpd.server_close()

    def close(self) -> None:
        timer = getattr(self, "_timer", None)
        if timer is not None:
            timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> PreviewServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ content

    def _overlay(self, v: View, cfg: Config, text_scale: float = 1.0) -> Overlay:
        now = v.threat.t_ns if v.threat is not None else None
        if now is not None:
            self._camera_rate.update(now, v.frames)
            self._loop_rate.update(now, v.steps)
        return Overlay(
            level=v.level,  # the loop's felt level, never recomputed here
            threat=v.threat,
            tracks=v.camera.tracks if v.camera is not None else (),
            sensors=cfg.ranging.sensors,
            ranges=v.ranges,
            hfov_deg=cfg.camera.hfov_deg,
            alerts=cfg.alerts,
            camera_fps=self._camera_rate.rate,
            loop_hz=self._loop_rate.rate,
            min_hits=CAMERA_MIN_HITS,
            looming=v.looming,
            mount_height_m=cfg.camera.mount_height_m,
            pitch_deg=cfg.camera.pitch_deg,
            text_scale=text_scale,
        )

    def frame_jpeg(self, after: int | None = None, text_scale: float = 1.0) -> tuple[int, bytes] | None:
        """(id, JPEG) of the newest annotated frame, or None before show().
        Re-drawn at most max_fps times a second; callers in between share
        the last encoding. `after` is the id the caller already has: then
        this waits for the next encoding instead of sending the same one
        again, so no client gets more than max_fps frames a second.
        `text_scale` (1-2) draws the labels larger, for a page that shows the
        frame smaller than its pixels (a phone). `frame_status()` is the
        status of the very view this frame was drawn from."""
        source = self._source
        if source is None:
            return None
        text_scale = min(2.0, max(1.0, round(text_scale * 4) / 4))  # a few sizes: viewers share encodings
        period = 1.0 / self.max_fps
        with self._lock:
            wait = 0.0
            if after is not None and after == self.encoded and self._jpeg_at is not None:
                wait = self._jpeg_at + period - self._clock()
        if wait > 0:
            time.sleep(min(wait, period) + 0.001)  # a request thread: the loop never waits here
        with self._lock:
            now = self._clock()
            if (self._jpeg is not None and self._jpeg_at is not None and now - self._jpeg_at < period
                    and self._jpeg_scale == text_scale):
                return self.encoded, self._jpeg
            v, cfg = source.view(), source.config
            ov = self._overlay(v, cfg, text_scale)
            if v.frame is not None:
                img = draw(v.frame.image, ov)
            else:
                img = blank(cfg.camera.width, cfg.camera.height, ov)
            ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
            if not ok:  # cv2 reports no reason; an image this shape always encodes
                raise PreviewError("JPEG encoding failed")
            self._jpeg, self._jpeg_at, self._jpeg_scale = buf.tobytes(), now, text_scale
            self.encoded += 1
            self._jpeg_status = {**self._status_of(v, cfg, ov), "frame_id": self.encoded}
            return self.encoded, self._jpeg

    def frame_status(self) -> dict[str, Any] | None:
        """The status of the view the newest encoded frame was drawn from: the
        page shows it with that frame, so the two can never disagree."""
        with self._lock:
            return self._jpeg_status

    def status(self) -> dict[str, Any]:
        """The page's numbers, from the loop's newest view (status.json)."""
        source = self._source
        if source is None:
            return {"ready": False, "max_fps": self.max_fps, "encoded": self.encoded, "served": self.served}
        with self._lock:
            v, cfg = source.view(), source.config
            ov = self._overlay(v, cfg)
            return self._status_of(v, cfg, ov)

    def _status_of(self, v: View, cfg: Config, ov: Overlay) -> dict[str, Any]:
        base: dict[str, Any] = {"ready": True, "max_fps": self.max_fps, "encoded": self.encoded,
                                "served": self.served}
        base.update(
            level=ov.level.name,
            threat=_threat_json(v.threat),
            camera_fps=_num(ov.camera_fps, 1),
            loop_hz=_num(ov.loop_hz, 1),
            steps=v.steps,
            frames=v.frames,
            frame=None if v.frame is None else {
                "seq": v.frame.seq, "width": int(v.frame.image.shape[1]), "height": int(v.frame.image.shape[0])},
            tracks=[
                {"id": t.track_id, "label": t.label, "confirmed": t.hits >= CAMERA_MIN_HITS,
                 "box": [round(c, 1) for c in t.box], "distance_m": _num(t.distance_m),
                 "ttc_s": _num(t.ttc_s), "bearing_deg": _num(t.bearing_deg, 1)}
                for t in (v.camera.tracks if v.camera is not None else ())
            ],
            looming=None if v.looming is None else {
                "ttc_s": _num(v.looming.ttc_s), "distance_m": _num(v.looming.distance_m),
                "speed_mps": _num(v.looming.speed_mps), "points": v.looming.points,
                "features": v.looming.features,
                "box": None if v.looming.box is None else [round(c, 1) for c in v.looming.box]},
            sensors=[
                {"name": s.name, "bearing_deg": s.bearing_deg, "beam_deg": s.beam_deg,
                 "metres": _num(r.metres) if r is not None else None,
                 "fault": r.fault if r is not None else None,
                 "reading": "waiting" if r is None else "fault" if r.fault else
                            "no echo" if r.metres is None else "echo"}
                for s in cfg.ranging.sensors
                for r in [v.ranges.get(s.name)]
            ],
        )
        extra = self._extra
        if extra is not None:
            base.update(extra())
        return base


def _text_scale(query: str) -> float:
    """`ts=1.5` in the frame's query: how much larger to draw the labels."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "ts":
            try:
                x = float(value)
            except ValueError:
                return 1.0
            return x if math.isfinite(x) else 1.0
    return 1.0


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True  # a stuck client never keeps the device from stopping

    def __init__(self, host: str, port: int, preview: PreviewServer) -> None:
        self.preview = preview
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        conns = self.preview._conns
        if not conns.acquire(blocking=False):
            if not self._evict_slowest() or not conns.acquire(timeout=EVICT_WAIT_S):
                log.debug("preview: too many connections, refusing %s", client_address)
                self.shutdown_request(request)
                return
        super().process_request(request, client_address)

    def _evict_slowest(self) -> bool:
        """Close the connection waiting longest for its request (a slow or
        idle client; a browser just reconnects); False if none waits."""
        p = self.preview
        with p.waiting_lock:
            if not p.waiting:
                return False
            sock = min(p.waiting, key=p.waiting.__getitem__)
            del p.waiting[sock]
        log.debug("preview: all slots taken; closing the connection waiting longest for a request")
        try:
            sock.shutdown(socket.SHUT_RDWR)  # its thread's read ends, and its slot is freed
        except OSError:
            pass
        return True

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.preview._conns.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A viewer closing its tab mid-frame is normal, not worth a traceback.
        log.debug("preview: connection from %s ended with an error", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"  # keep-alive: one connection per viewer
    server_version = "rearguard-preview"
    sys_version = ""
    timeout = CLIENT_TIMEOUT_S

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("preview %s: " + format, self.address_string(), *args)

    def handle_one_request(self) -> None:
        p = self.server.preview
        with p.waiting_lock:
            p.waiting[self.connection] = time.monotonic()
        try:
            super().handle_one_request()
        finally:
            with p.waiting_lock:
                p.waiting.pop(self.connection, None)

    def parse_request(self) -> bool:
        ok = super().parse_request()  # the request line and headers are in: no longer waiting
        p = self.server.preview
        with p.waiting_lock:
            p.waiting.pop(self.connection, None)
        return ok

    def _send(self, status: HTTPStatus, body: bytes, ctype: str, head: bool = False,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        # blob: the page shows each frame from the fetch that also carried its status
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' blob:; frame-ancestors 'none'")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, head: bool) -> None:
        path, _, query = self.path.partition("?")
        preview = self.server.preview
        preview.last_request = preview._clock()
        if path in ("/", "/index.html"):
            page = PAGE.replace("{period_ms}", str(round(1000 / preview.max_fps)))
            self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8", head)
        elif path == "/preview.css":
            self._send(HTTPStatus.OK, STYLE.encode(), "text/css; charset=utf-8", head)
        elif path == "/preview.js":
            self._send(HTTPStatus.OK, SCRIPT.encode(), "text/javascript; charset=utf-8", head)
        elif path == "/status.json":
            body = json.dumps(preview.status()).encode()
            self._send(HTTPStatus.OK, body, "application/json", head)
        elif path == "/frame.jpg":
            client = self.client_address[0]
            got = preview.frame_jpeg(after=preview.last_sent.get(client), text_scale=_text_scale(query))
            if got is None:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, b"the loop has not started yet\n",
                           "text/plain; charset=utf-8", head)
                return
            frame_id, jpeg = got
            with preview._lock:
                if len(preview.last_sent) >= 64 and client not in preview.last_sent:
                    preview.last_sent.clear()  # bounded; forgetting only lets a client skip one wait
                preview.last_sent[client] = frame_id
            if not head:
                with preview._lock:
                    preview.served += 1
            status = preview.frame_status()
            self._send(HTTPStatus.OK, jpeg, "image/jpeg", head,
                       extra={"X-Rearguard-Status": json.dumps(status, separators=(",", ":"))} if status else None)
        else:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8", head)

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def _read_only(self) -> None:
        self.close_connection = True  # its body, if any, is not read
        self.send_response(HTTPStatus.METHOD_NOT_ALLOWED)
        self.send_header("Allow", "GET, HEAD")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_PUT = do_PATCH = do_DELETE = _read_only


# The style and the script are files of their own: the page's Content-
# Security-Policy allows nothing inline.
STYLE = """body { margin: 0; background: #111; color: #eee; font: 15px/1.4 system-ui, sans-serif; }
main { max-width: 960px; margin: 0 auto; padding: 8px; }
img { display: block; width: 100%; height: auto; background: #222; min-height: 120px; }
#level { display: inline-block; padding: 2px 10px; border-radius: 4px; font-weight: bold; }
.CLEAR { background: #3caa3c; } .CAUTION { background: #ffdc00; color: #000; }
.WARN { background: #ff8c00; color: #000; } .DANGER { background: #e60000; } .FAULT { background: #c800c8; }
.OFFLINE { background: #777; color: #fff; }
p { margin: 6px 0; } .dim { color: #999; font-size: 13px; }
.legend { font-size: 13px; color: #ccc; } .legend b { display: inline-block; min-width: 1.2em; }
.cyan { color: #00ffff; } .grey { color: #a0a0a0; } .magenta { color: #ff00ff; } .yellow { color: #ffff00; }
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Rearguard preview</title>
<link rel="stylesheet" href="preview.css">
</head>
<body data-period-ms="{period_ms}" data-frames="0">
<main>
<img id="view" alt="rear view with detections and sensor beams">
<p><span id="level" class="OFFLINE">connecting</span> <span id="threat">connecting</span></p>
<p id="rates"></p>
<p id="sensors"></p>
<p id="pace"></p>
<p id="faults"></p>
<p class="legend" id="legend"><b class="cyan">&#9633;</b> tracked object: number, label, distance, time to collision
(<b class="grey">&#9633;</b> not yet confirmed) &middot; <b>&#9650;</b> ultrasonic beam, its reading on top, the tick
across it the reading against the sensor's range &middot; <b class="magenta">&#9633;</b> the path looming watches
&middot; <b class="yellow">&#9633;</b> a surface closing in (looming) &middot; <b>- -</b> horizon and the ground
2, 4, 8 m away for the configured camera height and pitch &middot; <b>L</b> / <b>R</b> the runner's left and
right: the image is what the camera sees behind the runner, so the runner's left is on its right.
The level and the numbers here belong to the frame shown.</p>
<p class="dim">Rearguard preview: read-only, nothing can be changed from this page.</p>
</main>
<script src="preview.js"></script>
</body>
</html>
"""

SCRIPT = """"use strict";
// One frame at a time, fetched with its own status (the X-Rearguard-Status
// header: the view the frame was drawn from), so the level and numbers below
// always belong to the image above. The next frame is asked for only when
// the last has been shown, at most once per period: a slow link gets fewer
// frames, never a backlog. A failed fetch, or no frame for 3 s, greys the
// badge: "no connection", never a stale colour.
const body = document.body;
const period = Number(body.dataset.periodMs) || 100;
const img = document.getElementById("view");
const level = document.getElementById("level");
let asked = 0, lastShown = performance.now(), shownUrl = null;

function fmt(x, unit) { return x === null || x === undefined ? "-" : x.toFixed(1) + " " + unit; }
function text(id, s) { document.getElementById(id).textContent = s; }
function textScale() {
  const w = img.clientWidth || document.documentElement.clientWidth || 640;
  return Math.min(2, Math.max(1, 640 / w)).toFixed(2);
}
function offline(why) {
  level.textContent = "no connection";
  level.className = "OFFLINE";
  text("threat", why);
}
function side(t) {
  if (t.bearing_deg === null || t.bearing_deg === undefined || Math.abs(t.bearing_deg) < 10) return "";
  return ", " + Math.abs(t.bearing_deg).toFixed(0) + " deg " + (t.bearing_deg < 0 ? "left" : "right");
}
function show(s) {
  if (!s.ready) { text("threat", "waiting for the loop to start"); return; }
  level.textContent = s.level;
  level.className = s.level;
  const t = s.threat;
  text("threat", !t || t.source === "none" ? "nothing in the way"
    : (t.label || "?") + " " + fmt(t.distance_m, "m") + side(t) + ", ttc " + fmt(t.ttc_s, "s") + " (" + t.source + ")");
  text("rates", "camera " + fmt(s.camera_fps, "fps") + " \u00b7 loop " + fmt(s.loop_hz, "Hz") +
    " \u00b7 " + s.tracks.length + " tracked");
  text("sensors", s.sensors.map(x => x.name + ": " +
    (x.reading === "echo" ? x.metres.toFixed(2) + " m" : x.reading + (x.fault ? " " + x.fault : ""))).join(" \u00b7 "));
  text("pace", s.pace ? "pace: " + s.pace.text : "");
  text("faults", t && t.faults.length ? "faults: " + t.faults.join("; ") : "");
}
function later(delay) {
  setTimeout(nextFrame, Math.max(delay, period - (performance.now() - asked)));
}
async function nextFrame() {
  asked = performance.now();
  let r;
  try {
    r = await fetch("frame.jpg?ts=" + textScale() + "&t=" + Date.now(), { cache: "no-store" });
  } catch (e) {
    offline("no connection to the device: the level is not known");
    later(1000);
    return;
  }
  if (r.status === 503) { text("threat", "waiting for the loop to start"); later(500); return; }
  if (!r.ok) { offline("the device answered " + r.status); later(1000); return; }
  let status = null;
  try { status = JSON.parse(r.headers.get("X-Rearguard-Status") || "null"); } catch (e) { status = null; }
  const url = URL.createObjectURL(await r.blob());
  img.onload = () => {
    if (shownUrl) URL.revokeObjectURL(shownUrl);
    shownUrl = url;
    lastShown = performance.now();
    if (status) show(status);
    body.dataset.frames = Number(body.dataset.frames) + 1;
    later(0);
  };
  img.onerror = () => { URL.revokeObjectURL(url); later(1000); };
  img.src = url;
}
setInterval(() => {
  if (performance.now() - lastShown > 3000) offline("no frame from the device for 3 s: the level is not known");
}, 1000);
nextFrame();
"""
