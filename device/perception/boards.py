"""Board profiles: how fast each Raspberry Pi runs the detector.

The figures live in `boards.toml` beside this module (shipped with the
package), each with its source; `rearguard replay/evaluate --board NAME`
turn them into a `DetectorPace`, so a replay shows the warnings the runner
would get from that board rather than from the laptop replaying it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from pydantic import ValidationError

from device.core.config import Config, DetectorConfig, from_dict

INLINE = "inline"  # no board: detect every frame at once (the replay of old)


class BoardError(Exception):
    """An unknown board, or no figure for the model and input size asked for."""


# An input size: a square side (416) or (width, height) (416x256 in TOML and config).
Size = int | tuple[int, int]


def as_wh(size: Size) -> tuple[int, int]:
    """(width, height) of a square size or a (width, height) pair."""
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def size_label(size: Size) -> str:
    """416 for a square input, 416x256 (width x height) for another."""
    w, h = as_wh(size)
    return str(w) if w == h else f"{w}x{h}"


def parse_size(text: str | int) -> Size:
    """416 or "416" -> 416; "416x256" -> (416, 256); "416x416" -> 416. ValueError otherwise."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text
    parts = str(text).strip().lower().split("x")
    if len(parts) not in (1, 2) or not all(p.isdigit() for p in parts):
        raise ValueError(f"{text!r} is not a size (416, or 416x256 for width x height)")
    w, h = int(parts[0]), int(parts[-1])
    return w if w == h else (w, h)


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    device_tree: str  # how /proc/device-tree/model starts on this board
    status: str  # "estimate" or "measured"
    source: str
    # model -> input size -> (low, high) inference ms
    inference_ms: dict[str, dict[Size, tuple[float, float]]]
    # What this board should run (scripts/install-pi.sh writes it into the
    # config it installs; a config that sets either key wins), and why.
    default_model: str | None = None
    default_input_size: Size | None = None
    default_why: str = ""
    default_fill: str = "letterbox"
    # The look-ahead crop's schedule (detector.lookahead_every/_mode/_width), if any.
    default_lookahead: tuple[int, str, float] | None = None
    # flow.enabled on this board unless the config sets it (None: the config's default), and why.
    default_flow: bool | None = None
    default_flow_why: str = ""
    # pace.min_rate_hz on this board unless the config sets it (None: the config's default), and why.
    default_min_rate_hz: float | None = None
    default_min_rate_why: str = ""
    # An accelerated board ("imx500", "hailo"): the network runs off the CPU,
    # so its pace is the accelerator's own figure for `accelerator_model` at
    # `accelerator_input`, whatever CPU model the config names.
    accelerator: str | None = None
    accelerator_model: str | None = None
    accelerator_input: int | None = None

    def detect_ms(self, model: str, input_size: Size, overhead: float) -> float:
        """The ms one detect() keeps the detector busy: the slow end of the
        inference figure plus the rest of detect(). On an accelerated board,
        the slow end of the accelerator's per-frame figure alone: the ISP
        scales the frame to the network's input and the NMS runs on the chip,
        so there is no CPU resize or decode to add."""
        if self.accelerator is not None and self.accelerator_model is not None and self.accelerator_input is not None:
            return round(self.inference_ms[self.accelerator_model][self.accelerator_input][1], 1)
        try:
            _, high = self.inference_ms[model][parse_size(size_label(input_size))]
        except KeyError:
            have = ", ".join(f"{m} at {'/'.join(size_label(x) for x in _by_pixels(s))}"
                             for m, s in self.inference_ms.items())
            raise BoardError(f"board {self.name!r} has no figure for {model} at {size_label(input_size)} "
                             f"(it has {have}); give --detector-ms instead") from None
        return round(high * (1 + overhead), 1)


def config_detect_ms(board: Board, cfg: Config, overhead: float, model: str | None = None) -> float:
    """The ms one detection keeps `board` busy with `cfg`'s detector: its
    model at its input geometry, plus the look-ahead crop's inference (the
    same input) on every `lookahead_every`th detection, unless it runs
    instead of the full frame (`lookahead_mode = "instead"`: one inference
    per detection either way)."""
    d = cfg.detector
    ms = board.detect_ms(model or d.model, d.input_geometry, overhead)
    if not d.lookahead_every or d.lookahead_mode == "instead":
        return ms
    return round(ms * (1 + 1 / d.lookahead_every), 1)


