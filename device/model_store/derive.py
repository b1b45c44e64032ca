"""Derived models: built here from a verified base model, never downloaded.

- **dynamic** (`yolox_nano_dynamic`): the base model with its input shape
  rewritten from [1, 3, 416, 416] to [1, 3, height, width]. YOLOX-Nano's
  graph needs nothing else: its Resizes are scale-based and its Reshapes are
  [1, 85, -1], so every size that is a multiple of 32 runs. It also leaves
  out the export's last node, a Transpose of [1, 85, anchors] to
  [1, anchors, 85]: that shuffles the whole output in memory only for the
  reader's convenience, and channel-major output lets the decoder read
  objectness as one contiguous row. It takes the letterboxed image as it is,
  uint8 [1, height, width, 3] (`with_uint8_input`): a Transpose and a Cast
  at the front of the graph do in onnxruntime what the detector did in
  numpy, so the detector only resizes each frame into its input buffer.
  Its Focus is folded into the first convolution (`fold_focus`). At 416
  its output is the base model's, transposed, within float rounding (the
  tests check).
- **int8** (`yolox_nano_int8`): the dynamic model statically quantised with
  onnxruntime's tools (QDQ, per-channel int8 weights, uint8 activations),
  calibrated on real photos (on the float input; the uint8 input is put in
  front afterwards); the recipe is described at `quantize_int8`.

`build()` writes the file into the models directory with a sidecar JSON
(device.model_store.store.install_derived) naming the base model's sha256 and the tool
versions, so a derived file is as traceable as a downloaded one.

This module imports onnx and onnxruntime's quantisation tools; device.model_store.store
stays light and only reads the sidecars.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
from onnx import numpy_helper, version_converter
from onnx.tools.update_model_dims import update_inputs_outputs_dims

from device.core.config import DEFAULT_INPUT_SIZE
from device.model_store import store as models
from device.perception.detector import Letterboxer, ModelError

log = logging.getLogger(__name__)

KINDS = ("dynamic", "int8")
QDQ_OPSET = 13  # per-channel DequantizeLinear (its `axis`) needs opset 13
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DEFAULT_CALIBRATION_IMAGES = 50


# --- the dynamic-input rewrite ----------------------------------------------------


def make_dynamic(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a YOLOX model whose input takes any height and width.

    The input becomes [1, 3, "height", "width"] and the output
    [1, "anchors", 5 + classes]; the stored intermediate shapes (value_info)
    were worked out for the fixed size, so they are dropped and inferred again.
    Raises ModelError if the model is not a one-input, one-output YOLOX export.
    """
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1 or len(g.output) != 1:
        raise ModelError(
            f"not a YOLOX export: {len(inputs)} inputs and {len(g.output)} outputs (expected 1 and 1)"
        )
    in_dims = _dims(inputs[0])
    out_dims = _dims(g.output[0])
    if len(in_dims) != 4 or in_dims[1] != 3 or len(out_dims) != 3 or not isinstance(out_dims[2], int):
        raise ModelError(
            f"not a YOLOX export: input {in_dims}, output {out_dims} "
            "(expected [1, 3, H, W] and [1, anchors, 5 + classes])"
        )
    out = onnx.ModelProto()
    out.CopyFrom(model)
    del out.graph.value_info[:]
    out = update_inputs_outputs_dims(
        out,
        {inputs[0].name: [1, 3, "height", "width"]},
        {g.output[0].name: [1, "anchors", out_dims[2]]},
    )
    drop_final_transpose(out)
    return checked(out, "the dynamic-input rewrite")


