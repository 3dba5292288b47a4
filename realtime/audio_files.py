"""The one audio reader and writer: list audio folders, read files at a model's rate, one resampler, one writer.

Policy, the same on every path (RAVE and MusicGen collection, concept finding, judges, renders, live, dashboard):

- a file the user named (`render --in`, `live --in`): `read_audio` raises a one-line `UserError` when it is
  unreadable or holds NaN/inf samples;
- a file found in a folder (`list_audio`): `read_mono` skips it with one line in `AudioNotes` (unreadable,
  NaN/inf, silent, too short) and the caller decides whether what is left is enough.

Every reader resamples with `resample` (scipy's polyphase filter) and mixes channels by their mean. Suffixes
are `AUDIO_EXTENSIONS` (what libsndfile reads); `UNREADABLE_AUDIO` files (.m4a, .aac, .wv, ...) are listed too, to be
skipped with a note that says to convert them; hidden files and folders (`._x.wav`, `.Trashes`) are not audio.
`realtime/` holds it because both `realtime/` (renders, the
live engine's file mode) and `training/` read audio, and imports only point from training to realtime.

`write_audio` is the one writer of the project (atomic, clipped to full scale, NaN/inf refused).
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.mpeg_frames import declares_length, mpeg_samples, past_id3
from sae.atomic import atomic_write
from sae.errors import UserError
from sae.paths import AUDIO_OUT

# what libsndfile reads (Apple's .caf and .aifc, Broadcast and 64-bit WAV, Sun/NeXT .au, Ogg audio, MPEG layer 2)
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".opus", ".mp3", ".aif", ".aiff", ".aifc", ".caf", ".w64", ".rf64", ".bwf",
                    ".wave", ".au", ".snd", ".oga", ".mp2")  # fmt: skip
# audio libsndfile cannot decode: listed, then skipped with a note (hunt 202: WavPack and Monkey's Audio left unsaid)
UNREADABLE_AUDIO = (".m4a", ".aac", ".wma", ".wv", ".ape", ".mka", ".webm", ".mp4")
UNCLOSED_BYTES = 1 << 16  # a file this large with no samples holds audio its header does not count
MIN_RATE = 1000  # Hz: below it a header is damaged (a 40 kB file at 1 Hz resampled to 8 GB at 44.1 kHz)
MAX_RATE = 768_000  # Hz: above it too (a byte-swapped 1152122880 Hz took 18 GB to resample, 2^31 Hz ended a collect)
SILENCE_PEAK = 1e-4  # below this peak amplitude a file counts as silent
MAX_PEAK = 1e3  # above this peak amplitude (+60 dBFS) a float file is no recording (1e30 rode through to the bank)


@dataclass
class AudioNotes:
    """What happened to the files of a folder: skipped ones (path, reason), resampled source rates, channel
    counts mixed to mono, and float files louder than full scale (path, peak in dBFS)."""

    skipped: list[tuple[str, str]] = field(default_factory=list)
    resampled: dict[int, int] = field(default_factory=dict)  # source rate -> number of files
    mixed: dict[int, int] = field(default_factory=dict)  # channels of a file mixed to mono -> number of files
    loud: list[tuple[str, float]] = field(default_factory=list)
    target_rate: int = 0
    as_mono: int = 0  # files read as mono for a model of more channels (it hears them alike on each)
    said: list[str] = field(default_factory=list)  # what else a reader says of the folder (`check_collect_folder`)

    def add(self, other: AudioNotes) -> None:
        """Count `other`'s files here too (another reading's notes, kept with what it read)."""
        self.skipped += other.skipped
        for mine, theirs in ((self.resampled, other.resampled), (self.mixed, other.mixed)):
            for k, n in theirs.items():
                mine[k] = mine.get(k, 0) + n
        self.loud += other.loud
        self.target_rate = other.target_rate or self.target_rate
        self.as_mono += other.as_mono
        self.said += [line for line in other.said if line not in self.said]

    def lines(self) -> list[str]:
        out = [*self.said]
        out += [
            f"resampled {n} file(s) from {sr} Hz to the model's {self.target_rate} Hz"
            for sr, n in sorted(self.resampled.items())
        ]
        out += [f"mixed {n} file(s) of {c} channels to mono" for c, n in sorted(self.mixed.items())]
        if self.loud:
            path, db = max(self.loud, key=lambda x: x[1])
            out.append(
                f"{len(self.loud)} file(s) peak above full scale (loudest {path}, {db:+.1f} dBFS): read as they are, "
                "louder than anything the model was trained on; normalise them if that is not meant"
            )
        return out + [f"skipped {path}: {why}" for path, why in self.skipped]  # last: collect quotes the last


def source_name(path: Path, root: Path) -> str:
    """A store's name for audio file `path` of `list_audio(root)`: its path under `audio_folder(root)`."""
    return path.relative_to(audio_folder(root)).as_posix()


def file_origin(path: Path) -> dict[str, int | str] | None:
    """What a store records of an audio file whose rows it holds (`ActivationWriter.set_origin`): its size, its
    times (modification and status change) and inode, and the sha256 of its bytes; None where it cannot be read (the
    reader says why). Taken before the file is read: a file rewritten meanwhile is then refused on the next run, not
    recorded as the new one."""
    from sae.bank import file_sha256

    try:
        st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or a device named x.wav: reading it blocked for good (hunt 202)
            return None
        return {**_stamp(st), "sha256": file_sha256(path)}
    except OSError:
        return None


