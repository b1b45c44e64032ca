"""Board profiles: how fast each Raspberry Pi runs the detector.

The figures live in `boards.toml` beside this module (shipped with the
package), each with its source; `rearguard replay/evaluate --board NAME`
turn them into a `DetectorPace`, so a replay shows the warnings the runner
would get from that board rather than from the laptop replaying it.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from device.core.config import Config, from_dict

INLINE = "inline"  # no board: detect every frame at once (the replay of old)


class BoardError(Exception):
    """An unknown board, or no figure for the model and input size asked for."""


@dataclass(frozen=True)
class Board:
    name: str
    title: str
    device_tree: str  # how /proc/device-tree/model starts on this board
    status: str  # "estimate" or "measured"
    source: str
    # model -> input size -> (low, high) inference ms
    inference_ms: dict[str, dict[int, tuple[float, float]]]
    # What this board should run (scripts/install-pi.sh writes it into the
    # config it installs; a config that sets either key wins), and why.
    default_model: str | None = None
    default_input_size: int | None = None
    default_why: str = ""

    def detect_ms(self, model: str, input_size: int, overhead: float) -> float:
        """The ms one detect() keeps the detector busy: the slow end of the
        inference figure plus the rest of detect()."""
        try:
            _, high = self.inference_ms[model][input_size]
        except KeyError:
            have = ", ".join(f"{m} at {'/'.join(map(str, sorted(s)))}" for m, s in self.inference_ms.items())
            raise BoardError(f"board {self.name!r} has no figure for {model} at {input_size} "
                             f"(it has {have}); give --detector-ms instead") from None
        return round(high * (1 + overhead), 1)


@dataclass(frozen=True)
class Boards:
    detect_overhead: float
    boards: dict[str, Board]

    def get(self, name: str) -> Board:
        try:
            return self.boards[name]
        except KeyError:
            raise BoardError(f"unknown board {name!r} (known: {', '.join([*self.boards, INLINE])})") from None

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


def parse(data: dict[str, Any]) -> Boards:
    boards = {}
    for name, b in data.get("boards", {}).items():
        models = {}
        for key, sizes in b.items():
            if isinstance(sizes, dict):
                models[key] = {int(size): _pair(ms, f"boards.{name}.{key}.{size}") for size, ms in sizes.items()}
        missing = [k for k in ("title", "device_tree", "status", "source") if not isinstance(b.get(k), str)]
        if missing or b["status"] not in ("estimate", "measured"):
            raise BoardError(f"boards.{name}: needs title, device_tree, source and status estimate|measured")
        dm, ds, why = b.get("default_model"), b.get("default_input_size"), b.get("default_why", "")
        if (dm is None) != (ds is None) or (dm is not None and ds not in models.get(dm, {})) or not isinstance(why, str):
            raise BoardError(f"boards.{name}: default_model and default_input_size go together, "
                             "name a model and size the board has a figure for, and default_why is text")
        boards[name] = Board(name, b["title"], b["device_tree"], b["status"], b["source"], models, dm, ds, why)
    return Boards(float(data["detect_overhead"]), boards)


@lru_cache(maxsize=1)
def load() -> Boards:
    text = resources.files("device.perception").joinpath("boards.toml").read_text(encoding="utf-8")
    return parse(tomllib.loads(text))


def estimate_table(boards: Boards | None = None, model: str = "yolox_nano") -> str:
    """The "Expected on a Raspberry Pi" table of docs/performance.md, from the file."""
    boards = boards or load()
    sizes = sorted({s for b in boards.boards.values() for s in b.inference_ms.get(model, {})}, reverse=True)
    rows = ["| board | " + " | ".join(map(str, sizes)) + " |", "|---|" + "---|" * len(sizes)]
    for b in boards.boards.values():
        cells = []
        for s in sizes:
            low, high = b.inference_ms[model][s]
            cells.append(f"~{low:g}" if low == high else f"{low:g}-{high:g}")
        rows.append(f"| {b.title} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def with_defaults(cfg: Config, board: Board) -> Config:
    """`cfg` with the board's detector model and input size where `cfg`
    leaves them unset: a config that names either keeps its own choice of
    both (a model chosen for its size, or the other way round)."""
    if board.default_model is None or cfg.detector.model_fields_set & {"model", "input_size"}:
        return cfg
    data = cfg.model_dump(mode="python")
    data["detector"].update(model=board.default_model, input_size=board.default_input_size)
    return from_dict(data, f"the {board.name} defaults")
