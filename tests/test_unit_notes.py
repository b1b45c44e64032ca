"""Choices the installed unit's sandbox undoes are said at start (issue 23)."""

from __future__ import annotations

from device.app.unit_notes import unit_notes

UNIT = {"INVOCATION_ID": "0123abcd"}


def test_recording_under_tmp_and_a_preview_for_every_interface_are_said_under_systemd() -> None:
    notes = unit_notes("/tmp/rec", ("0.0.0.0", 8080), UNIT)
    assert len(notes) == 2
    assert "PrivateTmp=yes" in notes[0] and "/tmp/rec" in notes[0]
    assert "IPAddressDeny=any" in notes[1] and "0.0.0.0:8080" in notes[1]
    assert unit_notes("/var/tmp/x/../rec", ("::", 8080), UNIT)[0].startswith("recording into")
    assert len(unit_notes("/var/tmp/rec", ("::", 8080), UNIT)) == 2


def test_nothing_to_say_where_the_sandbox_changes_nothing() -> None:
    assert unit_notes("/tmp/rec", ("0.0.0.0", 8080), {}) == []  # from a terminal: no sandbox
    assert unit_notes("/var/lib/rearguard/rec", ("127.0.0.1", 8080), UNIT) == []
    assert unit_notes("/tmpfoo/rec", ("localhost", 8080), UNIT) == []
    assert unit_notes(None, ("::1", 8080), UNIT) == []

