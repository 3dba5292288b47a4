"""One atomic write for every file the project writes that a reader or a resumed job trusts.

A temporary file beside the target (same folder, so one rename replaces it) is filled, optionally fsynced, and
renamed over the target: readers never see half a file, and a failed write leaves the old file and no temporary
one (a killed process does leave its temporary file: `remove_leftovers` clears those when the job resumes). The
file gets the permissions a plain `open(path, "w")` would give (the umask applies). Torch-free (the CLI parser
imports modules that write files).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
import hashlib
import os
import re
import resource
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from sae.errors import UserError

NAME_MAX = 255
"""The longest file name, in bytes, of Linux's file systems (and macOS's)."""


def temp_stem(name: str, room: int = len(".XXXXXXXX.tmp") + 1) -> str:
    """The NAME of a temporary file's name for a file called `name`: `name` itself where the temporary name fits
    NAME_MAX bytes, else its start and a hash of the whole (a 250-byte output name is a name a user may give)."""
    raw = os.fsencode(name)  # the name's bytes, which need not be UTF-8 (Python holds the others as surrogates)
    if len(raw) + room <= NAME_MAX:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:8]
    return f"{os.fsdecode(raw[: NAME_MAX - room - len(digest) - 1])}~{digest}"


def temp_beside(path: Path) -> str:
    """A new empty file `.NAME.XXXXXXXX.tmp` beside `path` (NAME: `temp_stem`), created with the mode a plain
    open gives (for writes whose final name is chosen later, e.g. a store's shards)."""
    stem = temp_stem(path.name)
    for _ in range(100):
        tmp = path.with_name(f".{stem}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return str(tmp)
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


TEMP_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{8}\.tmp")
"""`temp_beside`'s names: `.NAME.XXXXXXXX.tmp`, NAME the file being written."""


def remove_leftovers(path: str | Path) -> int:
    """Remove the temporary files (`temp_beside`'s names) that writers of `path` killed mid-write left beside it,
    as a resumed job does before it writes `path` again; returns how many."""
    path = Path(path)
    stem = temp_stem(path.name)
    return _remove(p for p in path.parent.glob(f".{glob.escape(stem)}.*.tmp") if _written(p) == stem)


def remove_folder_leftovers(folder: str | Path) -> int:
    """`remove_leftovers` for every file of `folder` (not below it): what a job that holds the folder clears on
    resume; returns how many."""
    return _remove(p for p in Path(folder).glob(".*.tmp") if _written(p) is not None)


def _written(tmp: Path) -> str | None:
    """The name of the file `tmp` was writing (None: not a `temp_beside` name)."""
    m = TEMP_NAME.fullmatch(tmp.name)
    return m["name"] if m else None


def _remove(paths: Iterable[Path]) -> int:
    removed = 0
    for p in list(paths):
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed += 1
    return removed


@contextlib.contextmanager
def flocked(path: Path, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive flock on the lock file `path` (made if missing); `wait=False` raises BlockingIOError while
    another holds it. A lock file unlinked or replaced between our open and our flock (a failed job removes the lock
    file of a folder it made) is opened again: a lock on an unlinked file excludes nobody who opens the path."""
    while True:
        fh = open(path, "a")  # noqa: SIM115 (closed below, or on leaving)
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            try:
                same = os.path.samestat(os.fstat(fh.fileno()), os.stat(path))
            except FileNotFoundError:
                same = False
        except BaseException:
            fh.close()
            raise
        if same:
            break
        fh.close()
    key = os.path.realpath(path)
    _HELD_HERE[key] = _HELD_HERE.get(key, 0) + 1
    with fh:
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
            _HELD_HERE[key] -= 1


_HELD_HERE: dict[str, int] = {}
"""The lock files this process holds (`flocked`), by real path: `held` tells another job's lock from its own."""


def held(path: Path) -> bool:
    """Whether another job (not this process) holds the lock file `path` now (`flocked`); False where there is
    none. Read from the kernel's table of locks (/proc/locks) where there is one: a probe that takes the lock for a
    moment refused a job starting at that moment (hunt 208)."""
    if _HELD_HERE.get(os.path.realpath(path)):
        return False
    try:
        st = os.stat(path)
        with open("/proc/locks") as fh:
            table = fh.read()
    except FileNotFoundError:  # the lock file is not there (nobody holds it), or no /proc: the probe below
        if not os.path.exists(path):
            return False
        table = None
    if table is not None:
        here = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        return any(line.split()[1:2] == ["FLOCK"] and here in line.split()[5:6] for line in table.splitlines())
    try:
        with open(path, "rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


@contextlib.contextmanager
def sole_writer(folder: str | Path, what: str, name: str = ".lock", flag: str = "--out") -> Iterator[None]:
    """Hold `folder`'s lock file `name` (created with the folder) for one job writing there: a second job started
    on the same folder meanwhile is refused in one line instead of interleaving its files with the first's. The
    lock is the kernel's (flock), so a killed job never leaves it held. A job that fails having written nothing
    removes the folders it made, lock and all. `flag` is the option the error tells the user to change."""
    folder = Path(folder)
    made = [p for p in (folder, *folder.parents) if not p.exists()]  # deepest first
    folder.mkdir(parents=True, exist_ok=True)
    try:
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(flocked(folder / name, wait=False))
            except BlockingIOError:  # refused: the folder is the job's that holds the lock, even one this one made
                made = []  # (two started at once: the refused one removed the winner's lock file: hunt 206)
                msg = f"{folder}: another {what} is writing there now; wait for it or use another {flag}"
                raise UserError(msg) from None
            yield
    except BaseException:
        if made:  # a job that failed before writing anything leaves no folder of its own behind
            with contextlib.suppress(OSError):
                if [p.name for p in folder.iterdir()] == [name]:
                    (folder / name).unlink()
                for p in made:
                    p.rmdir()  # stops at the first that is not empty
        raise


def flush_standard_streams() -> None:
    """Flush standard output and error before `os._exit` or `os.execv`, which skip Python's own flush: a stream
    closed at start (`>&-`: None) or one that fails is passed over (hunt 217: `sae train --nproc 2 >&-` ended each
    rank in a traceback after its SAE was written)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            if stream is not None:
                stream.flush()


# A write that fails for want of room or of permission (the CLI prints these errors as one line).
WRITE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM)
FREE_BYTES_LOW = 1 << 20


def _size_limit(exc: OSError) -> str:
    """`exc`'s words, and for a file too large the limit `ulimit -f` set, where one is set."""
    said = exc.strerror or os.strerror(exc.errno)
    limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    if exc.errno == errno.EFBIG and limit != resource.RLIM_INFINITY:
        return f"{said} (the file size limit, ulimit -f, is {limit} bytes)"
    return said


def _probe(tmp: str | Path) -> OSError | None:
    """The error a little more written to the temporary file `tmp` meets, where it is one of `WRITE_ERRNOS` (a
    quota, a size limit: what a library's own error hid), else None."""
    try:
        with open(tmp, "ab") as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as probe:
        return probe if probe.errno in WRITE_ERRNOS else None
    return None


def write_failure(path: str | Path, exc: BaseException, tmp: str | Path | None = None) -> OSError | None:
    """The OSError, naming `path`, of a write that failed because its folder is full or not writable, a quota or
    the file size limit (`ulimit -f`) was reached, or a folder stands where the file goes (the rename's error named
    the temporary file); None for any other failure. torch, safetensors and libsndfile turn these into their own
    errors ("System error.", "unexpected pos", "File too large (os error 27)"): such an error is taken as one where
    a little more written to the temporary file `tmp` (given before it goes) meets it, or where the folder has under
    1 MiB free (hunt 217: a size limit or a quota with room on the disk was a library's traceback)."""
    if isinstance(exc, OSError) and exc.errno == errno.EISDIR and Path(path).is_dir():  # the rename named the temp
        return OSError(exc.errno, "a folder is there, where this file goes", str(path))
    if isinstance(exc, OSError):
        if exc.errno not in WRITE_ERRNOS:
            return None
        return OSError(exc.errno, _size_limit(exc), str(path))
    if not isinstance(exc, Exception) or isinstance(exc, UserError):
        return None
    if tmp is not None and os.path.isfile(tmp) and (probe := _probe(tmp)) is not None:
        return OSError(probe.errno, f"{_size_limit(probe)} ({exc})", str(path))
    try:
        st = os.statvfs(Path(path).parent)
    except OSError:
        return None
    if st.f_bavail * st.f_frsize < FREE_BYTES_LOW:
        return OSError(errno.ENOSPC, f"{os.strerror(errno.ENOSPC)} ({exc})", str(path))
    if st.f_flag & os.ST_RDONLY:
        return OSError(errno.EROFS, f"{os.strerror(errno.EROFS)} ({exc})", str(path))
    return None


def atomic_write(path: str | Path, write: Callable[[str], object], fsync: bool = False) -> None:
    """`write(tmp)` fills a temporary file beside `path`, which then replaces `path` in one rename.

    Args:
        path: the file to write.
        write: writes the whole content to the path it is given (it may open it afresh).
        fsync: flush the bytes to the disk before the rename, so that a crash of the machine (not only of the
            process) leaves the old file or the new one.
    """
    path = Path(path)
    if path.is_symlink():  # a link to a shared bank or model: written through, not replaced by a plain file
        path = path.resolve()
    if path.is_file() and not (bits := stat.S_IMODE(os.stat(path).st_mode)) & stat.S_IWUSR:  # replaced all the same
        raise UserError(f"{path}: read-only (mode {bits:o}); chmod u+w it to let this change it")
    tmp = None
    try:
        tmp = temp_beside(path)
        # the file's own mode where it exists (a private bank stayed 0600, not 0644 after a save), else a plain
        # open's: a writer that makes its own file gets it back (safetensors: 0600)
        mode = stat.S_IMODE(os.stat(path if path.is_file() else tmp).st_mode) & 0o777 | 0o600  # owner reads, writes
        write(tmp)
        os.chmod(tmp, mode)
        if fsync:
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        failure = write_failure(path, exc, tmp)  # before the temporary file goes: it may be what filled the disk
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if failure is not None:
            raise failure from None
        raise


def atomic_write_text(path: str | Path, text: str, fsync: bool = False) -> None:
    """`text` (UTF-8, newlines as given) written atomically to `path`."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)

    atomic_write(path, write, fsync)


def through_handle(save: Callable[[BinaryIO], object]) -> Callable[[str], None]:
    """An `atomic_write` writer that hands `save` an open file instead of the temporary file's name: torch names
    the archive inside its zip after the file it is given (`torch.save`, `torch.jit.save`), so the random temporary
    name made two saves of one object differ in bytes, and a model rebuilt from the same seed got another sha256
    (its stores and banks then refused it as another model)."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            save(fh)

    return write


def atomic_torch_save(obj: object, path: str | Path) -> None:
    """`torch.save(obj)` written atomically to `path`, on the disk before the rename: a checkpoint replaces the last
    good one, and a machine that crashes just after must not find it empty (XFS, ext4 with noauto_da_alloc)."""
    import torch

    atomic_write(path, through_handle(lambda fh: torch.save(obj, fh)), fsync=True)


def new_folder_beside(out: Path) -> tuple[Path, int]:
    """An empty folder `.NAME.new.XXXXXXXX` beside `out` with the mode a plain mkdir gives, to fill and then
    `replace_folder` into place, and an open descriptor holding its lock (close it to let go). The folder is made
    as `.NAME.new.XXXXXXXX.claim`, locked, then renamed, so a folder of the new name whose lock is free is a dead
    writer's (`remove_stale_folders`), whatever its age."""
    out.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        tmp = Path(tempfile_name(out, "new"))
        claim = tmp.with_name(tmp.name + CLAIM)
        try:
            os.mkdir(claim)
        except FileExistsError:
            continue
        fd = os.open(claim, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)  # the lock is the folder's (its inode's), so it goes along with the rename
        if os.path.lexists(tmp):  # another writer's name (a rename would replace an empty folder)
            os.rmdir(claim)
            os.close(fd)
            continue
        os.rename(claim, tmp)
        return tmp, fd
    raise FileExistsError(f"{out.parent}: no free temporary name for {out.name}")


CLAIM = ".claim"
"""The suffix of a new folder between its making and its lock (`new_folder_beside`)."""
STALE_AGE = 10.0
"""Seconds: a `.claim` folder younger than this may be one whose writer has not locked it yet."""


def remove_stale_folders(out: Path) -> int:
    """Remove the `.NAME.new.*` / `.NAME.old.*` folders beside `out` that writers killed mid-way left (a living
    `folder_replacing` holds a lock on its folder, so only the dead's are taken, as soon as they die); returns how
    many."""
    stem = _folder_stem(out.name, "new")  # "old" is as long
    pattern = re.compile(rf"\.{re.escape(stem)}\.(new|old)\.[0-9a-f]{{8}}(?P<claim>{re.escape(CLAIM)})?")
    removed = 0
    for path in out.parent.glob(f".{glob.escape(stem)}.*"):
        m = pattern.fullmatch(path.name)
        if not m or path.is_symlink() or not path.is_dir():
            continue
        try:
            if m["claim"] and time.time() - path.stat().st_mtime < STALE_AGE:
                continue
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        except BlockingIOError:  # a living writer's
            pass
        finally:
            os.close(fd)
    return removed


@contextlib.contextmanager
def folder_replacing(out: Path, keep_others: bool = True, own: Collection[str] = ()) -> Iterator[Path]:
    """A new folder beside `out` to write into; on leaving it replaces `out` whole (`replace_folder`), on an error
    it is removed and `out` is left as it was. An `out` that is a link is followed: its target is replaced. The new
    folder is locked while it lives; those of writers killed before (SIGKILL, a crash) are removed first."""
    out = Path(out).resolve() if Path(out).is_symlink() else Path(os.path.abspath(out))  # "." has no name to swap
    refuse_working_folder(out)
    remove_stale_folders(out)
    tmp, fd = new_folder_beside(out)
    try:
        yield tmp
        replace_folder(tmp, out, keep_others, own)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        os.close(fd)


def refuse_working_folder(out: str | os.PathLike, flag: str = "") -> None:
    """One line where `out`, a folder replaced whole, is the folder this process runs in or holds it: the shell
    it was started from would be left in the removed old folder, which looks empty."""
    try:
        here = Path(os.path.realpath(os.getcwd()))
    except OSError:  # a working folder removed under us: nothing to compare
        return
    target = Path(os.path.realpath(out))
    if here == target or target in here.parents:
        said = f"{flag} {out}" if flag else str(out)
        raise UserError(f"{said}: is the folder this runs in (or holds it), which is replaced whole (the shell would "
                        "be left in the removed old one); run from another folder")  # fmt: skip


def replace_folder(tmp: Path, out: Path, keep_others: bool = True, own: Collection[str] = ()) -> None:
    """The finished folder `tmp` (beside `out`) becomes `out` in one rename: readers and a crash find the old
    folder or the new one, never a mix of their files (a model's weights of one training beside the codec of
    another). With `keep_others`, what `out` holds that `tmp` lacks (a user's notes) is carried over first, as
    hard links (copies across devices), but for the top-level names in `own` (the writer's: an earlier run's that
    this one did not make again go). `out` keeps its permissions; the files written into `tmp` get the mode a
    plain write gives.

    Linux swaps the two folders atomically (renameat2 RENAME_EXCHANGE); where a filesystem cannot, the old folder
    is renamed aside and the new one into place (for an instant `out` is missing, never mixed). `tmp` is gone
    afterwards either way, and so is the old folder.
    """
    plain = _plain_file_mode(tmp)
    for path in tmp.rglob("*"):  # what libraries wrote (safetensors makes its files 0600)
        if path.is_file() and not path.is_symlink():
            os.chmod(path, plain)
    if out.is_dir() and keep_others:
        for entry in out.iterdir():
            if entry.name not in own and not os.path.lexists(tmp / entry.name):
                _carry(entry, tmp / entry.name)
    if out.is_dir():
        os.chmod(tmp, stat.S_IMODE(os.stat(out).st_mode))
    if not out.exists():
        os.rename(tmp, out)
        return
    if _exchange(tmp, out):
        shutil.rmtree(tmp, ignore_errors=True)
        return
    aside = Path(tempfile_name(out, "old"))
    os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(aside, out)  # the old folder back: an `.old.` folder is anyone's to remove
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _plain_file_mode(folder: Path) -> int:
    """The mode a plain `open(path, "w")` gives a new file in `folder` (the umask applied), read off a probe file."""
    probe = Path(temp_beside(folder / "mode"))
    try:
        return stat.S_IMODE(os.stat(probe).st_mode)
    finally:
        probe.unlink()


def tempfile_name(path: Path, what: str) -> str:
    """A free name `.NAME.WHAT.XXXXXXXX` beside `path` (not created; NAME: `temp_stem`)."""
    stem = _folder_stem(path.name, what)
    for _ in range(100):
        name = path.with_name(f".{stem}.{what}.{secrets.token_hex(4)}")
        if not os.path.lexists(name):
            return str(name)
    raise FileExistsError(f"{path.parent}: no free temporary name for {path.name}")


def _folder_stem(name: str, what: str) -> str:
    """`temp_stem` of `tempfile_name`'s names, the longest (`.NAME.WHAT.XXXXXXXX.claim`) within NAME_MAX."""
    return temp_stem(name, room=len(f"..{what}.XXXXXXXX{CLAIM}"))


def _carry(src: Path, dst: Path) -> None:
    def link(a: str, b: str) -> None:
        try:
            os.link(a, b, follow_symlinks=False)
        except OSError:  # another device, or a filesystem without hard links
            shutil.copy2(a, b, follow_symlinks=False)

    if src.is_dir() and not src.is_symlink():
        shutil.copytree(src, dst, symlinks=True, copy_function=link)
    else:
        link(str(src), str(dst))


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where this system or filesystem cannot."""
    import ctypes

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))