@dataclass(frozen=True)
class Boards:
    detect_overhead: float
    boards: dict[str, Board]  # the CPU boards: the device tree names them, the README tables them
    # Boards with an AI accelerator (`[accelerated.NAME]`): chosen by name only
    # (the device tree cannot tell an AI Camera from any other camera).
    accelerated: dict[str, Board] = field(default_factory=dict)

    def get(self, name: str) -> Board:
        try:
            return self.boards[name] if name in self.boards else self.accelerated[name]
        except KeyError:
            known = ", ".join([*self.boards, *self.accelerated, INLINE])
            raise BoardError(f"unknown board {name!r} (known: {known})") from None

    def for_device_tree(self, model_line: str) -> Board | None:
        """The board a /proc/device-tree/model line names, if any."""
        for b in self.boards.values():
            if model_line.strip("\x00 \n").startswith(b.device_tree):
                return b
        return None


def _pair(v: Any, where: str) -> tuple[float, float]:
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v)):
        raise BoardError(f"{where}: expected [low, high] ms, got {v!r}")
    low, high = float(v[0]), float(v[1])
    if not (math.isfinite(low) and 0 < low <= high and math.isfinite(high)):
        raise BoardError(f"{where}: expected 0 < low <= high, got {v!r}")
    return low, high


def _accelerated(name: str, b: dict[str, Any], board: Board) -> Board:
    acc, model, size = b.get("accelerator"), b.get("accelerator_model"), b.get("accelerator_input")
    if acc not in ("imx500", "hailo") or not isinstance(model, str) or not isinstance(size, int) \
            or size not in board.inference_ms.get(model, {}):
        raise BoardError(f"accelerated.{name}: needs accelerator (imx500 or hailo), and accelerator_model and "
                         "accelerator_input naming a figure the board has")
    return Board(board.name, board.title, board.device_tree, board.status, board.source, board.inference_ms,
                 accelerator=acc, accelerator_model=model, accelerator_input=size)


def _by_pixels(sizes: Any) -> list[Size]:
    """Sizes largest first (by pixel count, then width)."""
    return sorted(sizes, key=lambda s: (as_wh(s)[0] * as_wh(s)[1], as_wh(s)[0]), reverse=True)


def _size_key(key: str, where: str) -> Size:
    try:
        size = parse_size(key)
    except ValueError as err:
        raise BoardError(f"{where}: {err}") from None
    if min(as_wh(size)) <= 0 or any(v % 32 for v in as_wh(size)):
        raise BoardError(f"{where}: sizes are multiples of 32 (got {key!r})")
    return size


def parse(data: dict[str, Any]) -> Boards:
    boards = {}
    accelerated = {}
    for name, b in data.get("accelerated", {}).items():
        plain = {k: v for k, v in b.items() if not k.startswith("accelerator")}
        accelerated[name] = _accelerated(name, b, parse({"detect_overhead": 0, "boards": {name: plain}}).boards[name])
    for name, b in data.get("boards", {}).items():
        models = {}
        for key, sizes in b.items():
            if isinstance(sizes, dict) and key != "default_lookahead":
                where = f"boards.{name}.{key}"
                models[key] = {_size_key(size, f"{where}.{size}"): _pair(ms, f"{where}.{size}")
                               for size, ms in sizes.items()}
        missing = [k for k in ("title", "device_tree", "status", "source") if not isinstance(b.get(k), str)]
        if missing or b["status"] not in ("estimate", "measured"):
            raise BoardError(f"boards.{name}: needs title, device_tree, source and status estimate|measured")
        dm, raw, why = b.get("default_model"), b.get("default_input_size"), b.get("default_why", "")
        fill = b.get("default_fill", "letterbox")
        ds = None if raw is None else _size_key(raw, f"boards.{name}.default_input_size")
        if (dm is None) != (ds is None) or (dm is not None and ds not in models.get(dm, {})) or not isinstance(why, str):
            raise BoardError(f"boards.{name}: default_model and default_input_size go together, "
                             "name a model and size the board has a figure for, and default_why is text")
        if fill not in ("letterbox", "stretch"):
            raise BoardError(f"boards.{name}.default_fill: letterbox or stretch (got {fill!r})")
        flow, flow_why = b.get("default_flow"), b.get("default_flow_why", "")
        if not (flow is None or isinstance(flow, bool)) or not isinstance(flow_why, str) or (flow is not None and not flow_why):
            raise BoardError(f"boards.{name}: default_flow is true or false, with default_flow_why saying why")
        rate, rate_why = b.get("default_min_rate_hz"), b.get("default_min_rate_why", "")
        if not (rate is None or (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate <= 30)) \
                or not isinstance(rate_why, str) or (rate is not None and not rate_why):
            raise BoardError(f"boards.{name}: default_min_rate_hz is a number of results a second (over 0, "
                             "at most 30), with default_min_rate_why saying why")
        boards[name] = Board(name, b["title"], b["device_tree"], b["status"], b["source"], models, dm, ds, why,
                             fill, _lookahead(b.get("default_lookahead"), f"boards.{name}.default_lookahead"),
                             flow, flow_why, None if rate is None else float(rate), rate_why)
    return Boards(float(data["detect_overhead"]), boards, accelerated)


