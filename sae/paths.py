"""Output paths checked before any work starts: one line naming the path and what was expected, so a long job
never ends in a traceback at the moment it writes its result."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from pathlib import Path

from sae.errors import UserError

AUDIO_OUT = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def _names(suffixes: Sequence[str]) -> str:
    return ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}" if len(suffixes) > 1 else suffixes[0]


def _writable_parent(path: Path, what: str) -> None:
    """The nearest existing ancestor must be a folder we may write in (missing folders are created later)."""
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{what} {path}: {parent} is a file, not a folder")
    _can_create(parent, f"{what} {path}")


def _can_create(folder: Path, named: str) -> None:
    """A file can be made in `folder` (root passes `os.access` everywhere, and /proc, /sys or a read-only mount
    still refuse one, so one is made and dropped)."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UserError(f"{named}: cannot write in {folder} (permission denied)")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UserError(f"{named}: cannot create a file in {folder} ({exc.strerror})") from None


def _unexpanded(text: str, what: str) -> None:
    """A `~` the shell left as it is (quoted, or after `--out=`) is refused: it made a folder named `~` in the
    working folder, whose obvious clean-up (`rm -rf ~`) removes the home folder (hunt 217)."""
    if text.startswith("~") and (home := os.path.expanduser(text)) != text:
        raise UserError(f"{what} {text}: the shell did not expand '~' (quoted, or after '='); write {home}")


def check_output_file(path: str | Path, suffixes: Sequence[str], what: str = "--out") -> Path:
    """A file name to write: ends in one of `suffixes` (case-insensitive), is not a folder, can be created."""
    text = str(path)
    path = Path(path)
    expected = f"a file name ending in {_names(suffixes)}"
    if not text.strip():
        raise UserError(f"{what}: expected {expected}")
    _unexpanded(text, what)
    if path.is_dir():
        raise UserError(f"{what} {text}: is a folder; expected {expected}")
    if text.endswith(("/", os.sep)):
        raise UserError(f"{what} {text}: names a folder (it ends in /); expected {expected}")
    if path.suffix.lower() not in suffixes:
        got = f"suffix {path.suffix!r}" if path.suffix else "no suffix"
        raise UserError(f"{what} {text}: {got}; expected {expected}")
    _writable_parent(path, what)
    if path.is_symlink() and not (target := Path(os.path.realpath(path))).parent.is_dir():  # written through it
        raise UserError(f"{what} {text}: a link to {target}, whose folder {target.parent} does not exist")
    real = Path(os.path.realpath(path))
    if real.is_file() and not (bits := stat.S_IMODE(os.stat(real).st_mode)) & stat.S_IWUSR:  # `atomic_write` refuses
        raise UserError(f"{what} {text}: read-only (mode {bits:o}); chmod u+w it or choose another name")
    return path


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """A folder to write into: absent (created later) or an existing folder, somewhere writable."""
    text = str(path)
    path = Path(path)
    if not text.strip():
        raise UserError(f"{what}: expected a folder")
    _unexpanded(text, what)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {text}: exists and is a file; expected a folder")
    if path.is_symlink() and not path.exists():  # making the folder said only "File exists"
        raise UserError(f"{what} {text}: a link to {os.readlink(path)}, which is not there; expected a folder")
    if path.is_dir():
        _can_create(path, f"{what} {text}")
    else:
        _writable_parent(path, what)
    return path


def check_not_source(path: str | Path, source: str | Path, what: str, source_flag: str, hint: str) -> None:
    """An output that is one of the command's inputs (the same file under any name) is refused: writing it would
    destroy the input. `what` names the output flag, `source_flag` the input's, `hint` what to do instead."""
    path, source = Path(path), Path(source)
    if path.exists() and source.exists() and path.samefile(source):
        raise UserError(f"{what} {path}: it is {source_flag}; {hint}")


def check_not_inside(
    path: str | Path, sources: Sequence[tuple[str | Path | None, str]], hint: str, what: str = "--out"
) -> None:
    """An output inside one of the command's input folders (or that folder itself) is refused: what it writes would
    land among the inputs (renders read back as clips by the next run, figures beside an SAE's files). `sources`
    pairs each input (None: not given) with its flag."""
    out = Path(path).resolve()
    for source, flag in sources:
        if source is not None and str(source).strip() and out.is_relative_to(Path(source).resolve()):
            raise UserError(f"{what} {path}: inside {flag} {source}; {hint}")


def check_outside(
    out: str | Path, sources: Sequence[tuple[str | Path | None, str]], why: str, what: str = "--out"
) -> None:
    """An input inside the output folder `out` (which the command replaces) is refused, naming its flag; `sources`
    pairs each input (None: not given) with its flag, `why` says what becomes of `out`."""
    folder = Path(out).resolve()
    for source, flag in sources:
        if source is not None and str(source).strip() and Path(source).resolve().is_relative_to(folder):
            raise UserError(f"{flag} {source}: inside {what} {out}, {why}; move it or choose another {what}")


def check_audio_out(path: str | Path, what: str = "--out") -> Path:
    """An output audio file: `AUDIO_OUT` (what `realtime.audio_files.write_audio` writes)."""
    return check_output_file(path, AUDIO_OUT, what)
