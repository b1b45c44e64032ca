"""The tracker: identities across frames and gaps, and time to collision
from box growth (a straight line through 1/size, no lag)."""

from __future__ import annotations

import numpy as np
import pytest

from device.core.types import Detections
from device.perception.tracking import IouTracker, contact_time, without_group_duplicates
from fakes import dets, ns

W, H = 640, 360
F = 480.0  # focal length, px


def person_at(d: float, x_m: float = 0.0, foot_row: float | None = None) -> tuple[float, float, float, float]:
    """Box of a 1.7 m, 0.5 m wide person at distance d, x_m to the side."""
    h, w = F * 1.7 / d, F * 0.5 / d
    cx = W / 2 + F * x_m / d
    bottom = foot_row if foot_row is not None else H / 2 + F * 1.1 / d
    return (cx - w / 2, bottom - h, cx + w / 2, bottom)


def test_ttc_of_a_steady_approach_has_no_lag() -> None:
    tr = IouTracker()
    d0, v = 12.0, 3.0
    for i in range(16):  # 1 s at 15 fps
        t = i / 15
        (track,) = tr.update(ns(t), dets(person_at(d0 - v * t)))
    assert track.track_id == 1 and track.hits == 16
    ttc = track.ttc_s(ns(1.0), W, H)
    # True TTC at t = 1 s is (12 - 3) / 3 = 3 s. The old rate fit over the
    # window reported the window's middle, ~0.5 s late.
    assert ttc == pytest.approx(3.0, rel=0.02)
    rate = track.scale_rate(ns(1.0))
    assert rate is not None and 1 / rate > 3.3


def test_ttc_none_when_receding_or_still_and_false_when_too_short() -> None:
    tr = IouTracker()
    for i in range(10):
        (away,) = tr.update(ns(i / 10), dets(person_at(5.0 + 0.5 * i / 10)))
    assert away.ttc_s(ns(1.0), W, H) is None
    pts = [(ns(i / 10), 100.0) for i in range(10)]
    assert contact_time(pts, ns(0.9)) is None  # not growing
    assert contact_time(pts[:3], ns(0.2)) is False  # too few points to say


def test_width_is_used_while_the_height_is_cut_off() -> None:
    tr = IouTracker()
    d0, v = 3.0, 1.0
    for i in range(11):
        t = i / 10
        x1, y1, x2, y2 = person_at(d0 - v * t)
        (track,) = tr.update(ns(t), dets((x1, max(y1, 0.0), x2, min(y2, float(H)))))
    ttc, measure = track.ttc_estimate(ns(1.0), W, H)
    assert measure == "width"
    assert ttc == pytest.approx(2.0, rel=0.05)


def dog_at(d: float) -> tuple[float, float, float, float]:
    """Box of a 0.6 m tall, 0.9 m long dog side on at distance d, standing on
    the ground of person_at: its feet reach the frame's bottom edge at 2.9 m."""
    h, w = F * 0.6 / d, F * 0.9 / d
    bottom = H / 2 + F * 1.1 / d
    return (W / 2 - w / 2, bottom - h, W / 2 + w / 2, bottom)


def test_a_box_stopping_just_short_of_the_bottom_edge_is_cut_there() -> None:
    """The detector's box stops a few pixels short of an edge that cuts its
    object (geometry.NEAR_EDGE_FRAC): a dog coming at 1 m/s from 3.4 m
    reaches the bottom edge at 3.05 m, and from there its box ends 4 px
    above it, shorter each frame. Taken as whole, those heights said it had
    stopped growing (scenes dog-1mps: no WARN); the width says 2.4 s."""
    tr = IouTracker()
    for i in range(16):
        t = i / 15
        x1, y1, x2, y2 = dog_at(3.4 - 1.0 * t)
        (track,) = tr.update(ns(t), dets((x1, y1, x2, min(y2, H - 4.0))))
    ttc, measure = track.ttc_estimate(ns(1.0), W, H)
    assert measure == "width"
    assert ttc == pytest.approx(2.4, rel=0.1)


