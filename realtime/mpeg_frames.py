"""How many samples an MP3's frames hold, counted from their headers (ISO 11172-3 / 13818-3), not decoded.

libsndfile (through libmpg123) takes an MP3's length from its Xing/Info header, or, without one, estimates it from
the first frame's bitrate: a VBR file without that header decodes a fraction of itself, without a word (hunt 178).
Walking the frame headers gives the length every decoder plays.
"""

from __future__ import annotations

import os

_KBPS = {  # bitrate index 1..14 in kbit/s, by (MPEG-1, layer)
    (True, 1): (32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version: 1, 2, 2.5
_SYNC_SEARCH = 1 << 16
"""How far past the ID3 tag the first frame is looked for (encoders' padding, a stray byte)."""


def frame_header(head: bytes) -> tuple[int, int] | None:
    """(bytes, samples) of the frame whose 4-byte header is `head`; None where it is no frame header (free-format
    bitrate, which gives no length, included)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version, layer = (head[1] >> 3) & 3, 4 - ((head[1] >> 1) & 3)
    bitrate, rate, pad = head[2] >> 4, (head[2] >> 2) & 3, (head[2] >> 1) & 1
    if version == 1 or layer == 4 or bitrate in (0, 15) or rate == 3:
        return None
    mpeg1 = version == 3
    bps, sr = 1000 * _KBPS[(mpeg1, layer)][bitrate - 1], _RATES[version][rate]
    if layer == 1:
        return 4 * (12 * bps // sr + pad), 384
    samples = 1152 if layer == 2 or mpeg1 else 576
    return samples // 8 * bps // sr + pad, samples


def mpeg_samples(path: str | os.PathLike) -> int | None:
    """The samples (per channel, encoder delay and padding included) the MPEG audio frames of file `path` hold,
    from the first two frames in a row after any ID3v2 tag to the first byte that is no frame or ID3v2 tag (an ID3v1
    or APE tag, the end); None where no frame is found."""
    with open(path, "rb") as fh:
        data = fh.read()
    if (i := _first_frame(data)) is None:
        return None
    samples = 0
    while True:
        i = past_id3(data, i)  # MP3s joined, each with its tag (hunt 182)
        frame = frame_header(data[i : i + 4])
        if frame is None or i + frame[0] > len(data):
            return samples
        i += frame[0]
        samples += frame[1]


def declares_length(path: str | os.PathLike) -> bool:
    """Whether the first MPEG frame of file `path` is a Xing or Info frame, whose frame count libsndfile takes as
    the length: exact, so a file that decodes less was cut short (a download that stopped: hunt 202)."""
    with open(path, "rb") as fh:
        fh.seek(past_id3(fh.read(10), 0))  # past an ID3 tag of any size (cover art: megabytes; hunt 205)
        data = fh.read(_SYNC_SEARCH + 8192)  # the first frame is looked for this far (and a frame is under 8 kB)
    if (i := _first_frame(data)) is None:
        return False
    size = frame_header(data[i : i + 4])[0]
    return b"Xing" in data[i + 4 : i + size] or b"Info" in data[i + 4 : i + size]


def _first_frame(data: bytes) -> int | None:
    """Where the first of two MPEG frames in a row starts, after any ID3v2 tag (None: no frame within reach)."""
    start = past_id3(data, 0)
    i = data.find(b"\xff", start)
    while 0 <= i < start + _SYNC_SEARCH:
        first = frame_header(data[i : i + 4])
        if first and frame_header(data[i + first[0] : i + first[0] + 4]):
            return i
        i = data.find(b"\xff", i + 1)
    return None


def past_id3(data: bytes, at: int) -> int:
    """Where the ID3v2 tag at `at` ends (a synchsafe size, and a footer where flag 0x10 says so); `at` where none."""
    if data[at : at + 3] != b"ID3" or len(data) < at + 10:
        return at
    size = 0
    for byte in data[at + 6 : at + 10]:
        size = size << 7 | byte & 0x7F
    return at + 10 + size + (10 if data[at + 5] & 0x10 else 0)