def drop_final_transpose(model: onnx.ModelProto) -> bool:
    """If the graph ends in Transpose(perm=[0, 2, 1]) of a [1, C, anchors]
    tensor, remove it so the output is channel-major [1, C, "anchors"].
    Returns whether it did."""
    g = model.graph
    out = g.output[0]
    last = next((n for n in g.node if out.name in n.output), None)
    if last is None or last.op_type != "Transpose":
        return False
    perm = next((list(a.ints) for a in last.attribute if a.name == "perm"), None)
    if perm != [0, 2, 1] or any(last.output[0] in n.input for n in g.node):
        return False
    per_anchor = _dims(out)[2]
    g.node.remove(last)
    new_out = onnx.helper.make_tensor_value_info(last.input[0], out.type.tensor_type.elem_type,
                                                 [1, per_anchor, "anchors"])
    g.output.remove(out)
    g.output.append(new_out)
    return True


# --- YOLOX's Focus folded into its first convolution ------------------------------


def fold_focus(model: onnx.ModelProto) -> bool:
    """Replace YOLOX's Focus (space-to-depth) and the 3x3 convolution after it
    by one 6x6 stride-2 convolution on the image itself. Returns whether it did.

    Focus takes the four pixels of every 2x2 block (even/odd rows x even/odd
    columns, eight strided Slices) into 12 channels (a Concat) for a 3x3,
    stride-1, pad-1 convolution. That convolution sees a 3x3 window of 2x2
    blocks: a 6x6 window of pixels stepping 2, padded by 2. So a 6x6
    stride-2 convolution with the same weights, rearranged, computes the same
    sums (in another order: equal within float rounding, the tests hold it to
    the original) without the slicing and copying, which cost ~10 % of the
    model's time here. Leaves any graph without this exact pattern alone.
    """
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers = _consumers(model)
    outputs = {o.name for o in g.output}

    def ints(name: str) -> list[int] | None:
        t = inits.get(name)
        return None if t is None else [int(v) for v in numpy_helper.to_array(t).reshape(-1)]

    def attr(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
        return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)

    def strided(node: onnx.NodeProto | None) -> tuple[str, int, int] | None:
        """(input, axis, start) of a Slice taking every 2nd element of axis 2 or 3 to its end."""
        if node is None or node.op_type != "Slice" or len(node.input) != 5:
            return None
        starts, ends, axes, steps = (ints(x) for x in node.input[1:])
        if (starts is None or ends is None or axes is None or steps is None or len(axes) != 1
                or axes[0] not in (2, 3) or steps != [2] or starts[0] not in (0, 1) or ends[0] < 2**31 - 1):
            return None
        return node.input[0], axes[0], starts[0]

    for cat in g.node:
        if cat.op_type != "Concat" or attr(cat, "axis") != 1 or len(cat.input) != 4:
            continue
        after = consumers.get(cat.output[0], [])
        if len(after) != 1 or after[0].op_type != "Conv" or cat.output[0] in outputs:
            continue
        conv = after[0]
        w_init = inits.get(conv.input[1])
        if (w_init is None or attr(conv, "kernel_shape") != [3, 3] or attr(conv, "strides", [1, 1]) != [1, 1]
                or attr(conv, "pads") != [1, 1, 1, 1] or attr(conv, "dilations", [1, 1]) != [1, 1]
                or attr(conv, "group", 1) != 1 or attr(conv, "auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")):
            continue
        blocks: list[tuple[int, int]] = []  # (row parity, column parity) of each concat input
        source: set[str] = set()
        removable: list[onnx.NodeProto] = [cat]
        for part in cat.input:
            second = producer.get(part)
            s2 = strided(second)
            first = producer.get(s2[0]) if s2 else None
            s1 = strided(first)
            if first is None or second is None or s2 is None or s1 is None or {s1[1], s2[1]} != {2, 3}:
                break
            if len(consumers.get(part, [])) != 1 or len(consumers.get(s2[0], [])) != 1 or part in outputs:
                break
            parity = {s1[1]: s1[2], s2[1]: s2[2]}
            blocks.append((parity[2], parity[3]))
            source.add(s1[0])
            removable += [second, first]
        if len(blocks) != 4 or len(set(blocks)) != 4 or len(source) != 1:
            continue
        w1 = numpy_helper.to_array(w_init)
        c = w1.shape[1] // 4
        if w1.shape[1] != 4 * c or w1.shape[2:] != (3, 3):
            continue
        w = np.empty((w1.shape[0], c, 6, 6), w1.dtype)
        for k, (hp, wp) in enumerate(blocks):
            w[:, :, hp::2, wp::2] = w1[:, k * c:(k + 1) * c]
        name = f"{conv.input[1]}_focus_6x6"
        g.initializer.append(numpy_helper.from_array(w, name))
        conv.input[0] = source.pop()
        conv.input[1] = name
        del conv.attribute[:]
        conv.attribute.extend([
            onnx.helper.make_attribute("kernel_shape", [6, 6]),
            onnx.helper.make_attribute("strides", [2, 2]),
            onnx.helper.make_attribute("pads", [2, 2, 2, 2]),
            onnx.helper.make_attribute("dilations", [1, 1]),
            onnx.helper.make_attribute("group", 1),
        ])
        for n in removable:
            g.node.remove(n)
        _drop_unused_initializers(model)
        return True
    return False


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
        for inp in [i for i in g.input if i.name == init.name]:  # older IRs list them as inputs too
            g.input.remove(inp)


