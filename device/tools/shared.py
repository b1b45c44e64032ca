"""The development materials (../shared beside the checkout: the footage,
the photos, the HC-SR04 log), for defaults of the developer tools."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]  # device/tools/shared.py -> the checkout


def shared_file(*parts: str) -> Path | None:
    """A file or folder in ../shared, looked for next to the working
    directory and next to this checkout; None if absent."""
    for root in (Path.cwd().parent, REPO.parent):
        p = root.joinpath("shared", *parts)
        if p.exists():
            return p
    return None