def test_once_the_bottom_edge_cuts_the_box_its_older_shape_has_no_veto() -> None:
    """A dog at 1 m/s from 4 m whose whole boxes changed shape (it was
    turning) gives no time to collision while they are whole. Once the
    newest box is cut its shape is not seen at all: the older boxes' shape
    says nothing of it, and the width, whole, says how it comes on (a width
    only carries a closing streak on, never starts one)."""

    def box_at(t: float) -> tuple[float, float, float, float]:
        x1, y1, x2, y2 = dog_at(4.0 - 1.0 * t)
        if y2 >= H - 20:  # the bottom edge cuts it
            return (x1, y1, x2, float(H))
        grow = 0.25 * (x2 - x1) * t  # whole, widening by its turn on top of the approach
        return (x1 - grow, y1, x2 + grow, y2)

    tr = IouTracker()
    for i in range(10):  # 0.6 s, every box whole
        (track,) = tr.update(ns(i / 15), dets(box_at(i / 15)))
    assert box_at(9 / 15)[3] < H - 20
    assert track.ttc_estimate(ns(1.0), W, H) == (None, None)
    for i in range(10, 16):  # then the edge cuts it
        (track,) = tr.update(ns(i / 15), dets(box_at(i / 15)))
    ttc, measure = track.ttc_estimate(ns(1.0), W, H)
    assert measure == "width" and ttc is not None and ttc < 4.0


def test_identity_survives_a_missed_frame_while_crossing() -> None:
    """A person crossing at 1.5 m/s, 3 m back, missed in two frames: the
    constant-velocity prediction still overlaps where the box reappears."""
    tr = IouTracker()
    ids = set()
    for i in range(12):
        t = i / 15
        if i in (6, 7):
            tr.update(ns(t), Detections.empty())
            continue
        (track,) = tr.update(ns(t), dets(person_at(3.0, x_m=-1.5 + 1.5 * t)))
        ids.add(track.track_id)
    assert ids == {1}


def test_two_people_crossing_keep_their_identities() -> None:
    tr = IouTracker()
    first: dict[int, float] = {}
    for i in range(20):
        t = i / 15
        a = person_at(6.0, x_m=-2.0 + 3.0 * t)
        b = person_at(6.5, x_m=2.0 - 3.0 * t)
        for track in tr.update(ns(t), dets(a, b)):
            first.setdefault(track.track_id, (track.box[0] + track.box[2]) / 2)
            last_x = (track.box[0] + track.box[2]) / 2
            # Each identity keeps moving in its own direction.
            assert (last_x - first[track.track_id]) * (1 if first[track.track_id] < W / 2 else -1) >= -1
    assert set(first) == {1, 2}


def test_a_box_that_changes_shape_is_not_looming() -> None:
    """Two neighbours merging into one box: it widens much faster than it
    grows taller. That is not an object coming closer."""
    tr = IouTracker()
    for i in range(12):
        t = i / 15
        x1, y1, x2, y2 = person_at(5.0)
        (track,) = tr.update(ns(t), dets((x1 - 40 * t, y1 - 6 * t, x2 + 40 * t, y2)))
    assert track.ttc_estimate(ns(0.8), W, H) == (None, None)


def test_new_identities_for_other_classes_and_after_a_long_gap() -> None:
    tr = IouTracker(max_gap_s=0.5)
    tr.update(0, dets((0, 0, 50, 100)))
    assert tr.update(ns(0.1), dets((0, 0, 50, 100), cls=2))[0].track_id == 2  # a person, then a car
    assert tr.update(ns(1.0), dets((0, 0, 50, 100), cls=2))[0].track_id == 3


PERSON, DOG, HORSE, CAR = 0, 16, 17, 2


def test_confusable_classes_continue_one_track_named_by_their_evidence() -> None:
    """The far dog at the pi4 pace: named person, dog, horse in turn from one
    result to the next. One track, whose hits grow, named by its summed scores."""
    tr = IouTracker()
    seq = [(PERSON, 0.39), (DOG, 0.65), (HORSE, 0.36), (DOG, 0.45), (PERSON, 0.42)]
    for i, (cls, score) in enumerate(seq):
        (track,) = tr.update(ns(0.13 * i), dets((300, 200, 320, 240 + i), cls=cls, score=score))
    assert track.track_id == 1 and track.hits == len(seq)
    assert track.class_id == DOG  # 1.10 against person 0.81 and horse 0.36
    # Far and swaying (no overlap): the centre match takes confusable classes too.
    far = IouTracker()
    far.update(0, dets((300, 200, 310, 220), cls=PERSON))
    (track,) = far.update(ns(0.13), dets((312, 201, 322, 221), cls=DOG))
    assert track.track_id == 1 and track.hits == 2


