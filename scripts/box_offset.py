"""Does YOLOX-Nano's box carry an additive size offset against the object's true size?

A box-growth time to collision fits 1/h against time. If the detector's box
height is h_det = k * h_true + c (c in frame pixels), the fit reads long by
h_det / (h_det - c); k alone (a box a fixed fraction of the object) is harmless.

Two measurements on the labelled COCO photos (../shared/images/coco-val-labelled),
with the detector as the device builds it, for each default input:
  * "static": every photo fitted whole into a 640x360 camera frame (grey
    border), detections matched to the labelled boxes (same class, IoU >= 0.5);
    dh = h_det - h_true per size bin (frame px). Objects of many sizes, one
    view each: a size offset and a size-dependent fraction cannot be told apart
    per object, only over the population.
  * "zoom": each whole person label >= 57 px tall in its photo that no other
    person's box overlaps (and, with --unlabelled, the people YOLOX finds in
    ../shared/images/coco, its own box as the reference), the photo zoomed (the
    scenario renderer's `Billboard`, as a closing object is seen) so the box is
    h_true px tall at the 640x360 frame's centre, for h_true from 20 to 160 px;
    per person a Theil-Sen line h_det = k h_true + c over the sizes it was
    detected at. This is what a closing object shows the fit, and c is the
    offset that biases it (BOX_OFFSET_INPUT_PX in device/perception/tracking.py).

Usage: python scripts/box_offset.py [--labelled DIR] [--unlabelled DIR] [--out FILE.json]
(REARGUARD_MODELS must hold yolox_nano and yolox_nano_dynamic).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import cv2
import numpy as np

from device.core.coco import COCO_CLASSES
from device.model_store import store as models
from device.perception.detector import YoloxDetector
from device.perception.tracking import iou_matrix
from device.tools.scenario import Billboard, VirtualCamera
from device.tools.shared import shared_file

FRAME_W, FRAME_H = 640, 360
# The defaults the boards use: the built-in config (inline, pi5) and pi4's / zero2w's.
CONFIGS = {
    "416 letterbox (built-in: inline, pi5)": ("yolox_nano", 416, "letterbox"),
    "320x192 stretch (pi4, zero2w)": ("yolox_nano_dynamic", (320, 192), "stretch"),
}
# Input pixels per frame pixel, vertically, of each config on a 640x360 frame.
V_SCALE = {"416 letterbox (built-in: inline, pi5)": 416 / 640, "320x192 stretch (pi4, zero2w)": 192 / 360}
ZOOM_SIZES = (20, 24, 28, 33, 40, 48, 57, 68, 80, 96, 114, 136, 160)
BINS = ((0, 24), (24, 32), (32, 48), (48, 64), (64, 96), (96, 128), (128, 192), (192, 400))


def best_match(t: np.ndarray, boxes: np.ndarray, cand: list[int]) -> tuple[int, float] | None:
    """The candidate detection overlapping the true box t most, with its IoU, if 0.5 or more."""
    if not cand:
        return None
    ious = iou_matrix(t[None], boxes[cand].astype(np.float64))[0]
    k = int(np.argmax(ious))
    return (cand[k], float(ious[k])) if ious[k] >= 0.5 else None


def theil_sen(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    i, j = np.triu_indices(len(x), k=1)
    dx = x[j] - x[i]
    ok = dx != 0
    k = float(np.median((y[j] - y[i])[ok] / dx[ok]))
    return k, float(np.median(y - k * x))


def load(labelled: Path) -> tuple[dict[int, dict], dict[int, list[dict]], dict[int, str]]:
    data = json.loads(next(labelled.glob("*.json")).read_text())
    cats = {int(c["id"]): c["name"] for c in data["categories"]}
    images = {int(im["id"]): im for im in data["images"]}
    anns: dict[int, list[dict]] = {}
    for a in data["annotations"]:
        anns.setdefault(int(a["image_id"]), []).append(a)
    return images, anns, cats


def detector(name: str, size: int | tuple[int, int], fill: str) -> YoloxDetector:
    return YoloxDetector(models.resolve(name), input_size=size, fill=fill, score_threshold=0.35, nms_iou=0.45)


def whole(box: list[float], w: int, h: int) -> bool:
    x, y, bw, bh = box
    return x > 2 and y > 2 and x + bw < w - 2 and y + bh < h - 2


def static(det: YoloxDetector, labelled: Path, images: dict, anns: dict, cats: dict) -> list[dict]:
    rows = []
    for iid, im in sorted(images.items()):
        img = cv2.imread(str(labelled / "val2017" / im["file_name"]))
        h, w = img.shape[:2]
        s = min(FRAME_W / w, FRAME_H / h)
        nw, nh = round(w * s), round(h * s)
        frame = np.full((FRAME_H, FRAME_W, 3), 114, np.uint8)
        ox, oy = (FRAME_W - nw) // 2, (FRAME_H - nh) // 2
        frame[oy:oy + nh, ox:ox + nw] = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        d = det.detect(frame)
        used: set[int] = set()
        truths = [a for a in anns.get(iid, []) if not a["iscrowd"] and cats[a["category_id"]] in COCO_CLASSES]
        for a in sorted(truths, key=lambda a: -a["bbox"][3]):
            cid = COCO_CLASSES.index(cats[a["category_id"]])
            x, y, bw, bh = a["bbox"]
            t = np.array([ox + x * s, oy + y * s, ox + (x + bw) * s, oy + (y + bh) * s])
            match = best_match(t, d.xyxy, [i for i in range(len(d)) if int(d.class_id[i]) == cid and i not in used])
            if match is None:
                continue
            i, overlap = match
            used.add(i)
            b = d.xyxy[i]
            rows.append({"image": iid, "class": COCO_CLASSES[cid], "whole": whole(a["bbox"], w, h),
                         "h_true": float(t[3] - t[1]), "w_true": float(t[2] - t[0]),
                         "h_det": float(b[3] - b[1]), "w_det": float(b[2] - b[0]),
                         "iou": overlap, "score": float(d.confidence[i])})
    return rows


def zoom_objects(images: dict, anns: dict, cats: dict, min_h: float = 57) -> list[tuple[int, dict]]:
    out = []
    for iid, im in sorted(images.items()):
        people = [a for a in anns.get(iid, []) if cats[a["category_id"]] == "person" and not a["iscrowd"]]
        for a in people:
            x, y, bw, bh = a["bbox"]
            if bh < min_h or not whole(a["bbox"], im["width"], im["height"]):
                continue
            box = np.array([x, y, x + bw, y + bh])
            others = [o for o in people if o is not a]
            if others:  # another person overlapping it: whose box is whose is not the question here
                ob = np.array([[o["bbox"][0], o["bbox"][1], o["bbox"][0] + o["bbox"][2], o["bbox"][1] + o["bbox"][3]]
                               for o in others])
                if iou_matrix(box[None], ob).max() > 0.1:
                    continue
            out.append((iid, a))
    return out


def unlabelled_objects(photos: Path, labelled_names: set[str], min_h: float = 57) -> list[tuple[Path, list[float]]]:
    """People in the unlabelled photos (../shared/images/coco), with YOLOX's own box
    (416, score >= 0.5) on the whole photo as the reference. The sweep's c does not
    depend on the reference's accuracy: a reference alpha times too tall changes k
    to k / alpha and leaves c as it is; only the zoom factor between views counts."""
    det = detector("yolox_nano", 416, "letterbox")
    person = COCO_CLASSES.index("person")
    out = []
    for path in sorted(photos.glob("*.jpg")):
        if path.name in labelled_names:  # already in the labelled set
            continue
        img = cv2.imread(str(path))
        h, w = img.shape[:2]
        d = det.detect(img)
        keep = [i for i in range(len(d)) if int(d.class_id[i]) == person and d.confidence[i] >= 0.5]
        boxes = d.xyxy[keep].astype(np.float64) if keep else np.zeros((0, 4))
        for j, b in enumerate(boxes):
            xywh = [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]
            if xywh[3] < min_h or not whole(xywh, w, h):
                continue
            others = np.delete(boxes, j, axis=0)
            if len(others) and iou_matrix(b[None], others).max() > 0.1:
                continue
            out.append((path, xywh))
    det.close()
    return out


def zoom(det: YoloxDetector, objects: list[tuple[Path, list[float]]]) -> list[dict]:
    cam = VirtualCamera()
    person = COCO_CLASSES.index("person")
    rows = []
    boards: dict[Path, Billboard] = {}
    for path, (x, y, bw, bh) in objects:
        if path not in boards:
            boards.clear()
            boards[path] = Billboard(cv2.imread(str(path)))
        centre = (x + bw / 2, y + bh / 2)
        pts = []
        for ht in ZOOM_SIZES:
            s = ht / bh
            if s > 2.0:  # no more than twice the photo's own pixels
                continue
            frame = boards[path].view(cam, centre, s, 0.0)
            t = np.array([FRAME_W / 2 - s * bw / 2, FRAME_H / 2 - ht / 2, FRAME_W / 2 + s * bw / 2, FRAME_H / 2 + ht / 2])
            d = det.detect(frame)
            match = best_match(t, d.xyxy, [i for i in range(len(d)) if int(d.class_id[i]) == person])
            if match is None:
                continue
            b = d.xyxy[match[0]]
            pts.append((ht, s * bw, float(b[3] - b[1]), float(b[2] - b[0])))
        rows.append({"photo": path.name, "box": [x, y, bw, bh], "points": pts})
    return rows


def q(v: list[float] | np.ndarray) -> str:
    v = np.asarray(v, np.float64)
    if not len(v):
        return "-"
    p25, p50, p75 = np.percentile(v, (25, 50, 75))
    return f"{p50:+.1f} [{p25:+.1f}, {p75:+.1f}]"


def zoom_summary(label: str, zoomed: list[dict], vs: float) -> list[str]:
    lines = [f"zoom, {label}: {len(zoomed)} people"]
    for lo, hi in ((20, 160), (33, 114)):
        fits = []
        for o in zoomed:
            p = [pt for pt in o["points"] if lo <= pt[0] <= hi]
            if len(p) < 5:
                continue
            kh, ch = theil_sen(np.array([pt[0] for pt in p]), np.array([pt[2] for pt in p]))
            kw, cw = theil_sen(np.array([pt[1] for pt in p]), np.array([pt[3] for pt in p]))
            fits.append((kh, ch, kw, cw))
        if not fits:
            continue
        f = np.array(fits)
        lines.append(f"  {lo}-{hi} px, per person h_det = k h_true + c over >= 5 sizes: n {len(f)}; height k "
                     f"{np.median(f[:, 0]):.3f}, c {q(f[:, 1])} frame px (= {np.median(f[:, 1]) * vs:+.2f} input px), "
                     f"c > 0 in {int((f[:, 1] > 0).sum())}; width k {np.median(f[:, 2]):.3f}, c {q(f[:, 3])}")
    # What a growth fit sees directly: the box grows by ln(h2_det/h1_det) where the
    # object grew by ln(b/a); their ratio is how long a growth time to collision reads.
    for a, b in ((33, 48), (40, 57), (48, 68), (57, 80), (68, 96), (80, 114)):
        rs = []
        for o in zoomed:
            d = {pt[0]: pt[2] for pt in o["points"]}
            if a in d and b in d and d[b] > d[a]:
                rs.append(math.log(b / a) / math.log(d[b] / d[a]))
        if rs:
            v = np.array(rs)
            lines.append(f"  {a:3d} -> {b:3d} px: n {len(v):3d}, a growth TTC reads x{np.median(v):.3f} "
                         f"[{np.percentile(v, 25):.3f}, {np.percentile(v, 75):.3f}]")
    return lines


def summarise(results: dict) -> str:
    lines = []
    for name, r in results.items():
        lines.append(f"## {name}")
        rows = [x for x in r["static"] if x["whole"]]
        people = [x for x in rows if x["class"] == "person"]
        lines.append(f"static: {len(r['static'])} labelled boxes matched ({len(rows)} whole, {len(people)} whole people)")
        lines.append("  bin (frame px)  n  | dh median [IQR]  | dw median [IQR] | h_det/h_true median   (whole people)")
        for lo, hi in BINS:
            b = [x for x in people if lo <= x["h_true"] < hi]
            if not b:
                continue
            lines.append(f"  {lo:3d}-{hi:<3d}  {len(b):4d} | {q([x['h_det'] - x['h_true'] for x in b]):>22s} | "
                         f"{q([x['w_det'] - x['w_true'] for x in b]):>22s} | "
                         f"{np.median([x['h_det'] / x['h_true'] for x in b]):.3f}")
        if len(people) > 2:
            ht = np.array([x["h_true"] for x in people])
            hd = np.array([x["h_det"] for x in people])
            k, c = theil_sen(ht, hd)
            small = ht < 128
            k2, c2 = theil_sen(ht[small], hd[small])
            lines.append(f"  pooled Theil-Sen h_det = k h_true + c: k {k:.3f}, c {c:+.2f} px (all); "
                         f"k {k2:.3f}, c {c2:+.2f} px (h_true < 128)")
        vs = V_SCALE[name]
        sets = (("labelled people", r["zoom"]), ("unlabelled photos' people", r.get("zoom_unlabelled", [])),
                ("both", r["zoom"] + r.get("zoom_unlabelled", [])))
        for label, zoomed in sets:
            if zoomed:
                lines += zoom_summary(label, zoomed, vs)
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labelled", type=Path, default=None)
    ap.add_argument("--unlabelled", type=Path, default=shared_file("images", "coco"),
                    help="photos with no labels whose people (YOLOX's own boxes) join the zoom sweep")
    ap.add_argument("--out", type=Path, default=Path("box_offset.json"))
    ap.add_argument("--summary-only", action="store_true", help="re-summarise --out without detecting")
    args = ap.parse_args()
    if args.summary_only:
        print(summarise(json.loads(args.out.read_text())))
        return
    labelled = args.labelled or shared_file("images", "coco-val-labelled")
    if labelled is None:
        raise SystemExit("no ../shared/images/coco-val-labelled: pass --labelled DIR")
    images, anns, cats = load(labelled)
    objects = [(labelled / "val2017" / images[iid]["file_name"], a["bbox"]) for iid, a in zoom_objects(images, anns, cats)]
    extra = unlabelled_objects(args.unlabelled, {im["file_name"] for im in images.values()}) if args.unlabelled else []
    results = {}
    for name, (model, size, fill) in CONFIGS.items():
        det = detector(model, size, fill)
        results[name] = {"static": static(det, labelled, images, anns, cats),
                         "zoom": zoom(det, objects), "zoom_unlabelled": zoom(det, extra)}
        det.close()
    args.out.write_text(json.dumps(results))
    print(summarise(results))


if __name__ == "__main__":
    main()
