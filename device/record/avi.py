"""An MJPG AVI writer that takes frames already encoded as JPEG.

An incident clip copies its frames out of the ring's segments, whose
video.avi already holds each frame as a complete JPEG. OpenCV's writer only
takes pixels, so copying through it decoded and re-encoded every frame: a
second of CPU for a few frames on a Pi, a generation of JPEG loss, and the
decoder's and encoder's buffers in the clip writer's thread, resident while
a clip is written (the peaks of the memory soak, docs/performance.md). PyAV
(av 19) can mux encoded packets, but it is FFmpeg's libraries in a wheel
(tens of MB) to lock and install on a Zero for what is a fixed header, one
chunk a frame and an index, written next to the reader that already walks
this very layout (format._index_avi). This
writes the same container OpenCV's writer does (RIFF 'AVI ', one MJPG
video stream, the frames as '00dc' chunks in 'movi', an 'idx1' index), one
chunk at a time, so a clip never holds more than one frame.

Like OpenCV's, the sizes in the headers are 0 until `close` patches them,
so a file cut by a kill reads as "not closed" and its complete frames are
still found (format._index_avi walks the chunks).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

AVIF_HASINDEX = 0x10
AVIIF_KEYFRAME = 0x10
_AVIH = "<IIIIIIIIII16x"  # 56 bytes
_STRH = "<4s4sIHHIIIIIIII4H"  # 56 bytes
_STRF = "<IiiHH4sIiiII"  # BITMAPINFOHEADER, 40 bytes


class MjpegAviWriter:
    """Writes JPEG frames, unchanged, into an MJPG AVI at `path`."""

    def __init__(self, path: Path, *, width: int, height: int, fps: int) -> None:
        self._f: BinaryIO = path.open("wb")
        self._fps = fps
        self._width, self._height = width, height
        self._index: list[tuple[int, int]] = []  # (offset from 'movi', size): 8 bytes a frame
        self._largest = 0
        self._closed = False
        strl = self._list(b"strl", self._chunk(b"strh", self._strh(0)) + self._chunk(b"strf", self._strf()))
        hdrl = self._list(b"hdrl", self._chunk(b"avih", self._avih(0)) + strl)
        self._f.write(b"RIFF" + struct.pack("<I", 0) + b"AVI " + hdrl)
        self._movi = self._f.tell()  # the 'LIST' of movi; its size is patched at close
        self._f.write(b"LIST" + struct.pack("<I", 0) + b"movi")
        # where the counts sit, for close
        self._avih_at = 12 + 12 + 8  # RIFF hdr, LIST hdrl hdr, 'avih' + size
        self._strh_at = self._avih_at + 56 + 12 + 8  # avih, LIST strl hdr, 'strh' + size

    @staticmethod
    def _chunk(cid: bytes, data: bytes) -> bytes:
        return cid + struct.pack("<I", len(data)) + data + b"\0" * (len(data) & 1)

    @staticmethod
    def _list(kind: bytes, data: bytes) -> bytes:
        return b"LIST" + struct.pack("<I", 4 + len(data)) + kind + data

    def _avih(self, frames: int) -> bytes:
        return struct.pack(_AVIH, round(1e6 / self._fps), 0, 0, AVIF_HASINDEX, frames, 0, 1,
                           self._largest, self._width, self._height)

    def _strh(self, frames: int) -> bytes:
        return struct.pack(_STRH, b"vids", b"MJPG", 0, 0, 0, 0, 1, self._fps, 0, frames,
                           self._largest, 0xFFFFFFFF, 0, 0, 0, self._width, self._height)

    def _strf(self) -> bytes:
        return struct.pack(_STRF, 40, self._width, self._height, 1, 24, b"MJPG",
                           self._width * self._height * 3, 0, 0, 0, 0)

    def write(self, jpeg: bytes) -> None:
        """One frame: a complete JPEG, written as it is."""
        if self._closed:
            raise ValueError("the AVI writer is closed")
        at = self._f.tell()
        self._f.write(self._chunk(b"00dc", jpeg))
        self._index.append((at - self._movi - 8, len(jpeg)))
        self._largest = max(self._largest, len(jpeg))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        f = self._f
        try:
            end = f.tell()
            f.write(b"idx1" + struct.pack("<I", 16 * len(self._index)))
            f.write(b"".join(struct.pack("<4sIII", b"00dc", AVIIF_KEYFRAME, off, size) for off, size in self._index))
            total = f.tell()
            f.seek(4)
            f.write(struct.pack("<I", total - 8))
            f.seek(self._movi + 4)
            f.write(struct.pack("<I", end - self._movi - 8))
            f.seek(self._avih_at)
            f.write(self._avih(len(self._index)))
            f.seek(self._strh_at)
            f.write(self._strh(len(self._index)))
        finally:
            f.close()