def test_a_class_outside_the_group_never_continues_it() -> None:
    tr = IouTracker()
    tr.update(0, dets((300, 200, 340, 240), cls=DOG))
    (track,) = tr.update(ns(0.13), dets((300, 200, 340, 240), cls=CAR))
    assert track.track_id == 2 and track.class_id == CAR


TRUCK, BUS, BICYCLE, MOTORCYCLE = 7, 5, 1, 3


def test_a_vehicle_named_car_and_truck_in_turn_keeps_one_track() -> None:
    """The Market Street car: named truck, car, truck from one result to the
    next (three tracks before). One track, named by its summed scores."""
    tr = IouTracker()
    for i, cls in enumerate([TRUCK, TRUCK, CAR, CAR, CAR, TRUCK, TRUCK, BUS]):
        (track,) = tr.update(ns(0.07 * i), dets((300, 100, 480, 230), cls=cls, score=0.5 + 0.01 * (cls == TRUCK)))
    assert track.track_id == 1 and track.hits == 8 and track.class_id == TRUCK
    bikes = IouTracker()
    for i, cls in enumerate([BICYCLE, MOTORCYCLE, BICYCLE]):
        (track,) = bikes.update(ns(0.13 * i), dets((450, 160, 480, 220), cls=cls))
    assert track.track_id == 1 and track.hits == 3


def test_one_object_named_twice_in_a_frame_is_one_detection_within_its_group() -> None:
    """The film's car at 2.5 s: a `car` box and a `truck` box around it in
    one frame; the weaker started a truck track of its own. Another group's
    box over it (a person before a car) is another object."""
    both = Detections(np.array([[262, 113, 477, 242], [254, 118, 479, 242], [300, 120, 340, 240]], np.float32),
                      np.array([0.43, 0.38, 0.6], np.float32), np.array([CAR, TRUCK, PERSON], np.int32))
    tracks = IouTracker().update(0, both)
    assert sorted(int(t.class_id) for t in tracks) == [PERSON, CAR]
    assert len(without_group_duplicates(both)) == 2
    # Same class overlapping is the detector's NMS's business: untouched.
    two = dets((100, 100, 200, 200), (110, 100, 210, 200))
    assert len(without_group_duplicates(two)) == 2
    # The people's group keeps both where the boxes are two shapes: a person
    # walking a dog, a rider on a horse (IoU 0.13 and 0.25 here).
    walker = Detections(np.array([[300, 120, 340, 240], [320, 200, 380, 240]], np.float32),
                        np.array([0.5, 0.6], np.float32), np.array([PERSON, DOG], np.int32))
    assert len(without_group_duplicates(walker)) == 2
    rider = Detections(np.array([[310, 100, 350, 200], [290, 130, 380, 240]], np.float32),
                       np.array([0.7, 0.6], np.float32), np.array([PERSON, HORSE], np.int32))
    assert len(without_group_duplicates(rider)) == 2


def test_a_dog_named_dog_and_person_at_once_keeps_one_track() -> None:
    """scenes dog-1mps at 3 m: a dog box and a person box over it (IoU 0.90)
    in one frame. The person box started a second track, which took the dog
    over from the first in the next frames (its box history restarted, and
    with it the closing streak): the dog went from warned to missed."""
    tr = IouTracker()
    for i in range(5):
        (track,) = tr.update(ns(0.07 * i), dets((309, 280 - i, 356, 358), cls=DOG, score=0.5))
    both = Detections(np.array([[309, 279, 356, 358], [308, 274, 357, 359]], np.float32),
                      np.array([0.51, 0.39], np.float32), np.array([DOG, PERSON], np.int32))
    assert [t.track_id for t in tr.update(ns(0.35), both)] == [track.track_id]
    assert len(tr.tracks) == 1 and track.class_scores.keys() == {DOG}
    # The better scored name stands for the object, whichever it is.
    assert int(without_group_duplicates(both).class_id[0]) == DOG
    swapped = Detections(both.xyxy, np.array([0.3, 0.39], np.float32), both.class_id)
    assert int(without_group_duplicates(swapped).class_id[0]) == PERSON