def _lookahead(v: Any, where: str) -> tuple[int, str, float] | None:
    """{every = N, mode = "instead", width = 0.4} -> (N, mode, width), checked as the config checks them."""
    if v is None:
        return None
    if not (isinstance(v, dict) and set(v) == {"every", "mode", "width"}):
        raise BoardError(f"{where}: expected {{every = N, mode = \"beside\"|\"instead\", width = F}}, got {v!r}")
    try:
        d = DetectorConfig(lookahead_every=v["every"], lookahead_mode=v["mode"], lookahead_width=v["width"])
    except ValidationError as err:
        raise BoardError(f"{where}: {err.errors()[0]['msg']} (got {v!r})") from None
    return d.lookahead_every, d.lookahead_mode, d.lookahead_width


@lru_cache(maxsize=1)
def load() -> Boards:
    text = resources.files("device.perception").joinpath("boards.toml").read_text(encoding="utf-8")
    return parse(tomllib.loads(text))


def estimate_table(boards: Boards | None = None, model: str = "yolox_nano") -> str:
    """The "Expected on a Raspberry Pi" table of docs/performance.md, from the file."""
    boards = boards or load()
    sizes = _by_pixels({s for b in boards.boards.values() for s in b.inference_ms.get(model, {})})
    rows = ["| board | " + " | ".join(map(size_label, sizes)) + " |", "|---|" + "---|" * len(sizes)]
    for b in boards.boards.values():
        cells = []
        for s in sizes:
            if s not in b.inference_ms.get(model, {}):
                cells.append("-")
                continue
            low, high = b.inference_ms[model][s]
            cells.append(f"~{low:g}" if low == high else f"{low:g}-{high:g}")
        rows.append(f"| {b.title} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


# The detector keys a board's defaults set: a config that sets any keeps its own.
DEFAULT_KEYS = frozenset({"model", "input_size", "input_width", "input_height", "fill",
                          "lookahead_every", "lookahead_mode", "lookahead_width"})


def with_defaults(cfg: Config, board: Board) -> Config:
    """`cfg` with the board's detector model, input size, fill and look-ahead where `cfg`
    leaves them unset: a config that names any keeps its own choice of
    all (a model chosen for its size, or the other way round). The board's
    flow.enabled and pace.min_rate_hz likewise, each where `cfg` leaves it unset."""
    detector = _with_detector_defaults(cfg, board)
    settings = {(section, key): getattr(board, attr) for section, key, attr in _ONE_KEY_DEFAULTS
                if _one_key_default_applies(cfg, board, section, key, attr)}
    if not settings:
        return detector
    data = detector.model_dump(mode="python")
    for (section, key), value in settings.items():
        data[section][key] = value
    return from_dict(data, f"the {board.name} defaults")


# One config key each that a board may set (section, key, the Board field holding it).
_ONE_KEY_DEFAULTS = (("flow", "enabled", "default_flow"), ("pace", "min_rate_hz", "default_min_rate_hz"))


def _one_key_default_applies(cfg: Config, board: Board, section: str, key: str, attr: str) -> bool:
    value, given = getattr(board, attr), getattr(cfg, section)
    return value is not None and key not in given.model_fields_set and getattr(given, key) != value


def flow_default_applies(cfg: Config, board: Board) -> bool:
    return _one_key_default_applies(cfg, board, *_ONE_KEY_DEFAULTS[0])


def min_rate_default_applies(cfg: Config, board: Board) -> bool:
    return _one_key_default_applies(cfg, board, *_ONE_KEY_DEFAULTS[1])


def _with_detector_defaults(cfg: Config, board: Board) -> Config:
    if board.default_model is None or board.default_input_size is None or cfg.detector.model_fields_set & DEFAULT_KEYS:
        return cfg
    data = cfg.model_dump(mode="python")
    size = board.default_input_size
    if isinstance(size, int):
        data["detector"].update(model=board.default_model, input_size=size)
    else:
        data["detector"].update(model=board.default_model, input_width=size[0], input_height=size[1])
    if board.default_fill != "letterbox":
        data["detector"]["fill"] = board.default_fill
    if board.default_lookahead is not None:
        every, mode, width = board.default_lookahead
        data["detector"].update(lookahead_every=every, lookahead_mode=mode, lookahead_width=width)
    return from_dict(data, f"the {board.name} defaults")