def _stamp(st: os.stat_result) -> dict[str, int]:
    """What tells a file unchanged without reading it: a rewrite moves its status-change time even where its
    modification time is set back (`touch -d`, `cp -p`, archives with fixed times: hunt 177), as git's index does."""
    return {"bytes": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "inode": st.st_ino}


def file_change(path: Path, held: list[dict[str, int | str]]) -> tuple[str | None, dict[str, int], str | None]:
    """How the file at `path` differs from the origins (`file_origin`) stores recorded of it (`held`): another size,
    or other bytes where its times or inode moved (`_stamp`), else None; with its stamp and its sha256 where it was
    read. OSError where it cannot be read."""
    from sae.bank import file_sha256

    st = os.stat(path)
    stamp, digest = _stamp(st), None
    for o in held:
        if st.st_size != o["bytes"]:
            return f"{st.st_size} bytes, {o['bytes']} when collected", stamp, digest
        if any(o.get(k) != v for k, v in stamp.items()):
            digest = digest or file_sha256(path)
            if digest != o["sha256"]:
                return "other bytes of the same size", stamp, digest
    return None, stamp, digest


def refuse_changed(
    files: list[Path],
    root: Path,
    origins: list[dict[str, dict[str, int | str]]],
    store: object,
    moved_from: str | None = None,
) -> dict[str, dict[str, int | str]]:
    """UserError when files of `list_audio(root)` whose rows `store` holds changed since (a re-run took a re-rendered
    folder's clips as done by their names and kept the old rows, hunt 169): another size than an origin (`file_origin`)
    of any hook (`origins`: each hook's) recorded, or other bytes where its times or inode moved (`_stamp`). Returns the
    origins of files that moved over the same bytes (a copy), for the store to record: hashed once, not on every
    re-run. A file that cannot be read now is left to the reader's note. `moved_from`: the folder the store collected
    before, where `root` is taken as it moved (`sae.store.same_collect_settings`): a file of another size or bytes
    is then another folder's, not a changed one."""
    changed, moved = [], {}
    for path in files:
        source = source_name(path, root)
        try:
            why, stamp, digest = file_change(path, [o[source] for o in origins if source in o])
        except OSError:
            continue
        if why:
            changed.append((path, why))
        elif digest is not None:
            moved[source] = {**stamp, "sha256": digest}
    if changed:
        path, why = changed[0]
        more = f" (and {len(changed) - 1} more file(s))" if len(changed) > 1 else ""
        if moved_from is not None:
            raise UserError(
                f"audio {path}{more}: store {store} holds rows of another file of that name, from {moved_from} "
                f"({why}); collect this folder into another --out"
            )
        raise UserError(
            f"audio {path}{more}: changed since store {store} collected it ({why}); the store keeps the old rows: "
            "collect into a new --out folder, or put the file back"
        )
    return moved


def check_collect_folder(
    store: str | os.PathLike, kind: str, settings: dict[str, Any], files: list[Path], mine: list[Path], root: Path
) -> tuple[dict[str, dict[str, int | str]], str | None]:
    """Check a collect of folder `root` (`files`: all of `list_audio(root)`; `mine`: this rank's share) into
    `store`: the settings its `kind` rows were collected with (`sae.store.same_collect_settings`), and the files
    whose rows it holds (`refuse_changed`). A folder taken as the one recorded moved (that one gone) must hold every
    file stored, with the same bytes: a folder of other files was taken, its rows mixed with the old ones (hunt
    215); then its settings are recorded (after the check: a refused run rewrote them first, and the store refused
    its own folder back). Returns (origins of this rank's files that moved over the same bytes, for the writers to
    record; a note saying the folder was taken as moved, or None)."""
    from sae.store import kind_sources, record_collect_settings, same_collect_settings, stored_origins

    before = same_collect_settings(store, kind, settings, "audio")
    origins = stored_origins(store)
    if before is None:
        return refuse_changed(mine, root, origins, store), None
    present = list_audio(audio_folder(root), empty_ok=True) if root.is_file() else files  # one file of the folder
    if missing := sorted(kind_sources(store, kind) - {source_name(p, root) for p in present}):
        raise UserError(
            f"audio {audio_folder(root)}: store {store} was collected from {before}, which is gone, and this folder "
            f"lacks {len(missing)} of its files (first: {missing[0]}): another folder; collect it into another --out"
        )
    # every file's bytes, on each rank, once per move: a rank that checked its own share alone recorded the folder
    # another rank then refused, and the store refused its own folder back (hunt 219); a rank's writers record its own
    moved = refuse_changed(present, root, origins, store, before)
    record_collect_settings(store, kind, settings)
    note = (
        f"store {store} was collected from {before}: {audio_folder(root)} taken as that folder moved (it holds every "
        "file stored, with the same bytes)"
    )
    ours = {source_name(p, root) for p in mine}
    return {source: origin for source, origin in moved.items() if source in ours}, note


def audio_folder(root: Path) -> Path:
    """The folder a store's sources from `list_audio(root)` are named under (and the dashboard reads them from):
    `root`, or, when `root` is one file, the folder holding it."""
    return root.parent if root.is_file() else root