def test_a_size_step_restarts_the_size_history_a_loom_does_not() -> None:
    """vtest at 2.3 s: a far person's box (h 78) is taken over by a nearer
    person's box around it (h 135; IoU 0.34 passes the match). Fitted as
    growth, the step gave a TTC of 1.8 s at 8-9 m (issue 13)."""
    tr = IouTracker()
    t = 0.0
    for i in range(12):  # standing still, a stride's wobble
        t = i * 0.1
        h = 85.0 + (3.0 if i % 2 else -3.0)
        (track,) = tr.update(ns(t), dets((300, 240, 330, 240 + h)))
    (track,) = tr.update(ns(t + 0.1), dets((290, 176, 338, 310)))  # the nearer person
    assert track.size_jumps == 1 and len(track.boxes) == 1
    for k in range(2, 8):  # the nearer person, standing too: no growth, no TTC
        (track,) = tr.update(ns(t + 0.1 * k), dets((290, 176, 338, 310)))
    assert track.ttc_s(ns(1.0), 640, 360) is None
    # A real approach at 3 m/s from 10 m to 2 m at 15 fps is never cut.
    loom = IouTracker()
    for i in range(int(2.6 * 15)):
        d = 10.0 - 3.0 * i / 15
        h, w = 300 * 1.7 / d, 300 * 0.5 / d
        (track,) = loom.update(ns(i / 15), dets((320 - w / 2, 180 - h / 2, 320 + w / 2, 180 + h / 2)))
    assert track.size_jumps == 0
    assert track.ttc_s(ns(1.0), 640, 360) == pytest.approx(10.0 / 3.0 - (int(2.6 * 15) - 1) / 15, abs=0.1)


def test_the_detectors_box_offset_is_taken_off_the_heights_before_the_fit() -> None:
    # YOLOX-Nano's box is taller than its object by BOX_OFFSET_INPUT_PX of the model's
    # input (scripts/box_offset.py): at the built-in 416 letterbox, 1.1 input px,
    # 1.1 / 0.65 = 1.69 px of a 640x360 frame. A person closing at 6.5 m/s from
    # 22 m, boxes at 15 fps with that offset: taken off, the fit gives the true
    # time to collision; left on, it reads 3-4 % long at 50-60 px.
    from device.perception.tracking import BOX_OFFSET_INPUT_PX, box_offset_px

    class Yolox416:
        input_width, input_height, fill = 416, 416, "letterbox"

    off = box_offset_px(Yolox416(), W, H)
    assert off == pytest.approx(BOX_OFFSET_INPUT_PX[(416, 416, "letterbox")] * 640 / 416)
    d0, v = 22.0, 6.5
    tr = IouTracker()
    for i in range(16):
        t = i / 15
        x1, y1, x2, y2 = person_at(d0 - v * t)
        (track,) = tr.update(ns(t), dets((x1, y1 - off, x2, y2)), offset_px=off)
    truth = (d0 - v * 1.0) / v  # 2.38 s
    ttc, measure = track.ttc_estimate(ns(1.0), W, H)
    assert measure == "height"
    assert ttc == pytest.approx(truth, rel=0.01)
    # the same boxes with no offset declared: the fit reads long
    plain = IouTracker()
    for i in range(16):
        t = i / 15
        x1, y1, x2, y2 = person_at(d0 - v * t)
        (same,) = plain.update(ns(t), dets((x1, y1 - off, x2, y2)))
    assert same.ttc_s(ns(1.0), W, H) > truth * 1.025


def test_the_box_offset_follows_the_input_scale_and_the_lookahead_crop() -> None:
    from device.perception.tracking import BOX_OFFSET_INPUT_PX, box_offset_px

    class Stretch:
        input_width, input_height, fill = 320, 192, "stretch"

    class Lookahead:
        inner, instead = Stretch(), True

    class Unmeasured:
        input_width, input_height, fill = 512, 512, "letterbox"

    stretch = BOX_OFFSET_INPUT_PX[(320, 192, "stretch")]  # its own measured figure
    assert box_offset_px(Stretch(), W, H) == pytest.approx(stretch * 360 / 192)
    # a result detected on a 256x144 crop alone is at the crop's scale
    assert box_offset_px(Lookahead(), W, H, (192, 100, 448, 244)) == pytest.approx(stretch * 144 / 192)
    # an input not measured, or a detector of unknown input: nothing taken off
    assert box_offset_px(Unmeasured(), W, H) == 0.0
    assert box_offset_px(object(), W, H) == 0.0
