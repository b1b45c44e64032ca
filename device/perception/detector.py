"""Object detection: the `Detector` interface and YOLOX on onnxruntime (CPU).

The narrow interface is Frigate's idea: a detector takes one BGR image and
returns one fixed numeric result (`Detections`), so backends are swappable
and the rest of the device never sees a model format.

YOLOX's ONNX export ends before its decode: each anchor row is
`cx, cy, w, h` relative to its grid cell, then objectness, then per-class
scores (already sigmoid). `YoloxDetector` does the rest; the plain
reference steps it is held to (letterbox, blob, decode, NMS, scaling back)
live with the tests, in tests/yolox_reference.py.

Speed: on a Pi the model is nearly the whole frame budget, so everything
around it must cost little next to it (`rearguard bench` measures the ratio).
The derived models (device/model_store/derive.py) take the letterboxed image as uint8
[1, H, W, 3] and convert it to float NCHW in their graph, so for them
`CanvasLetterboxer` only resizes each frame straight into the reused input
(the padding is written once per frame size). The exported model takes
float [1, 3, H, W]: `Letterboxer` resizes into a reused buffer and writes
only the image part of the float input. The detector picks the one the
model's input asks for. `YoloxDetector.postprocess` drops anchors on
objectness before touching class scores, and does decode, NMS and scaling
in one pass (the tests hold it equal to the reference steps).
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from device.core.config import DEFAULT_INPUT_SIZE
from device.core.ports import Detector  # noqa: F401  (the port, re-exported)
from device.core.types import Detections
from device.perception.boards import as_wh, size_label

PAD_VALUE = 114  # YOLOX trains with this grey; other pads shift its scores
STRIDES: tuple[int, ...] = (8, 16, 32)
_INSTALL_HINT = (
    "install it with `rearguard models install PATH` (a local copy) or `rearguard models fetch`"
)


class ModelError(Exception):
    """A model that is missing, unreadable, corrupt or does not fit; phrased for a person."""


# --- pure steps ------------------------------------------------------------


def fit(h: int, w: int, size: int | tuple[int, int]) -> tuple[float, int, int]:
    """Scale and resized (height, width) of an h x w image letterboxed into
    size x size, or into a (width, height) input."""
    out_w, out_h = as_wh(size)
    scale = min(out_h / h, out_w / w)
    return scale, max(1, int(h * scale)), max(1, int(w * scale))


# How a frame goes into a model input of another shape. "letterbox": one
# scale, the rest grey (YOLOX's own). "stretch": x and y scaled apart to fill
# the input, no pixel spent on padding (with an input of nearly the frame's
# aspect the distortion is small; measured with `rearguard recall`).
FILLS: tuple[str, ...] = ("letterbox", "stretch")

# A letterbox's one scale, or a stretch's (x, y) scales.
Scale = float | tuple[float, float]




def _check_fill(fill: str) -> str:
    if fill not in FILLS:
        raise ValueError(f"fill must be one of {', '.join(FILLS)} (got {fill!r})")
    return fill


def _placement(h: int, w: int, out_w: int, out_h: int, fill: str) -> tuple[Scale, int, int]:
    """Scale(s) and resized (height, width) of an h x w frame in an out_w x out_h input."""
    if fill == "stretch":
        return (out_w / w, out_h / h), out_h, out_w
    return fit(h, w, (out_w, out_h))


class Letterboxer:
    """YOLOX's letterbox and blob for a stream of frames, into one reused input.

    Gives exactly the blob the reference steps give (tests/yolox_reference.py), faster: frames
    of one stream share a size, so the padding is written only when the frame
    size changes, and each frame writes only its image region, plane by
    plane (contiguous uint8 -> float copies instead of a strided transpose).
    """

    def __init__(self, size: int | tuple[int, int], fill: str = "letterbox") -> None:
        self.size = size
        self.width, self.height = as_wh(size)
        self.fill = _check_fill(fill)
        self.blob = np.full((1, 3, self.height, self.width), PAD_VALUE, np.float32)
        self._for: tuple[int, int] | None = None  # the frame (h, w) the buffers fit
        self._resized = np.empty((0, 0, 3), np.uint8)
        self._planes: list[np.ndarray] = []
        self._targets: list[np.ndarray] = []
        self._scale: Scale = 1.0

    @property
    def input(self) -> np.ndarray:
        return self.blob

    def _fit(self, h: int, w: int) -> None:
        scale, nh, nw = _placement(h, w, self.width, self.height, self.fill)
        self.blob.fill(PAD_VALUE)
        self._resized = np.empty((nh, nw, 3), np.uint8)
        self._planes = [np.empty((nh, nw), np.uint8) for _ in range(3)]
        self._targets = [self.blob[0, c, :nh, :nw] for c in range(3)]
        self._scale = scale
        self._for = (h, w)

    def __call__(self, image: np.ndarray) -> Scale:
        """Letterbox one HxWx3 uint8 BGR image into `blob`; returns its scale."""
        h, w = image.shape[:2]
        if self._for != (h, w):
            self._fit(h, w)
        nh, nw = self._resized.shape[:2]
        if (nh, nw) == (h, w):
            src = image
        else:
            src = cv2.resize(image, (nw, nh), dst=self._resized, interpolation=cv2.INTER_LINEAR)
        planes = cv2.split(src, self._planes)
        for plane, target in zip(planes, self._targets, strict=True):
            np.copyto(target, plane)
        return self._scale


class CanvasLetterboxer:
    """YOLOX's letterbox for a stream of frames, into one reused uint8 canvas that
    is itself the model input (1 x size x size x 3, NHWC).

    For models that take the letterboxed image as it is (the derived models:
    their graph casts it to float and reorders it to NCHW, in onnxruntime's
    own kernels). Gives exactly what the reference letterbox gives (tests/yolox_reference.py);
    the padding is written only when the frame size changes, so a frame
    costs one resize straight into the canvas.
    """

    def __init__(self, size: int | tuple[int, int], fill: str = "letterbox") -> None:
        self.size = size
        self.width, self.height = as_wh(size)
        self.fill = _check_fill(fill)
        self.canvas = np.full((1, self.height, self.width, 3), PAD_VALUE, np.uint8)
        self._for: tuple[int, int] | None = None  # the frame (h, w) the region fits
        self._region = self.canvas[0]
        self._scale: Scale = 1.0

    @property
    def input(self) -> np.ndarray:
        return self.canvas

    def _fit(self, h: int, w: int) -> None:
        scale, nh, nw = _placement(h, w, self.width, self.height, self.fill)
        self.canvas.fill(PAD_VALUE)
        self._region = self.canvas[0, :nh, :nw]
        self._scale = scale
        self._for = (h, w)

    def __call__(self, image: np.ndarray) -> Scale:
        """Letterbox one HxWx3 uint8 BGR image into `canvas`; returns its scale."""
        h, w = image.shape[:2]
        if self._for != (h, w):
            self._fit(h, w)
        region = self._region
        if region.shape[:2] == (h, w):
            np.copyto(region, image)
        else:
            out = cv2.resize(image, (region.shape[1], region.shape[0]), dst=region,
                             interpolation=cv2.INTER_LINEAR)
            if out is not region:  # OpenCV had to allocate (never seen); keep the result anyway
                np.copyto(region, out)
        return self._scale


@functools.lru_cache(maxsize=8)
def grids(size: int | tuple[int, int], strides: tuple[int, ...] = STRIDES) -> tuple[np.ndarray, np.ndarray]:
    """Per-anchor cell offsets (N, 2) as (x, y) and strides (N, 1), in the
    export's anchor order: stride by stride, row-major within each level.
    `size` is a square side or (width, height)."""
    width, height = as_wh(size)
    cells, steps = [], []
    for s in strides:
        nx, ny = width // s, height // s
        yv, xv = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
        cells.append(np.stack((xv, yv), axis=-1).reshape(-1, 2))
        steps.append(np.full((nx * ny, 1), s))
    g = np.concatenate(cells).astype(np.float32)
    st = np.concatenate(steps).astype(np.float32)
    g.flags.writeable = False  # shared through the cache
    st.flags.writeable = False
    return g, st


# --- the onnxruntime backend -------------------------------------------------

# Chosen with `rearguard bench --load` (ranging and alert threads running;
# figures in docs/performance.md, "Threads"). Two intra-op threads. Idle pool
# threads spin (busy-wait for the next piece of work) only when the machine
# has at least SPARE_CORES_TO_SPIN cores beyond them: spinning made inference
# ~1.4x faster on an otherwise idle 2-core machine, but there it took the
# cores the alert loop and the camera need (alert tick lateness p99 0.4 ->
# 2.5 ms), and with any other load running it made inference ~2.5x slower.
# A Pi 4/5 or Zero 2 W (4 cores, 2 threads) spins; a 2-core machine does not.
DEFAULT_THREADS = 2
SPARE_CORES_TO_SPIN = 2


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def choose_spin(threads: int, spin: bool | None = None) -> bool:
    """`spin` if given, else spin only with SPARE_CORES_TO_SPIN cores to spare."""
    if spin is not None:
        return spin
    cores = usable_cores()
    used = threads if threads > 0 else cores  # 0 = onnxruntime takes every core
    return cores - used >= SPARE_CORES_TO_SPIN


def session_options(threads: int = DEFAULT_THREADS, spin: bool | None = None) -> ort.SessionOptions:
    """CPU session options: `threads` intra-op threads (0 = onnxruntime's own
    choice), one inter-op thread, and whether idle pool threads busy-wait
    for work (`spin`: lower latency, but they burn CPU the rest of the loop
    may need; None = `choose_spin`)."""
    on = choose_spin(threads, spin)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(0, threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only; warnings about unused initialisers are noise
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if on else "0")
    opts.add_session_config_entry("session.inter_op.allow_spinning", "1" if on else "0")
    return opts


class YoloxDetector:
    """YOLOX (COCO) on onnxruntime's CPU provider.

    Buffers are allocated once; `detect` allocates only what the results need.
    `detect` = `prepare` + `infer` + `postprocess`; the three are public so a
    benchmark or a test can time or check each on the same input.
    `last_timings` holds the previous call's stage times in ms (measurement
    only, never used to decide anything). `channel_major` says which output
    layout the model has: [1, anchors, 5 + classes] as exported, or
    [1, 5 + classes, anchors] (the derived models); both are read.
    `spin` is the resolved spinning choice (see `choose_spin`).
    `input_layout` says what the model takes: "NCHW float32" (the export:
    `Letterboxer` fills a float input) or "NHWC uint8" (the derived models:
    `CanvasLetterboxer` resizes straight into the uint8 input). `input` is
    that buffer, as fed to session.run.
    """

    def __init__(
        self,
        model_path: str | os.PathLike[str],
        *,
        input_size: int | tuple[int, int] = DEFAULT_INPUT_SIZE,
        score_threshold: float = 0.35,
        nms_iou: float = 0.45,
        class_ids: Sequence[int] | None = None,
        threads: int = DEFAULT_THREADS,
        spin: bool | None = None,
        fill: str = "letterbox",
    ) -> None:
        width, height = as_wh(input_size)
        if min(width, height) <= 0 or width % max(STRIDES) or height % max(STRIDES):
            raise ValueError(f"input_size must be a positive multiple of {max(STRIDES)} (got {input_size})")
        if not 0 < nms_iou < 1:
            raise ValueError(f"nms_iou must be between 0 and 1 (got {nms_iou})")
        if not 0 <= score_threshold < 1:
            raise ValueError(f"score_threshold must be in [0, 1) (got {score_threshold})")
        self.model_path = Path(model_path)
        self.input_size = input_size  # a square side, or (width, height)
        self.input_width, self.input_height = width, height
        self.fill = _check_fill(fill)
        self.score_threshold = score_threshold
        self.nms_iou = nms_iou
        self.threads = threads
        self.spin = choose_spin(threads, spin)  # as resolved: True/False
        self.last_timings: dict[str, float] = {}

        self._session: ort.InferenceSession | None = self._open(self.model_path, threads, self.spin)
        inp = self._session.get_inputs()
        out = self._session.get_outputs()
        if len(inp) != 1 or len(out) < 1:
            raise ModelError(
                f"{self.model_path} has {len(inp)} inputs and {len(out)} outputs; "
                "a YOLOX detector has one image input and one output"
            )
        self._input_name = inp[0].name
        self._output_name = out[0].name
        self._check_input(inp[0])
        self.num_classes = self._check_output(out[0])
        if class_ids is not None:
            ids = sorted(set(int(c) for c in class_ids))
            bad = [c for c in ids if not 0 <= c < self.num_classes]
            if not ids or bad:
                raise ModelError(
                    f"class ids {bad or '(none)'} do not fit {self.model_path.name}, "
                    f"which has {self.num_classes} classes (0-{self.num_classes - 1})"
                )
            self.class_ids: tuple[int, ...] | None = tuple(ids)
            self._allowed: np.ndarray | None = np.asarray(ids, np.int32)
        else:
            self.class_ids = None
            self._allowed = None

        # A uint8 model takes the letterboxed canvas as it is; its graph
        # converts it (in C++, and while the canvas is still in cache).
        self._letterbox: Letterboxer | CanvasLetterboxer = (
            CanvasLetterboxer(input_size, fill) if self.input_layout == "NHWC uint8"
            else Letterboxer(input_size, fill)
        )
        self._feed = {self._input_name: self._letterbox.input}
        self._outputs = [self._output_name]
        # Decode tables for `postprocess`, in float64: NMS takes float64 boxes
        # without converting them (half its cost on a cold cache).
        g, st = grids(input_size)
        self._anchors = len(g)
        self._stride = st[:, 0].astype(np.float64)  # (N,)
        self._offset = np.ascontiguousarray((g * self._stride[:, None]).T)  # (2, N): cell corners, letterbox px
        self._cls_rows = None if self._allowed is None else 5 + self._allowed
        self._bounds: tuple[tuple[int, int], np.ndarray] | None = None  # clip limits for a frame size

    @staticmethod
    def _open(path: Path, threads: int, spin: bool) -> ort.InferenceSession:
        if not path.exists():
            raise ModelError(f"model file not found: {path}; {_INSTALL_HINT}")
        if not path.is_file():
            raise ModelError(f"model path is not a file: {path}")
        if not os.access(path, os.R_OK):
            raise ModelError(f"model file is not readable (permissions): {path}")
        opts = session_options(threads, spin)
        try:
            return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own pybind types, none shared
            detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ModelError(
                f"cannot load model {path}: it is corrupt or not an ONNX model ({detail}); "
                f"replace it: {_INSTALL_HINT}"
            ) from None

    def _check_input(self, inp: ort.NodeArg) -> None:
        """Sets `input_layout` from the model's input: float32 [1, 3, H, W]
        (the export) or uint8 [1, H, W, 3] (the derived models)."""
        name = self.model_path.name
        layouts = {"tensor(float)": "NCHW float32", "tensor(uint8)": "NHWC uint8"}
        if inp.type not in layouts:
            raise ModelError(
                f"{name}: input {inp.name!r} is {inp.type}; expected float32 [1, 3, H, W] "
                "or uint8 [1, H, W, 3] images"
            )
        self.input_layout = layouts[inp.type]
        shape = list(inp.shape)
        want = "[1, 3, H, W]" if inp.type == "tensor(float)" else "[1, H, W, 3]"
        if len(shape) != 4:
            raise ModelError(f"{name}: input shape {shape}; expected {want} ({self.input_layout})")
        if inp.type == "tensor(float)":
            c, h, w = shape[1:]
        else:
            h, w, c = shape[1:]
        if isinstance(c, int) and c != 3:
            raise ModelError(f"{name}: input has {c} channels; expected 3 (BGR), shape {want}")
        # Symbolic (str/None) dims are a dynamic-size model: any input_size goes.
        if (isinstance(h, int) and h != self.input_height) or (isinstance(w, int) and w != self.input_width):
            fixed = h if isinstance(h, int) else w
            raise ModelError(
                f"{name} takes {h}x{w} images but detector.input_size is "
                f"{self.size_label}; set detector.input_size = {fixed}"
                f"{'' if self.input_width == self.input_height else ' (without input_width/input_height)'}"
                ", or use a dynamic-input "
                f"model: build one with `rearguard models dynamic` and set detector.model = "
                f"\"yolox_nano_dynamic\""
            )

    @property
    def size_label(self) -> str:
        """The input size as config and boards.toml write it: 416, or 416x256 (width x height)."""
        return size_label(self.input_size)

    @property
    def input(self) -> np.ndarray:
        """The model input buffer as `prepare` left it (read-only use)."""
        return self._letterbox.input

    def _check_output(self, out: ort.NodeArg) -> int:
        """The number of classes; sets the output layout: anchor-major
        [1, anchors, 5 + classes] as exported, or channel-major
        [1, 5 + classes, anchors] (the derived models, which leave out the
        export's final Transpose)."""
        shape = list(out.shape)
        name = self.model_path.name
        if len(shape) != 3:
            raise ModelError(f"{name}: output shape {shape}; expected [1, anchors, 5 + classes]")
        expected = grids(self.input_size)[0].shape[0]

        def fits(anchors: object, per_anchor: object) -> bool:
            return (isinstance(per_anchor, int) and per_anchor >= 6
                    and (not isinstance(anchors, int) or anchors == expected))

        anchor_major = fits(shape[1], shape[2])
        if anchor_major or fits(shape[2], shape[1]):
            self.channel_major = not anchor_major
            return int(shape[2] if anchor_major else shape[1]) - 5
        if isinstance(shape[2], int) and shape[2] >= 6:
            raise ModelError(
                f"{name}: output has {shape[1]} anchors; a YOLOX model at {self.size_label} has "
                f"{expected} (was it exported with decoding, or at another size?)"
            )
        raise ModelError(f"{name}: output shape {shape}; expected a fixed 5 + classes per anchor")

    # --- the three stages ------------------------------------------------------

    def prepare(self, image: np.ndarray) -> Scale:
        """Letterbox `image` into the model input buffer; returns its scale."""
        if not (isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"detect() needs an HxWx3 uint8 BGR image, got {got}")
        if image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"detect() got an empty image {image.shape}")
        return self._letterbox(image)

    def infer(self) -> np.ndarray:
        """The model's raw output (1, anchors, 5 + classes) for the prepared input."""
        if self._session is None:
            raise RuntimeError("detector is closed")
        try:
            return self._session.run(self._outputs, self._feed)[0]
        except Exception as err:  # a model whose graph fails at run time is broken
            raise ModelError(f"{self.model_path.name} failed to run: {err}") from None

    def postprocess(self, raw: np.ndarray, scale: Scale, width: int, height: int) -> Detections:
        """Raw output -> detections in the pixels of a width x height image letterboxed at
        `scale` (or stretched at (x, y) scales).

        The same result as the reference decode -> NMS -> scale_boxes
        (tests/yolox_reference.py), in one pass with fewer steps: it runs straight after
        inference, when every step starts on a cold cache.
        """
        c = 5 + self.num_classes
        want = (1, c, self._anchors) if self.channel_major else (1, self._anchors, c)
        if raw.shape != want:
            raise ModelError(
                f"{self.model_path.name}: model output has shape {raw.shape}; a YOLOX model at input "
                f"{self.size_label} gives {want}"
            )
        thr = self.score_threshold
        out = raw[0]
        # Candidates: score = objectness x class score <= objectness (class
        # scores are sigmoids), so anchors are dropped on objectness first; then every
        # row the rest needs comes in one gather, as (C, k) in either layout.
        if self.channel_major:  # (C, N): objectness is one contiguous row
            cand = (out[4] > thr).nonzero()[0]
            sub = out.take(cand, axis=1)
        else:  # (N, C): one strided pass over the objectness column
            cand = (out[:, 4] > thr).nonzero()[0]
            sub = out.take(cand, axis=0).T
        if cand.size == 0:
            return Detections.empty()
        cls = sub[5:] if self._cls_rows is None else sub.take(self._cls_rows, axis=0)
        best = cls.argmax(axis=0)
        score = cls.max(axis=0)
        score *= sub[4]
        cid = best.astype(np.int32) if self._allowed is None else self._allowed.take(best)
        # Cells -> letterbox pixels, x y w h, in float64 (which NMS takes
        # without converting). Candidates scoring <= thr stay in until NMS,
        # which drops them itself: one step less on a cold cache.
        s = self._stride.take(cand)
        wh = np.exp(sub[2:4]) * s
        xy = sub[0:2] * s
        xy += self._offset.take(cand, axis=1)
        xy -= wh * 0.5
        boxes = np.concatenate((xy, wh)).T
        if len(score) > 1:
            # int32 indices, best first (an Nx4 array of boxes)
            k = cv2.dnn.NMSBoxesBatched(boxes, score, cid, thr, self.nms_iou)
        else:
            k = (score > thr).nonzero()[0]
        if len(k) == 0:
            return Detections.empty()
        xyxy, score, cid = boxes[k], score[k], cid[k]
        xyxy[:, 2:] += xyxy[:, :2]  # now x1 y1 x2 y2
        if isinstance(scale, tuple):
            xyxy *= np.array([1.0 / scale[0], 1.0 / scale[1]] * 2)
        else:
            xyxy *= 1.0 / scale
        if self._bounds is None or self._bounds[0] != (width, height):
            self._bounds = ((width, height), np.array([width, height, width, height], np.float64))
        np.maximum(xyxy, 0.0, out=xyxy)  # two ufuncs: np.clip costs more on a cold cache
        np.minimum(xyxy, self._bounds[1], out=xyxy)
        valid = (xyxy[:, 2] > xyxy[:, 0]) & (xyxy[:, 3] > xyxy[:, 1])  # not wholly in the padding
        if not valid.all():
            xyxy, score, cid = xyxy[valid], score[valid], cid[valid]
        return Detections(xyxy=xyxy.astype(np.float32), confidence=score, class_id=cid)

    def warm_up(self) -> None:
        """One inference on a grey frame; ModelError unless the raw output has
        the right shape and is finite. A damaged model can load and run and
        give NaN everywhere: no box would ever pass a threshold, silently."""
        self._letterbox(np.full((self.input_height, self.input_width, 3), 114, np.uint8))
        raw = self.infer()
        c = 5 + self.num_classes
        want = (1, c, self._anchors) if self.channel_major else (1, self._anchors, c)
        if raw.shape != want:
            raise ModelError(f"{self.model_path.name}: warm-up output has shape {raw.shape}, expected {want}")
        bad = int(raw.size - np.count_nonzero(np.isfinite(raw)))
        if bad:
            raise ModelError(
                f"{self.model_path.name}: warm-up output has {bad} of {raw.size} values NaN or infinite "
                "(a damaged model)"
            )

    def detect(self, image: np.ndarray) -> Detections:
        if self._session is None:
            raise RuntimeError("detector is closed")
        t0 = time.perf_counter()
        scale = self.prepare(image)
        t1 = time.perf_counter()
        raw = self.infer()
        t2 = time.perf_counter()
        dets = self.postprocess(raw, scale, image.shape[1], image.shape[0])
        t3 = time.perf_counter()
        self.last_timings = {
            "preprocess": (t1 - t0) * 1e3,
            "inference": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
        }
        return dets

    def close(self) -> None:
        self._session = None  # onnxruntime frees the session with its last reference

    def __enter__(self) -> YoloxDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"YoloxDetector({str(self.model_path)!r}, input_size={self.size_label}, fill={self.fill!r})"