def list_audio(root: str | os.PathLike, what: str = "audio folder", empty_ok: bool = False) -> list[Path]:
    """Audio files under `root` (recursive, sorted; linked folders searched once, even in a loop; hidden entries
    such as macOS's `._x.wav` twins and `.Trashes` left out; a broken link and `UNREADABLE_AUDIO` are listed, for
    their note); UserError when there are none (unless `empty_ok`) and where a folder cannot be listed."""
    root = Path(root)
    if not root.exists():
        raise UserError(f"{what} {root}: no such folder")
    if root.is_file():
        return [root]
    files, seen = [], set()

    def unreadable(exc: OSError) -> None:  # os.walk skips a folder it cannot list without a word
        why = (exc.strerror or type(exc).__name__).lower()
        raise UserError(f"{what} {root}: cannot list {exc.filename} ({why}); fix its permissions or move it out")

    for folder, subfolders, names in os.walk(root, onerror=unreadable, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        files += [
            Path(folder) / n
            for n in names
            if not n.startswith(".") and Path(n).suffix.lower() in AUDIO_EXTENSIONS + UNREADABLE_AUDIO
        ]
    if not files and not empty_ok:
        raise UserError(f"{what} {root}: no audio files ({', '.join(AUDIO_EXTENSIONS)})")
    return sorted(files)


def list_sides(
    with_dir: str | os.PathLike,
    without_dir: str | os.PathLike,
    digest: Callable[[Path], tuple[str, bool]] | None = None,
    prints: SoundPrints | None = None,
) -> tuple[list[Path], list[Path]]:
    """The audio files of a concept's `--with` and `--without` folders (`list_audio`); UserError when a clip is on
    both sides (one folder inside the other, the same folder twice, a link)."""
    with_files, without_files = list_audio(with_dir, "--with folder"), list_audio(without_dir, "--without folder")
    digest = digest or audio_digests()  # each clip decoded once for the digests and once for the prints of every
    prints = prints or sound_prints()  # check (`digest`, `prints`: the caller's, shared)
    refuse_shared(with_files, without_files, "--with", "--without", digest, prints)
    for files, flag, folder in ((with_files, "--with", with_dir), (without_files, "--without", without_dir)):
        refuse_copies(files, f"{flag} {folder}", digest, prints)
    return with_files, without_files


def audio_digest(path: str | os.PathLike) -> tuple[str, bool]:
    """What a clip sounds like, as a sha256 of its samples at 16 bits with its rate and channel count (the same clip
    saved as FLAC, as WAV of another sample format, or as stereo of two equal channels is the same clip: by the
    file's bytes it passed as a clip with and without the concept, hunt 132), and whether `read_clip` skips it
    anyway (unreadable or silent: the file's bytes, or its path where even they cannot be read, are its digest)."""
    import hashlib

    from sae.bank import file_sha256

    loaded = _load(path)
    if isinstance(loaded, str):
        try:
            return file_sha256(path), True
        except OSError:  # no permission: `read_clip` skips it with its reason (one such clip ended the find)
            return f"unreadable:{os.path.realpath(path)}", True
    x, sr = loaded
    if x.shape[1] > 1 and (x == x[:, :1]).all():  # dual mono: what a mono model reads of the mono file
        x = x[:, :1]
    h = hashlib.sha256(f"{sr}:{x.shape[1]}:".encode())
    h.update(np.round(np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes())
    return h.hexdigest(), is_silent(x)


PRINT_SR = 16000
"""The rate of a clip's `sound_print` (an 8 kHz band: hi-hats over a loop tell two clips apart)."""
NEAR_COPY = 0.9999
"""The least correlation of two prints (`near_copies`) that are one recording saved two ways: a 24-bit master and
its 16-bit export read about 1 − 1e-9; a loop with and without quiet hi-hats 0.998 at an 8 kHz print, which was
refused by a bound of 0.995 (hunt 171)."""
LEVEL_DB = 0.5
"""The most two near copies' levels differ: a louder copy is another clip (a dynamics concept is one)."""


COARSE = 4
"""A `SoundPrint` keeps every `COARSE`th sample of the mid (a 2 kHz band): what the loose first pass of
`near_copies` compares. Whole prints are read again only for the clips it pairs up: held for every clip of a command,
they took 23 MB a three-minute stereo song (1.56 GB for 24 songs: hunt 202), the coarse ones 1.4 MB."""


@dataclass(frozen=True)
class SoundPrint:
    """A clip's first-pass print: its mid (channel mean) at `PRINT_SR`, zero mean, every `COARSE`th sample, over
    the mid's RMS (float16: a quiet clip keeps its digits), the mid's length at `PRINT_SR` and its RMS."""

    coarse: np.ndarray
    length: int
    rms: float


@dataclass(frozen=True)
class WholePrint:
    """A clip at `PRINT_SR`, zero mean: its mid (channel mean) and, for two or more channels, its side (the first
    two channels' half difference; None for mono), and the mid's RMS."""

    mid: np.ndarray
    side: np.ndarray | None
    rms: float


def whole_print(path: Path) -> WholePrint | None:
    """A clip's `WholePrint` (None: unreadable or silent, as `read_clip` skips it)."""
    loaded = _load(path)
    if isinstance(loaded, str) or is_silent(loaded[0]):
        return None
    x, sr = loaded
    mid = resample(x.mean(axis=1), sr, PRINT_SR)
    if not len(mid):
        return None
    side = resample((x[:, 0] - x[:, 1]) / 2, sr, PRINT_SR) if x.shape[1] > 1 else None
    mid = mid - mid.mean()
    return WholePrint(mid, side, float(np.sqrt(np.mean(mid.astype(np.float64) ** 2))))


def sound_print(path: Path) -> SoundPrint | None:
    """A clip's `SoundPrint` (None: unreadable or silent, as `read_clip` skips it)."""
    if (w := whole_print(path)) is None:
        return None
    coarse = w.mid[::COARSE] / w.rms if w.rms > 0 else w.mid[::COARSE]
    return SoundPrint(coarse.astype(np.float16), len(w.mid), w.rms)


class SoundPrints:
    """`sound_print` and `whole_print`, remembered per path: one for the checks of one command. Whole prints are
    read only for the clips the first pass pairs up (a loop's variations, 0.998 alike: read again for every check,
    a list_sides went from 2.8 s to 7.7 s, hunt 211), so a folder of songs holds its coarse prints alone."""

    def __init__(self) -> None:
        self.coarse = functools.cache(sound_print)
        self.whole = functools.cache(whole_print)

    def __call__(self, path: Path) -> SoundPrint | None:
        return self.coarse(path)


def sound_prints() -> SoundPrints:
    """A command's `SoundPrints`."""
    return SoundPrints()


def _same_recording(x: WholePrint, y: WholePrint) -> bool:
    """Whether two prints of lengths within 1 % are one recording saved two ways: the same level (within
    `LEVEL_DB`), mids correlated at least `NEAR_COPY`, and sides alike (both next to nothing, or correlated as
    much either way round: swapped channels are one recording; a stereo-width concept is not)."""
    if x.rms <= 0 or y.rms <= 0 or abs(20 * math.log10(x.rms / y.rms)) > LEVEL_DB:
        return False
    m = min(len(x.mid), len(y.mid))

    def corr(a: np.ndarray, b: np.ndarray) -> float:
        den = float(np.linalg.norm(a[:m]) * np.linalg.norm(b[:m]))
        return float(a[:m] @ b[:m]) / den if den > 0 else 0.0

    if corr(x.mid, y.mid) < NEAR_COPY:
        return False
    quiet = [
        s is None or float(np.mean(s[:m].astype(np.float64) ** 2)) < 1e-4 * p.rms**2
        for s, p in ((x.side, x), (y.side, y))
    ]
    if all(quiet):
        return True
    return not any(quiet) and abs(corr(x.side, y.side)) >= NEAR_COPY


def _rows(got: dict[Path, SoundPrint], paths: list[Path], m: int) -> np.ndarray:
    """Unit rows of the coarse mids of `paths`, cut at `m` samples at `PRINT_SR` (a loose first pass)."""
    z = np.stack([got[p].coarse[: -(-m // COARSE)] for p in paths]).astype(np.float64)
    return z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-30)


def near_copies(
    a: list[Path], b: list[Path] | None = None, prints: SoundPrints | None = None
) -> list[tuple[Path, Path]]:
    """Pairs (of `a`, of `b`; without `b`, of `a` twice) that are one recording saved two ways (`_same_recording`,
    of lengths within 1 %). `audio_digest` matches the samples exactly, so a 24-bit master and its 16-bit export, a
    48 kHz file and its 44.1 kHz export or swapped channels passed as two clips (hunt 169). `prints`: the command's
    remembered `sound_prints`. Candidates come from a matrix of coarse mids per length bucket (500 clips a side
    paired one by one took 24 s: hunt 171); only they are read again whole (`whole_print`)."""
    prints = prints or sound_prints()
    got = {p: x for p in _regular(a if b is None else [*a, *b]) if (x := prints(Path(p))) is not None}
    step = math.log(1.01)

    def buckets(paths: list[Path]) -> dict[int, list[Path]]:
        out: dict[int, list[Path]] = {}
        for p in paths:
            if p in got:
                out.setdefault(int(math.log(got[p].length) / step), []).append(p)
        return out

    left, right = buckets(a), buckets(b if b is not None else a)
    order = {p: i for i, p in enumerate(a)}
    pairs = []
    for k, ps in left.items():
        qs = [q for j in (k - 1, k, k + 1) for q in right.get(j, ())]
        if not qs:
            continue
        m = min(got[p].length for p in [*ps, *qs])

        close = _rows(got, ps, m) @ _rows(got, qs, m).T >= 0.99  # a loose first pass: the whole prints decide
        for i, j in zip(*np.nonzero(close), strict=True):
            p, q = ps[i], qs[j]
            if b is None and order[q] <= order[p]:
                continue
            x, y = got[p], got[q]
            if abs(x.length - y.length) > 0.01 * max(x.length, y.length):
                continue
            # read whole once per clip and command (an LRU of 16 read a loop's 24 variations again for every pair)
            wx, wy = prints.whole(Path(p)), prints.whole(Path(q))
            if wx is not None and wy is not None and _same_recording(wx, wy):
                pairs.append((p, q))
    return pairs


def audio_digests() -> Callable[[Path], tuple[str, bool]]:
    """`audio_digest`, remembered per path: one for the listings and checks of one command."""
    return functools.cache(audio_digest)


def refuse_copies(
    files: list[Path],
    where: str,
    digest: Callable[[Path], tuple[str, bool]] | None = None,
    prints: SoundPrints | None = None,
) -> None:
    """UserError when clips of one side are copies of each other (the same samples, `audio_digest`): twelve copies
    of one clip passed the twelve-clips rule, and folds that split them scored AUROC 1.00 from one clip a side.
    Copies that will be skipped anyway (silent, unreadable: two takes of nothing) are left to that."""
    digest = digest or audio_digests()
    first: dict[str, Path] = {}
    copies = []
    for p in _regular(files):
        d, skipped = digest(p)
        if d in first and not skipped:  # links to one file too: one clip under several names
            copies.append((first[d], p))
        first.setdefault(d, p)
    if copies:
        a, b = copies[0]
        raise UserError(f"{where}: {len(copies)} clip(s) are copies of (or links to) others there (e.g. {b.name} "
                        f"of {a.name}); keep one of each")  # fmt: skip
    if near := near_copies(files, None, prints):
        a, b = near[0]
        raise UserError(f"{where}: {len(near)} clip(s) are one recording saved another way as others there "
                        f"(another sample format, rate or channel order; e.g. {b.name} of {a.name}); keep "
                        "one of each")  # fmt: skip


def refuse_shared(
    a: list[Path],
    b: list[Path],
    a_flag: str,
    b_flag: str,
    digest: Callable[[Path], tuple[str, bool]] | None = None,
    prints: SoundPrints | None = None,
) -> None:
    """UserError when a clip of `a` is also in `b`: the same file under any name, or a copy (the same samples,
    `audio_digest`: `data make --copy` folders hold copies, which passed and trained a probe on one clip as both
    sides). A clip that will be skipped anyway (silent, unreadable) is left to that."""
    if not a or not b:
        return
    digest = digest or audio_digests()
    ours = {digest(p)[0] for p in _regular(a)}
    real = os.path.realpath  # Path.resolve raises on a link loop, which is skipped later with its note
    in_a = {real(p) for p in a}  # a link in both (a silent one hid a copy)
    # each clip of b once (by the file it is, named as given): the resolved matches beside the unresolved ones
    # counted every linked clip twice
    shared = {real(p): p for p in b if real(p) in in_a} | {real(p): p for p in _regular(b) if digest(p)[0] in ours}
    both = sorted(p for p in shared.values() if not digest(p)[1])
    if both:
        raise UserError(f"{len(both)} clip(s) are in both {a_flag} and {b_flag} (e.g. {both[0]})")
    if near := near_copies(a, b, prints):
        raise UserError(
            f"{len(near)} clip(s) of {b_flag} are one recording saved another way as clips of {a_flag} "
            f"(another sample format, rate or channel order; e.g. {near[0][1]} of {near[0][0]})"
        )


def _regular(paths: list[Path]) -> list[Path]:
    """The regular files among `paths` (the others are skipped later, with their reason)."""
    out = []
    for p in paths:
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.stat(p).st_mode):
                out.append(p)
    return out


def resample(audio: np.ndarray, sr: int, target: int, axis: int = 0) -> np.ndarray:
    """Polyphase resampling (scipy) from `sr` to `target` Hz along `axis`; float32."""
    if int(sr) == int(target):
        return np.asarray(audio, np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(sr), int(target))
    return resample_poly(audio, int(target) // g, int(sr) // g, axis=axis).astype(np.float32, copy=False)


@contextlib.contextmanager
def c_stderr_hushed() -> Iterator[None]:
    """Silence what C libraries write to file descriptor 2 meanwhile: FluidSynth (and libinstpatch under it) print
    their own lines for a damaged soundfont, libmpg123 its own for a damaged .mp3, before the one line that names
    it."""
    if sys.stderr is not None:
        sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # descriptor 2 closed (`2>&-`): nothing to hush (hunt 156: an AttributeError, exit 1, no line)
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


SIZE_WORDS = re.compile(r"^\s*(?:data|SSND|Riff size|riff|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.M)
"""libsndfile's words (`SoundFile.extra_info`) for a declared size that is not what the file holds: a WAV's `data`, an
AIFF's `SSND`, an RF64's `Riff size`, a W64's `riff`, an AU's `Data Size` (a WAV's `RIFF` counts chunks after the
samples too)."""
CUT_SHARE = 0.99
"""A file holding less than this share of what its header declares is refused as damaged (a writer that is off by a
few bytes is not)."""
MPEG_SLACK = 4 * 1152
"""Samples an MP3's frames hold beyond what a whole decode gives: encoder delay and padding (under two frames) and
the Xing frame, which holds no audio (`mpeg_samples`)."""
PLACEHOLDERS = (0xFFFFFFFF, 0x7FFFFFFF, 0x7FFFF000)
"""Sizes writers declare when they cannot know the length (ffmpeg to a pipe: 0xFFFFFFFF; espeak-ng --stdout:
0x7FFFF000), give or take a header: a file so declared is whole."""


UNDECLARED = re.compile(
    r"^\s*Length\s*:\s*(\d+)$.*^\s*data\s*:\s*(\d+)$.*(?:Unknown chunk marker (?:\(\w+\) )?at position (\d+)|"
    r": (\d+) \(unknown marker\))",
    re.M | re.S,
)
"""libsndfile's words for a WAV whose samples run on past the size its header declares (it reads the declared part)."""


def _undeclared(extra_info: str, path: str | os.PathLike) -> str | None:
    """Why a WAV holds samples its header does not count (a recorder that crashed between header updates, a WAV
    over 4 GiB whose 32-bit size wrapped: libsndfile read the declared second of 3 s, unsaid: hunt 202), or None.
    Bytes after the declared samples that are no chunk nor an ID3 tag a tagger appended (hunt 205), over 1 % of
    them (and 64 kB), are such samples."""
    m = UNDECLARED.search(extra_info or "")
    if m is None:
        return None
    length, data = int(m[1]), int(m[2])
    with open(path, "rb") as fh:
        if m[3] is not None:
            at = int(m[3])
        else:  # where bytes that read as a marker name follow, no position is said: after the declared samples
            head = fh.read(1 << 16)
            chunk = head.find(b"data" + data.to_bytes(4, "little"))
            at = chunk + 8 + data + (data & 1)
            if chunk < 0 or at + 8 + int(m[4]) <= length:  # a chunk of another name that fits (`id3 `, `_PMX`)
                return None
        fh.seek(max(0, at - 1))  # (after an odd-sized chunk libsndfile skips a pad byte a writer may have left out)
        head = fh.read(11)
    tag = head.find(b"ID3")
    after = length - at - (past_id3(head[tag:], 0) - (1 - tag) if 0 <= tag <= 1 else 0)  # (an ID3v1 tag: 128 bytes)
    if data == 0 or after <= max(0.01 * data, 8192):  # none declared: a recording never closed (`_load` says)
        return None
    return (f"its header declares {data} bytes of samples, {after} more bytes follow that are no chunk (a recording "
            "whose header was never updated?); read it whole with ffmpeg -ignore_length 1 -i IN OUT.wav")  # fmt: skip


def _cut_short(extra_info: str) -> str | None:
    """Why a file is cut short (its header declares more bytes than it holds: a copy or download that stopped), or
    None."""
    for m in SIZE_WORDS.finditer(extra_info or ""):
        declared, holds = int(m[1]), int(m[2])
        if holds < CUT_SHARE * declared and not any(abs(declared - p) <= 4096 for p in PLACEHOLDERS):
            return f"cut short: its header declares {declared} bytes, the file holds {holds} (a copy that stopped?)"
    return None


def _load(path: str | os.PathLike) -> tuple[np.ndarray, int] | str:
    """[frames, channels] float32 and the file's rate, or the reason the file cannot be used."""
    import soundfile as sf

    suffix = Path(path).suffix.lower()
    if suffix in UNREADABLE_AUDIO:
        return f"{suffix} is not a format libsndfile reads; convert it to .wav or .flac (e.g. ffmpeg -i IN OUT.wav)"
    try:  # a pipe named x.wav blocked the read forever
        special = os.path.exists(path) and not os.path.isdir(path) and not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        special = False
    if special:
        return "not a regular file (a pipe, socket or device)"
    try:  # the OS names a missing file, a folder or a permission problem; libsndfile says "System error"
        with open(path, "rb") as fh:
            head = fh.read(3)
    except OSError as exc:
        if isinstance(exc, IsADirectoryError):
            return "a folder, not an audio file"
        if isinstance(exc, FileNotFoundError):
            return "no such file (a broken link)" if Path(path).is_symlink() else "no such file"
        return (exc.strerror or type(exc).__name__).lower()
    try:  # the name's own bytes: soundfile encodes a str as strict UTF-8, which a Latin-1 name (café.wav) is not
        # libmpg123 speaks for itself; libsndfile picks it by the bytes, so an MP3 named .wav is one too
        mpeg = suffix == ".mp3" or head[:3] == b"ID3" or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0)
        with c_stderr_hushed() if mpeg else contextlib.nullcontext():
            opened = sf.SoundFile(os.fsencode(path))
        with opened:  # what its header declares (`_cut_short`, the frames), then its samples: one open
            declared, frames, sr = opened.extra_info, opened.frames, opened.samplerate
            in_mpeg = opened.subtype.startswith("MPEG")
            mpeg = mpeg or in_mpeg  # an MP3 in a WAV (hunt 178)
            with c_stderr_hushed() if mpeg else contextlib.nullcontext():
                data = opened.read(frames, dtype="float32", always_2d=True)  # as sf.read: what the header declares
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        why = getattr(exc, "error_string", None) or str(exc).strip() or type(exc).__name__
        if "does not exist" in why or "possibly a pipe" in why:  # libsndfile's words for bytes it cannot decode
            why = "damaged, or not the format its name says"  # the file is there: it was opened above
        return f"not a readable audio file ({why.splitlines()[0]})"
    if not MIN_RATE <= sr <= MAX_RATE:
        return f"sample rate {sr} Hz: expected audio at {MIN_RATE} to {MAX_RATE} Hz (a damaged header?)"
    if cut := _cut_short(declared) or _undeclared(declared, path):  # libsndfile reads what is declared (177, 202)
        return cut
    # an Ogg damaged midway decoded about half of itself (an MP3's frame count is an estimate, but where its Xing or
    # Info frame gives it: a download that stopped decoded half of itself, unsaid: hunt 202)
    if (not mpeg or (in_mpeg and declares_length(path))) and len(data) < CUT_SHARE * frames:
        if in_mpeg:
            return (f"cut short: decoded {len(data) / sr:.2f} s of the {frames / sr:.2f} s its Xing header declares "
                    "(a download that stopped?)")  # fmt: skip
        return f"damaged: decoded {len(data)} of the {frames} frames its header declares"
    # an MP3 in a WAV too (hunt 182); libsndfile stops at the length its first frame's bitrate or its Xing header
    # gives: a VBR MP3 without that header, or MP3s joined, decoded a fraction of themselves
    if in_mpeg and (held := mpeg_samples(path)) is not None and len(data) + MPEG_SLACK < held:
        return (
            f"decoded {len(data) / sr:.2f} s of the {held / sr:.2f} s its MPEG frames hold (libsndfile stops at the "
            "length its first frame or Xing header gives: a VBR MP3 without that header, or MP3s joined); convert it "
            "(e.g. ffmpeg -i IN OUT.wav)"
        )
    if not np.isfinite(data).all():
        return "contains NaN/inf samples"
    if data.size and (peak := float(np.abs(data).max())) > MAX_PEAK:  # finite, yet no recording: a broken export
        return f"samples up to {peak:.3g}: expected audio within ±{MAX_PEAK:g} (+{20 * math.log10(MAX_PEAK):.0f} dBFS)"
    size = os.path.getsize(path)
    if len(data) == 0 and size > UNCLOSED_BYTES:  # a recorder that died before it wrote the data size
        return (
            f"no samples in its header, yet {size} bytes on disk: a recording never closed? "
            "(ffmpeg -i IN OUT.wav reads it)"
        )
    return data, int(sr)


def read_audio(
    path: str | os.PathLike, sr: int | None = None, channels: int | None = None, what: str = "audio file"
) -> tuple[np.ndarray, int]:
    """A named file as float32 [frames, channels] and its rate: at `sr` when given (resampled), with `channels`
    when given (mixed to mono, then repeated, when the file has another count). One-line UserError when unusable."""
    loaded = _load(path)
    if isinstance(loaded, str):
        raise UserError(f"{what} {path}: {loaded}")
    data, file_sr = loaded
    if len(data) == 0:
        raise UserError(f"{what} {path}: no samples; expected audio")
    return conform(data, file_sr, sr, channels), int(sr if sr is not None else file_sr)


def conform(data: np.ndarray, file_sr: int, sr: int | None = None, channels: int | None = None) -> np.ndarray:
    """[frames, channels] audio at `sr` (resampled) with `channels` (mixed to mono, then repeated, when the count
    differs); either left as it is when None."""
    if channels is not None and data.shape[1] != channels:
        data = data.mean(axis=1, keepdims=True).repeat(channels, axis=1)
    if sr is not None and int(file_sr) != int(sr):
        data = resample(data, int(file_sr), int(sr), axis=0)
    return np.ascontiguousarray(data, dtype=np.float32)


def input_notes(
    path: str | os.PathLike,
    data: np.ndarray,
    file_sr: int,
    sr: int,
    channels: int,
    frame: int,
    model_channels: int | None = None,
    mid: bool = False,
) -> list[str]:
    """What `conform` will do to a model's input file, and what will make it sound like little: resampling, channels
    mixed, shorter than one model frame, silent (or silent once mixed: channels that cancel), louder than full scale.
    `channels`: what the file is conformed to (the device's); `model_channels`: the model's (default the same);
    `mid`: a mono model hears the mono mix of the channels (`live --stereo mid`)."""
    notes = []
    own = model_channels is None or model_channels == channels  # the model plays every channel itself
    if int(file_sr) != int(sr):
        notes.append(f"resampled {path} from {file_sr} Hz to the model's {sr} Hz")
    if data.shape[1] == 1 and channels > 1:
        sides = "both channels" if channels == 2 else f"all {channels} channels"
        sides += (" of the stereo model" if channels == 2 else " of the model") if own else " (a mono model on each)"
        notes.append(f"played mono {path} on {sides}")
    elif data.shape[1] != channels:
        to = f"mono, then {channels} channels, for the model" if channels > 1 and own else "mono"
        notes.append(f"mixed {data.shape[1]} channels of {path} to {to}")
    if len(data) * sr < frame * file_sr:
        notes.append(f"input {path} is shorter than one model frame ({frame} samples): little to hear")
    mixes = data.shape[1] != channels or (mid and not own)  # what the model hears is the channels' mono mix
    mixed = data.mean(axis=1) if mixes else data
    if is_silent(mixed):  # as a folder's reader counts it (16-bit rounding leaves sides that cancel ±1/2 LSB)
        cancel = mixes and not is_silent(data)
        offset = peak(mixed) >= SILENCE_PEAK
        notes.append(f"input {path} is {silent(data.shape[1], cancel, offset)}")
    top = peak(data)
    if top > 1.0:
        notes.append(
            f"input {path} peaks at {20 * math.log10(top):+.1f} dBFS (a float file above full scale): "
            "the model hears it as it is, louder than anything it was trained on"
        )
    return notes


def silent(channels: int, cancel: bool, offset: bool = False) -> str:
    """How a file whose mono mix is silent is described: plain silence, `channels` that cancel once mixed, or
    silence under a constant `offset` (DC: it has a level, yet nothing to hear)."""
    if cancel:
        return f"silent once its {channels} channels are mixed to mono: they cancel (one phase-inverted?)"
    return "silent apart from a constant offset (DC)" if offset else "silent"


def check_finite(audio: np.ndarray, what: str, sr: int) -> None:
    """Refuse model output holding NaN/inf in one line (frames on axis 0): a writer would turn it into full-scale
    noise or silence without a word, a judge into a traceback."""
    first, count = None, 0
    for start, chunk in _chunks(np.asarray(audio)):
        bad = ~np.isfinite(chunk)
        if bad.any():
            count += int(bad.sum())
            if first is None:
                first = start + int(np.flatnonzero(bad.reshape(len(bad), -1).any(axis=1))[0])
    if first is not None:
        raise UserError(
            f"{what}: {count} NaN/inf sample(s) in the model's output (the first at {first / sr:.2f} s); "
            "the model or SAE weights are broken (or overflowed), nothing written"
        )


WRITE_FORMATS = {suffix: "AIFF" if suffix == ".aif" else suffix[1:].upper() for suffix in AUDIO_OUT}
"""Suffix -> soundfile format of `write_audio`, for the suffixes `sae.paths.check_audio_out` accepts."""


WRITE_FRAMES = 1 << 16  # frames per write: libsndfile 1.2.2 hands Vorbis a whole call on the stack (50 s crashed)


def _chunks(audio: np.ndarray) -> Iterator[tuple[int, np.ndarray]]:
    """(start, frames) of `audio`, `WRITE_FRAMES` at a time: the writer and its checks make no copy of a whole take
    (an hour's, hunt 210)."""
    for start in range(0, len(audio), WRITE_FRAMES):
        yield start, audio[start : start + WRITE_FRAMES]


def write_audio(path: str | os.PathLike, audio: np.ndarray, sr: int) -> Path:
    """The one audio writer: float [frames] or [frames, channels], clipped to [-1, 1], written atomically as 16-bit
    PCM (WAV, FLAC, AIFF) or Vorbis (OGG) by the suffix. NaN/inf is refused in one line (`check_finite`) and
    nothing is written."""
    import soundfile as sf

    path = Path(path)
    fmt = WRITE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise UserError(f"{path}: suffix {path.suffix!r}; expected one of {', '.join(WRITE_FORMATS)}")
    audio = np.asarray(audio, dtype=np.float32)
    check_finite(audio, str(path), sr)
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = audio.shape[1] if audio.ndim > 1 else 1

    def write(tmp: Path) -> None:  # the temporary file's name says nothing of the format, hence `format=`
        with sf.SoundFile(os.fsencode(tmp), "w", sr, channels, format=fmt) as f:  # bytes: any file name
            for _, chunk in _chunks(audio):
                f.write(np.clip(chunk, -1.0, 1.0))

    atomic_write(path, write)
    return path


def peak(audio: np.ndarray) -> float:
    """The largest absolute sample of `audio` (0 for none), with no copy of it."""
    audio = np.asarray(audio)
    return max(float(audio.max(initial=0.0)), -float(audio.min(initial=0.0)))


def clipping_note(
    name: str, audio: np.ndarray, at_least: float = 0.001, source_peak: float | None = None
) -> str | None:
    """A note when at least `at_least` of `audio`'s samples lie past full scale (`write_audio` clips them): an edit
    strong enough to clip a quarter of a render wrote it with no word. `source_peak`: the input's `peak`, when its
    own peak past full scale is the likelier cause (a bypassed float file blamed the strength or gain)."""
    audio = np.asarray(audio)
    past = sum(int(np.count_nonzero(np.abs(chunk) > 1.0)) for _, chunk in _chunks(audio))
    share = past / audio.size if audio.size else 0.0
    if share < at_least:
        return None
    loud = source_peak is not None and source_peak > 1.0
    why = "the input is past full scale too: normalise it" if loud else "lower the strength or gain"
    return f"{name}: {100 * share:.1f} % of its samples were past full scale and clipped ({why})"


def is_silent(audio: np.ndarray) -> bool:
    """No sound in `audio` ([frames] or [frames, channels]): every sample within `SILENCE_PEAK` of its mean (DC is
    no sound). The rule `read_clip` skips a folder's file by."""
    if not np.size(audio):  # a header-only file: numpy warned "Mean of empty slice" past the quiet switch
        return True
    mean = audio.mean(axis=0)  # the largest distance from it, from the extremes: no copy of an hour's take
    return float(np.maximum(audio.max(axis=0) - mean, mean - audio.min(axis=0)).max(initial=0.0)) < SILENCE_PEAK


def read_mono(path: str | os.PathLike, sample_rate: int, notes: AudioNotes, min_samples: int = 1) -> np.ndarray | None:
    """A folder's file as mono float32 at `sample_rate`, or None (with a note) when unreadable / silent / short."""
    return read_clip(path, sample_rate, notes, min_samples)


def read_clip(
    path: str | os.PathLike, sample_rate: int, notes: AudioNotes, min_samples: int = 1, channels: int = 1
) -> np.ndarray | None:
    """A folder's file as float32 at `sample_rate` for a model of `channels`: a file of exactly that many channels
    (a stereo file for a stereo model) keeps them, [frames, channels]; any other is mixed to mono, [frames]. None
    (with a note) when unreadable / silent / short."""
    notes.target_rate = sample_rate
    loaded = _load(path)
    if isinstance(loaded, str):
        notes.skipped.append((str(path), loaded))
        return None
    data, file_sr = loaded
    audio = data if channels > 1 and data.shape[1] == channels else data.mean(axis=1)
    quiet = is_silent(audio)  # at the file's own rate, as `audio_digest`: a resampler's edge ripple made DC "sound"
    if file_sr != sample_rate:
        audio = resample(audio, file_sr, sample_rate, axis=0)
    if len(audio) < min_samples:
        at = f"{sample_rate} Hz" if file_sr == sample_rate else f"the model's {sample_rate} Hz, from {file_sr} Hz"
        notes.skipped.append((str(path), f"too short ({len(audio)} samples at {at}, need {min_samples})"))
        return None
    if quiet:
        cancel = audio.ndim == 1 and data.shape[1] > 1 and float(np.abs(data - data.mean(axis=0)).max()) >= SILENCE_PEAK
        offset = float(np.abs(audio).max(initial=0.0)) >= SILENCE_PEAK
        notes.skipped.append((str(path), silent(data.shape[1], cancel, offset)))
        return None
    if file_sr != sample_rate:  # counted among the files kept
        notes.resampled[file_sr] = notes.resampled.get(file_sr, 0) + 1
    if audio.ndim == 1 and data.shape[1] > 1:
        notes.mixed[data.shape[1]] = notes.mixed.get(data.shape[1], 0) + 1
    notes.as_mono += audio.ndim == 1 and channels > 1
    if (peak := float(np.abs(data).max(initial=0.0))) > 1.0:
        notes.loud.append((str(path), 20 * math.log10(peak)))
    return np.ascontiguousarray(audio, dtype=np.float32)
