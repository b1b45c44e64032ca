"""COCO class names in YOLOX's output order, and the older spellings some
exports ship (coco_classes.txt beside the shared model uses them)."""

from __future__ import annotations

COCO_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck",
    "boat", "traffic light", "fire hydrant", "stop sign", "parking meter", "bench",
    "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra",
    "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove",
    "skateboard", "surfboard", "tennis racket", "bottle", "wine glass", "cup",
    "fork", "knife", "spoon", "bowl", "banana", "apple", "sandwich", "orange",
    "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)

ALIASES: dict[str, str] = {
    "motorbike": "motorcycle",
    "aeroplane": "airplane",
    "sofa": "couch",
    "pottedplant": "potted plant",
    "diningtable": "dining table",
    "tvmonitor": "tv",
}

# What can be in the way of someone running backwards on a path, a pavement or
# a track. Small tabletop things (cups, phones) are left out on purpose.
DEFAULT_REAR_CLASSES: tuple[str, ...] = (
    "person", "bicycle", "car", "motorcycle", "bus", "truck", "dog", "cat",
    "horse", "bench", "chair", "fire hydrant", "stop sign", "parking meter",
    "potted plant", "traffic light", "suitcase", "skateboard", "sports ball",
    "umbrella",
)


def canonical(name: str) -> str:
    """The standard spelling of a class name, or KeyError if it is not COCO."""
    name = ALIASES.get(name.strip().lower(), name.strip().lower())
    if name not in COCO_CLASSES:
        raise KeyError(name)
    return name


def class_id(name: str) -> int:
    return COCO_CLASSES.index(canonical(name))