def checked(model: onnx.ModelProto, what: str) -> onnx.ModelProto:
    """`model` with its intermediate shapes inferred afresh, checked by onnx;
    ModelError naming `what` if it is not a valid model."""
    del model.graph.value_info[:]
    try:
        out = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        onnx.checker.check_model(out)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise ModelError(f"{what} gave an invalid model: {err}") from None
    return out


INPUT_NOTE = "[1, height, width, 3] uint8 BGR letterboxed (Transpose and Cast to [1, 3, height, width] float in the graph)"
OUTPUT_NOTE = "[1, 85, anchors] (channel-major: the export's final Transpose left out)"
FOCUS_NOTE = "folded into the first convolution (6x6, stride 2, pad 2)"
FLOAT_INPUT = "images_nchw_float"  # the original input, now made inside the graph


def with_uint8_input(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of a float [1, 3, H, W] model that takes the letterboxed image
    as it is: uint8 [1, H, W, 3] (BGR), under the same input name.

    Two nodes in front do what the detector did in numpy: Transpose to NCHW
    (on the uint8 bytes, a quarter of the float ones) and Cast to float.
    uint8 -> float is exact, so the model computes on the same numbers as the
    float one (the tests hold the outputs equal). Raises ModelError for a
    model whose input is not float [1, 3, H, W].
    """
    g = model.graph
    inits = {i.name for i in g.initializer}
    inputs = [i for i in g.input if i.name not in inits]
    if len(inputs) != 1:
        raise ModelError(f"expected a model with one image input, found {len(inputs)}")
    inp = inputs[0]
    dims = _dims(inp)
    if inp.type.tensor_type.elem_type != onnx.TensorProto.FLOAT or len(dims) != 4 or dims[1] != 3:
        raise ModelError(f"expected a float [1, 3, H, W] input, found {inp.name!r} with shape {dims}")
    if any(FLOAT_INPUT in (*n.input, *n.output) for n in g.node):
        raise ModelError(f"the model already has a tensor named {FLOAT_INPUT!r}: converted before?")
    if any(o.name == inp.name for o in g.output):
        raise ModelError(f"input {inp.name!r} is also an output; not an image model")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    name = inp.name
    for n in g.node:
        for k, x in enumerate(n.input):
            if x == name:
                n.input[k] = FLOAT_INPUT
    index = next(k for k, i in enumerate(g.input) if i.name == name)
    g.input.remove(g.input[index])
    g.input.insert(index, onnx.helper.make_tensor_value_info(
        name, onnx.TensorProto.UINT8, [dims[0], dims[2], dims[3], 3]))
    convert = [
        onnx.helper.make_node("Transpose", [name], [f"{name}_nchw_uint8"], perm=[0, 3, 1, 2],
                              name="input_nhwc_to_nchw"),
        onnx.helper.make_node("Cast", [f"{name}_nchw_uint8"], [FLOAT_INPUT], to=onnx.TensorProto.FLOAT,
                              name="input_uint8_to_float"),
    ]
    for k, node in enumerate(convert):
        g.node.insert(k, node)
    return checked(out, "the uint8-input rewrite")


def _dims(info: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param for d in info.type.tensor_type.shape.dim]


# --- int8 -----------------------------------------------------------------------
#
# The recipe, and why (figures in docs/performance.md, "Detector speed"):
# - QDQ, int8 per-channel weights, uint8 per-tensor activations; MinMax
#   calibration with a moving average (streams image by image: the histogram
#   methods held ~6.5 GB for 50 images, more than a Pi has).
# - The decode tail stays float (`tail_nodes`).
# - A convolution feeding a SiLU has its calibrated minimum raised to
#   -SILU_CLIP: SiLU is ~0 below that, and YOLOX's first convolutions reach
#   -80, which would spend most of uint8's 256 steps on nothing.
# - The FLOAT_CONVS convolutions that lose the most signal-to-noise when
#   quantised (measured on probe images with onnxruntime's QDQ debugging
#   tools) stay float with their SiLU. Quantising everything kept only ~0.6
#   of fp32's people on held-out photos; with the 8 worst float, ~0.96.

SILU_CLIP = 6.0
FLOAT_CONVS = 8
PROBE_IMAGES = 2


def tail_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of the nodes between the last convolutions and the output.

    For YOLOX that is the decode tail: objectness and class sigmoids, the
    per-level concat of [box, objectness, classes], reshapes, the final concat
    and transpose. Kept float so each part keeps its own precision.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    names: list[str] = []
    seen: set[str] = set()
    stack = [o.name for o in model.graph.output]
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.op_type == "Conv" or node.name in seen:
            continue
        seen.add(node.name)
        names.append(node.name)
        stack.extend(node.input)
    return names


def _consumers(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = {}
    for n in model.graph.node:
        for i in n.input:
            out.setdefault(i, []).append(n)
    return out


def silu_convs(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    """Convolutions whose output goes into a SiLU (x * sigmoid(x))."""
    cons = _consumers(model)
    found = []
    for n in model.graph.node:
        if n.op_type != "Conv":
            continue
        after = cons.get(n.output[0], [])
        sig = [c for c in after if c.op_type == "Sigmoid"]
        mul = [c for c in after if c.op_type == "Mul"]
        if sig and mul and any(sig[0].output[0] in m.input for m in mul):
            found.append(n)
    return found


def with_activation(model: onnx.ModelProto, conv_names: Sequence[str]) -> list[str]:
    """The named convolutions plus the Sigmoid and Mul of their SiLU."""
    cons = _consumers(model)
    by_name = {n.name: n for n in model.graph.node}
    out = []
    for name in conv_names:
        out.append(name)
        for c in cons.get(by_name[name].output[0], []):
            if c.op_type in ("Sigmoid", "Mul"):
                out.append(c.name)
    return out


def image_files(directory: str | Path) -> list[Path]:
    """The photos in `directory`, sorted by name; ModelError if there are none."""
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise ModelError(f"calibration images: no such directory: {d}")
    files = sorted(p for p in d.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise ModelError(f"calibration images: no {'/'.join(IMAGE_SUFFIXES)} files in {d}")
    return files


def calibration_blobs(files: Sequence[Path], input_size: int) -> Iterator[np.ndarray]:
    """Each photo letterboxed exactly as the detector does it, as a model input."""
    lb = Letterboxer(input_size)
    for f in files:
        image = cv2.imread(str(f), cv2.IMREAD_COLOR)
        if image is None:
            raise ModelError(f"calibration image {f} cannot be read as an image")
        lb(image)
        yield lb.blob.copy()


def _reader(input_name: str, files: Sequence[Path], input_size: int,
            progress: Callable[[int, int], None] | None = None) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._blobs = calibration_blobs(files, input_size)
            self._done = 0

        def get_next(self) -> dict[str, np.ndarray] | None:
            blob = next(self._blobs, None)
            if blob is None:
                return None
            self._done += 1
            if progress is not None:
                progress(self._done, len(files))
            return {input_name: blob}

        def rewind(self) -> None:
            self._blobs = calibration_blobs(files, input_size)

    return Reader()


def quantize_int8(
    dynamic_model: Path,
    dst: Path,
    calibration: Sequence[Path],
    *,
    input_size: int = DEFAULT_INPUT_SIZE,
    float_convs: int = FLOAT_CONVS,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, Any]:
    """Statically quantise a dynamic-input YOLOX model into `dst` (the recipe
    above). Returns the recipe as done, for the sidecar."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quant_pre_process, quantize_static
    from onnxruntime.quantization.calibrate import create_calibrator
    from onnxruntime.quantization.qdq_loss_debug import (
        collect_activations,
        compute_activation_error,
        create_activation_matching,
        modify_model_output_intermediate_tensors,
    )

    if not calibration:
        raise ModelError("int8 calibration needs at least one image")
    if float_convs < 0:
        raise ModelError(f"float_convs must be >= 0 (got {float_convs})")

    def step(what: str) -> Callable[[int, int], None] | None:
        return None if progress is None else (lambda done, total: progress(what, done, total))

    model = onnx.load(str(dynamic_model))
    input_name = model.graph.input[0].name
    opset = model.opset_import[0].version
    if opset < QDQ_OPSET:
        model = version_converter.convert_version(model, QDQ_OPSET)
    probe = list(calibration[:PROBE_IMAGES])

    with tempfile.TemporaryDirectory(prefix="rearguard-quant-") as tmp:
        t = Path(tmp)
        onnx.save(model, str(t / "opset.onnx"))
        # onnxruntime's recommended pre-pass (shape inference, basic fusions);
        # its symbolic pass needs sympy and adds nothing onnx's own misses here.
        quant_pre_process(str(t / "opset.onnx"), str(t / "prepared.onnx"), skip_symbolic_shape=True)
        prepared = onnx.load(str(t / "prepared.onnx"))
        tail = tail_nodes(prepared)

        # 1. Ranges, to clip the SiLU inputs' long negative tails.
        cal = create_calibrator(
            t / "prepared.onnx", augmented_model_path=t / "augmented.onnx",
            calibrate_method=CalibrationMethod.MinMax, extra_options={"moving_average": True},
        )
        cal.collect_data(_reader(input_name, calibration, input_size, step("calibrating")))
        ranges = cal.compute_data()
        del cal
        overrides: dict[str, list[dict[str, Any]]] = {}
        for conv in silu_convs(prepared):
            name = conv.output[0]
            if conv.name in tail or name not in ranges:
                continue
            lo, hi = (float(np.asarray(v).reshape(-1)[0]) for v in ranges[name].range_value)
            if lo < -SILU_CLIP:
                overrides[name] = [{"rmin": np.array(-SILU_CLIP, np.float32), "rmax": np.array(hi, np.float32)}]

        def quantize(out: Path, excluded: list[str], what: str) -> None:
            quantize_static(
                str(t / "prepared.onnx"), str(out),
                _reader(input_name, calibration, input_size, step(what)),
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method=CalibrationMethod.MinMax,
                nodes_to_exclude=excluded,
                extra_options={"CalibMovingAverage": True, "TensorQuantOverrides": overrides},
            )

        # 2. Everything quantised, then find the convolutions that hurt most:
        # signal-to-noise of the quantised model's activations against fp32's,
        # and how much of it each convolution loses.
        chosen: list[str] = []
        if float_convs:
            quantize(t / "all.onnx", tail, "quantising (probe)")
            modify_model_output_intermediate_tensors(t / "prepared.onnx", t / "float_aug.onnx")
            modify_model_output_intermediate_tensors(t / "all.onnx", t / "all_aug.onnx")
            ref = collect_activations(str(t / "float_aug.onnx"), _reader(input_name, probe, input_size))
            got = collect_activations(str(t / "all_aug.onnx"), _reader(input_name, probe, input_size))
            snr = {k: v["xmodel_err"] for k, v in compute_activation_error(create_activation_matching(got, ref)).items()}
            del ref, got
            losses = []
            for n in prepared.graph.node:
                if n.op_type == "Conv" and n.name not in tail and n.output[0] in snr:
                    before = snr.get(n.input[0], max(snr.values()))  # the input itself: exact
                    losses.append((float(before) - float(snr[n.output[0]]), n.name))
            losses.sort(reverse=True)
            chosen = [name for _, name in losses[:float_convs]]

        # 3. The model: the chosen convolutions and the tail stay float.
        quantize(dst, tail + with_activation(prepared, chosen), "quantising")
    return {
        "format": "QDQ",
        "weights": "int8 per-channel",
        "activations": "uint8 per-tensor",
        "calibration": "MinMax, moving average",
        "calibration_input_size": input_size,
        "calibration_images": [f.name for f in calibration],
        "probe_images": [f.name for f in probe],
        "silu_clip": -SILU_CLIP,
        "float_convs": chosen,
        "float_tail": tail,
        "opset": max(QDQ_OPSET, opset),
    }


# --- building and installing ----------------------------------------------------


def _trusted_base(base: str, source: str | Path | None) -> tuple[Path, str]:
    """The base model file and its sha256, which must be one the manifest trusts."""
    spec = models.spec(base)
    path = Path(source).expanduser() if source is not None else models.resolve(base)
    digest = models.verify(path)
    if digest not in spec.accepted():
        raise ModelError(
            f"{path} has sha256 {digest}, which the manifest does not list for {base}; "
            "derived models are only built from a verified base"
        )
    return path, digest


def build(
    kind: str,
    base: str = models.DEFAULT_MODEL,
    *,
    source: str | Path | None = None,
    images: Sequence[Path] = (),
    input_size: int = DEFAULT_INPUT_SIZE,
    float_convs: int = FLOAT_CONVS,
    progress: Callable[[str, int, int], None] | None = None,
) -> models.Derived:
    """Build the `kind` variant of `base` and install it (with its sidecar).

    `source` is a base model file to build from instead of the installed
    copy; it must still be one the manifest trusts. `images` calibrate int8.
    """
    if kind not in KINDS:
        raise ModelError(f"unknown model variant {kind!r}; known: {', '.join(KINDS)}")
    base_path, base_sha = _trusted_base(base, source)
    name = models.derived_name(base, kind)
    directory = models.models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=directory) as tmp:
        dynamic = Path(tmp) / "dynamic.onnx"
        # The base's bytes are ones the manifest trusts, so they parse.
        float_model = make_dynamic(onnx.load(str(base_path)))
        folded = fold_focus(float_model)
        onnx.save(checked(float_model, "folding Focus") if folded else float_model, str(dynamic))
        recipe: dict[str, Any] = {
            "input": INPUT_NOTE, "output": OUTPUT_NOTE, "focus": FOCUS_NOTE if folded else "not found",
        }
        if kind == "dynamic":
            float_input = dynamic
        else:
            # Calibrated and quantised on the float model (the calibration
            # inputs are float blobs); the uint8 input goes on afterwards.
            float_input = Path(tmp) / "int8_float_input.onnx"
            recipe |= quantize_int8(
                dynamic, float_input, images, input_size=input_size, float_convs=float_convs, progress=progress
            )
        built = Path(tmp) / f"{kind}.onnx"
        onnx.save(with_uint8_input(onnx.load(str(float_input))), str(built))
        return models.install_derived(built, name, base=base, kind=kind, base_sha256=base_sha, recipe=recipe)
