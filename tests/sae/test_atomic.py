"""The one atomic write (`sae.atomic`): the old file or the new one, never half; no temporary file left behind;
the mode a plain write gives; fsync when asked; a full disk while saving an SAE checkpoint is one line."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from sae import atomic
from sae.atomic import atomic_torch_save, atomic_write, atomic_write_text
from sae.errors import UserError


def _disk_full(tmp: str) -> None:
    Path(tmp).write_bytes(b"\0" * 100)  # half a file, then the disk is full
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_one(tmp_path):
    path = tmp_path / "manifest.json"
    atomic_write_text(path, '{"old": 1}\n')
    with pytest.raises(OSError, match="No space left"):
        atomic_write(path, _disk_full)
    assert path.read_text() == '{"old": 1}\n' and os.listdir(tmp_path) == ["manifest.json"]

    def interrupted(tmp: str) -> None:
        Path(tmp).write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, interrupted)
    assert path.read_text() == '{"old": 1}\n' and os.listdir(tmp_path) == ["manifest.json"]


def test_the_file_gets_the_mode_a_plain_write_gives(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_torch_save({"w": torch.zeros(2)}, tmp_path / "b.pt")
        (tmp_path / "plain.txt").write_text("x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tmp_path.iterdir()}
    assert modes == {"a.txt": 0o644, "b.pt": 0o644, "plain.txt": 0o644}
    assert torch.load(tmp_path / "b.pt")["w"].shape == (2,)


def test_text_is_written_as_given_and_fsync_only_when_asked(tmp_path, monkeypatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(atomic.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    atomic_write_text(tmp_path / "m.csv", "a,b\r\nü\n")
    assert synced == [] and (tmp_path / "m.csv").read_bytes() == "a,b\r\nü\n".encode()
    atomic_write_text(tmp_path / "m.csv", "new", fsync=True)
    assert len(synced) == 1 and (tmp_path / "m.csv").read_text() == "new"
    # hunt 89: a checkpoint replaces the last good one; on a crash of the machine it must not come back empty
    atomic_torch_save({"step": 3}, tmp_path / "checkpoint.pt")
    assert len(synced) == 2 and torch.load(tmp_path / "checkpoint.pt") == {"step": 3}


def test_a_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_previous(tmp_path, monkeypatch):
    from sae.train import _save_checkpoint

    path = tmp_path / "checkpoint.pt"
    _save_checkpoint({"step": 1}, path)
    monkeypatch.setattr(torch, "save", lambda obj, fh: _disk_full(fh.name))  # torch writes into an open file
    with pytest.raises(UserError, match=r"checkpoint .*No space left on device; the previous checkpoint is kept"):
        _save_checkpoint({"step": 2}, path)
    monkeypatch.undo()
    assert torch.load(path)["step"] == 1 and os.listdir(tmp_path) == ["checkpoint.pt"]


def test_every_file_of_a_store_and_an_sae_folder_gets_the_plain_mode(tmp_path):
    from sae.io import save_sae
    from sae.model import SAEConfig, SparseAutoencoder
    from sae.store import ActivationWriter

    old = os.umask(0o022)
    try:
        with ActivationWriter(tmp_path / "store", "h", 4, dtype="float32", shard_rows=8) as w:
            w.add(torch.randn(20, 4), "a.wav", 0)
        save_sae(SparseAutoencoder(SAEConfig(d_in=4, d_sae=8, k=2)), tmp_path / "sae")
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != ".lock"]
    assert {p.name for p in files} >= {"store.json", "manifest.json", "shard_00000.safetensors", "cfg.json"}
    assert {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        p.relative_to(tmp_path).as_posix(): "0o644" for p in files
    }


def test_json_records_of_runs_judges_and_fidelity_reports_are_written_by_it(tmp_path, monkeypatch):
    """Three more writers that had their own copy (mode 0600): MusicGen run records, judge results, fidelity
    reports."""
    from realtime.musicgen.descriptions import DescriptionVocab
    from training.judge import _write_json
    from training.musicgen.runs import write_json
    from training.rave import fidelity

    monkeypatch.setattr(fidelity, "markdown", lambda result: "a report")
    vocab = DescriptionVocab({"guitar": 3}, "guitar")
    old = os.umask(0o022)
    try:
        write_json(tmp_path / "run.json", {"step": 1})
        _write_json(tmp_path / "judge.json", {"concepts": {}})
        fidelity.save({"concepts": {}}, tmp_path / "fid")
        vocab.save(tmp_path)
    finally:
        os.umask(old)
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["descriptions.json", "fid/fidelity.json", "fid/fidelity.md", "judge.json", "run.json"]
    assert {f: stat.S_IMODE((tmp_path / f).stat().st_mode) for f in files} == {f: 0o644 for f in files}
    with monkeypatch.context() as patch, pytest.raises(OSError, match=r"No space left on device: .*/descriptions"):
        patch.setattr(os, "replace", lambda a, b: _disk_full(a))
        DescriptionVocab({"piano": 1}, "piano").save(tmp_path)  # the LM recipe's record of its descriptions
    assert DescriptionVocab.load(tmp_path) == vocab
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == files


def test_audio_banks_and_exports_are_written_by_it(tmp_path, monkeypatch):
    """The writers that had their own copies (live and MusicGen audio, listening examples, concept banks, TorchScript
    SAEs): the format still follows the file's suffix (the temporary name has none), the plain mode, no temporary
    file, and a write that fails keeps the old file."""
    import numpy as np
    import soundfile as sf

    from realtime.audio_files import write_audio
    from sae.bank import ConceptBank
    from sae.export import export_torchscript
    from sae.model import SAEConfig, SparseAutoencoder

    tone = 0.5 * np.sin(np.arange(800, dtype=np.float32) / 5)
    old = os.umask(0o022)
    try:
        write_audio(tmp_path / "live.flac", tone[:, None], 16000)
        write_audio(tmp_path / "gen.ogg", tone[:, None], 16000)
        write_audio(tmp_path / "listen" / "on.wav", tone, 16000)
        ConceptBank(tmp_path / "bank.yaml").save()
        export_torchscript(SparseAutoencoder(SAEConfig(d_in=4, d_sae=8, k=2)), tmp_path / "sae.ts")
    finally:
        os.umask(old)
    formats = {p: sf.info(str(tmp_path / p)).format for p in ("live.flac", "gen.ogg", "listen/on.wav")}
    assert formats == {"live.flac": "FLAC", "gen.ogg": "OGG", "listen/on.wav": "WAV"}
    assert torch.jit.load(str(tmp_path / "sae.ts")) is not None
    assert ConceptBank.load(tmp_path / "bank.yaml").concepts == {}
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file())
    assert files == ["bank.yaml", "gen.ogg", "listen/on.wav", "live.flac", "sae.ts"]
    assert {f: stat.S_IMODE((tmp_path / f).stat().st_mode) for f in files} == {f: 0o644 for f in files}
    with monkeypatch.context() as patch, pytest.raises(OSError, match="No space left"):
        patch.setattr(sf, "SoundFile", lambda tmp, *a, **k: _disk_full(os.fsdecode(tmp)))  # given the name's bytes
        write_audio(tmp_path / "live.flac", tone[:, None], 16000)
    assert sf.info(str(tmp_path / "live.flac")).frames == 800
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()) == files


class _Statvfs:
    def __init__(self, free: int, flag: int = 0) -> None:
        self.f_bavail, self.f_frsize, self.f_flag = free, 1, flag


def test_a_full_disk_a_library_reports_as_its_own_error_is_one_line_naming_the_file(tmp_path, monkeypatch, capsys):
    """libsndfile ('System error.'), safetensors and torch hide ENOSPC in their own errors: `data make` and
    `render rave` ended in a LibsndfileError traceback, `collect` in a SafetensorError one (its temporary shard
    left behind)."""
    import importlib

    cli = importlib.import_module("training.cli.main")
    path = tmp_path / "clip.wav"
    atomic_write_text(path, "old")

    def library(tmp: str) -> None:
        Path(tmp).write_bytes(b"\0" * 100)
        raise RuntimeError("System error.")

    with pytest.raises(RuntimeError, match="System error"):  # room left: the library's error as it was
        atomic_write(path, library)
    monkeypatch.setattr(os, "statvfs", lambda p: _Statvfs(free=4096))
    with pytest.raises(OSError, match=r"No space left on device \(System error.\)") as err:
        atomic_write(path, library)
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(path)
    assert path.read_text() == "old" and os.listdir(tmp_path) == ["clip.wav"]
    monkeypatch.setattr(os, "statvfs", lambda p: _Statvfs(free=1 << 30, flag=os.ST_RDONLY))
    with pytest.raises(OSError, match="Read-only file system"):
        atomic_write(path, library)

    monkeypatch.setattr(cli, "build_parser", lambda: _Parser(lambda args: atomic_write(path, library)))
    assert cli.main([]) == 2
    assert capsys.readouterr().err == f"musicsae: error: writing {path}: Read-only file system (System error.)\n"

    def read(args) -> None:  # a permission refused comes from reads too: not called a write (hunt 153)
        raise PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "theirs" / "cfg.json"))

    for verbose in (False, True):
        monkeypatch.setattr(cli, "build_parser", lambda verbose=verbose: _Parser(read, verbose))
        assert cli.main([]) == 2
        assert capsys.readouterr().err == f"musicsae: error: {tmp_path / 'theirs' / 'cfg.json'}: Permission denied\n"


class _Parser:
    def __init__(self, func, verbose: bool = False) -> None:
        self.func, self.verbose = func, verbose

    def parse_args(self, argv):
        import argparse

        return argparse.Namespace(verbose=self.verbose, func=self.func)


def test_a_job_that_fails_having_written_nothing_leaves_no_folder(tmp_path):
    from sae.atomic import sole_writer

    out = tmp_path / "new" / "run"
    with pytest.raises(UserError), sole_writer(out, "sae train"):
        raise UserError("--k 100000: too large")
    assert not (tmp_path / "new").exists()
    with pytest.raises(KeyboardInterrupt), sole_writer(out, "sae train"):
        (out / "checkpoint.pt").write_text("work")  # something written: kept for the resume
        raise KeyboardInterrupt
    assert (out / "checkpoint.pt").read_text() == "work"
    (tmp_path / "mine").mkdir()
    with pytest.raises(UserError), sole_writer(tmp_path / "mine", "demo"):  # a folder it did not make: kept
        raise UserError("bad")
    assert (tmp_path / "mine").is_dir()


def test_a_job_refused_by_the_lock_leaves_the_winners_folder_and_lock(tmp_path, monkeypatch):
    """Hunt 206: two jobs started at once on a new folder both saw it missing; the one refused by the lock then
    removed "its" folder, the winner's lock file with it, and a third job got a lock while the winner held its own
    (17 of 60 starts). A job refused by the lock owns nothing there."""
    import sae.atomic as atomic

    out = tmp_path / "new" / "run"
    winner = []
    real = atomic.flocked

    def lost_the_race(path, wait=True):  # the winner takes the lock between this job's look and its own flock
        winner.append(real(path))
        winner[0].__enter__()
        return real(path, wait)

    monkeypatch.setattr(atomic, "flocked", lost_the_race)
    with pytest.raises(UserError, match="another sae train is writing there now"), atomic.sole_writer(out, "sae train"):
        pass
    monkeypatch.setattr(atomic, "flocked", real)
    assert (out / ".lock").is_file()  # the winner's, still held: a third job is refused
    with pytest.raises(UserError, match="another collect is writing there now"), atomic.sole_writer(out, "collect"):
        pass
    winner[0].__exit__(None, None, None)
    with atomic.sole_writer(out, "collect"):  # free once the winner is done
        pass


@contextlib.contextmanager
def _held_by_another_process(path: Path) -> Iterator[None]:
    """The lock file `path` held by another process (`held` tells this process's own locks apart)."""
    import subprocess
    import sys

    code = ("import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX); "
            "print(1, flush=True); time.sleep(60)")  # fmt: skip
    other = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "1"
        yield
    finally:
        other.kill()
        other.wait()


def test_a_failed_collect_keeps_a_store_another_collect_is_writing(tmp_path):
    """Hunt 206: a collect refused beside another (or failing) removed the store folder it found missing at its
    start, under the other run, which then lost every row at its first shard."""
    from sae.atomic import flocked
    from training.cli.collect import no_empty_store

    out = tmp_path / "store"
    with pytest.raises(UserError), no_empty_store(out):
        (out / "latent").mkdir(parents=True)  # the other run's writer, holding its lock
        with flocked(out / "latent" / ".writer_0.lock"):
            raise UserError("another collect of 'latent' is writing there now")
    assert not out.exists()  # no one writing: this run's empty store goes
    with contextlib.ExitStack() as other:  # the other run's writer outlives this run
        with pytest.raises(UserError), no_empty_store(out):
            other.enter_context(_held_by_another_process(_folder(out / "latent", {}) / ".writer_0.lock"))
            raise UserError("another collect of 'latent' is writing there now")
        assert (out / "latent" / ".writer_0.lock").is_file()  # kept: its writer was at work when this run ended


def _folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def _contents(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "aside"])
def test_a_folder_is_replaced_whole_keeping_what_the_new_one_lacks(tmp_path, monkeypatch, exchange):
    """A package / conversion folder was updated file by file: killed in between, it held the weights of one
    training and the codec of another. Now the finished folder replaces it in one rename (where a filesystem
    cannot swap two folders, the old one is renamed aside first: missing for an instant, never mixed)."""
    if not exchange:
        monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = _folder(tmp_path / "pkg", {"state_dict.bin": "old lm", "codec.bin": "old codec", "notes/mine.txt": "keep"})
    os.chmod(out, 0o750)
    new = _new_folder_beside(out)
    swaps = []
    rename = os.rename
    monkeypatch.setattr(atomic.os, "rename", lambda a, b: swaps.append(Path(b).name) or rename(a, b))
    _folder(new, {"state_dict.bin": "new lm", "codec.bin": "new codec"})
    os.chmod(new / "codec.bin", 0o600)  # as safetensors writes its files: a model no other user could load
    atomic.replace_folder(new, out)
    plain = tmp_path / "plain.txt"
    plain.write_text("")
    assert stat.S_IMODE((out / "codec.bin").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    plain.unlink()
    assert _contents(out) == {"state_dict.bin": "new lm", "codec.bin": "new codec", "notes/mine.txt": "keep"}
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pkg"]  # no temporary or old folder left
    assert (swaps == []) == exchange  # one kernel swap, or the two renames

    new = _new_folder_beside(out)
    _folder(new, {"index.html": "site"})
    atomic.replace_folder(new, out, keep_others=False)
    assert _contents(out) == {"index.html": "site"}


def test_a_failed_second_rename_puts_the_old_folder_back(tmp_path, monkeypatch):
    """Hunt 57: where the kernel cannot swap, the old folder is renamed aside first; a failure of the second rename
    left it under its `.old.` name, which the next writer removes as a dead one's."""
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)
    out = _folder(tmp_path / "pkg", {"state_dict.bin": "old lm"})
    new = _folder(_new_folder_beside(out), {"state_dict.bin": "new lm"})
    rename = os.rename

    def second_fails(a, b):
        if Path(a) == new:
            raise OSError(errno.EIO, "Input/output error")
        rename(a, b)

    monkeypatch.setattr(atomic.os, "rename", second_fails)
    with pytest.raises(OSError, match="Input/output"):
        atomic.replace_folder(new, out)
    assert _contents(out) == {"state_dict.bin": "old lm"}


def test_a_folder_that_fails_to_be_carried_over_leaves_the_old_one_whole(tmp_path, monkeypatch):
    out = _folder(tmp_path / "pkg", {"state_dict.bin": "old lm", "mine.txt": "keep"})
    new = _folder(_new_folder_beside(out), {"state_dict.bin": "new lm"})

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "link", full)
    monkeypatch.setattr(atomic.shutil, "copy2", full)
    with pytest.raises(OSError, match="No space"):
        atomic.replace_folder(new, out)
    assert _contents(out) == {"state_dict.bin": "old lm", "mine.txt": "keep"}


def test_a_new_folder_gets_the_mode_a_plain_mkdir_gives(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    new = _new_folder_beside(tmp_path / "out")
    assert new.name.startswith(".out.new.") and new.stat().st_mode == plain.stat().st_mode
    atomic.replace_folder(new, tmp_path / "out")
    assert (tmp_path / "out").stat().st_mode == plain.stat().st_mode


def test_a_folder_where_the_file_goes_is_named_not_the_temporary_file(tmp_path, capsys):
    """`sae train` with OUT/latent/metrics.json a folder said `.metrics.json.b84ad130.tmp: Is a directory`."""
    from training.cli.main import guarded

    (tmp_path / "metrics.json").mkdir()
    assert guarded("musicsae", lambda: atomic_write_text(tmp_path / "metrics.json", "{}")) == 2
    err = capsys.readouterr().err
    assert err == f"musicsae: error: {tmp_path / 'metrics.json'}: a folder is there, where this file goes\n", err
    assert sorted(os.listdir(tmp_path)) == ["metrics.json"]


def test_an_output_that_is_a_link_is_written_through_to_its_target(tmp_path):
    """A bank.yaml linking to a shared bank became a plain file (the shared one never got the concept); a data
    folder given as a link became a real folder, its target kept the old data, and a staging link was left."""
    from sae.atomic import folder_replacing

    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "bank.yaml").write_text("old")
    (tmp_path / "bank.yaml").symlink_to(tmp_path / "shared" / "bank.yaml")
    atomic_write_text(tmp_path / "bank.yaml", "new")
    assert (tmp_path / "bank.yaml").is_symlink() and (tmp_path / "shared" / "bank.yaml").read_text() == "new"
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "old.txt").write_text("old")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with folder_replacing(tmp_path / "link", keep_others=False) as new:
        (new / "new.txt").write_text("new")
    assert (tmp_path / "link").is_symlink() and sorted(os.listdir(tmp_path / "real")) == ["new.txt"]
    assert sorted(os.listdir(tmp_path)) == ["bank.yaml", "link", "real", "shared"]  # nothing left beside them


def _new_folder_beside(out: Path) -> Path:
    path, fd = atomic.new_folder_beside(out)
    os.close(fd)
    return path


def _killed_writers_folder(path: Path, age: float = 60.0) -> Path:
    """What a writer SIGKILLed inside `folder_replacing` leaves: its new folder, half filled, `age` seconds old."""
    path.mkdir()
    (path / "half.wav").write_bytes(b"x" * 100)
    then = path.stat().st_mtime - age
    os.utime(path, (then, then))
    return path


def test_a_new_folder_of_a_killed_writer_is_removed_by_the_next_one(tmp_path):
    """`data make` and `dashboard` killed mid-way left `.OUT.new.XXXXXXXX` folders (11-24 MB each) that no rerun
    removed. A living writer's folder is locked; a killed one's is not, and goes."""
    import fcntl

    out = tmp_path / "site"
    dead = _killed_writers_folder(tmp_path / ".site.new.0123abcd")
    aside = _killed_writers_folder(tmp_path / ".site.old.0123abcd")
    just_killed = _killed_writers_folder(tmp_path / ".site.new.89abcdef", age=0)  # hunt 54: it stayed 10 s
    claimed = _killed_writers_folder(tmp_path / ".site.new.11111111.claim", age=0)  # may not be locked yet
    claimed_dead = _killed_writers_folder(tmp_path / ".site.new.22222222.claim")
    other = _killed_writers_folder(tmp_path / ".site2.new.0123abcd")  # another output's
    living = _killed_writers_folder(tmp_path / ".site.new.fedcba98")
    fd = os.open(living, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with atomic.folder_replacing(out) as new:
            (new / "index.html").write_text("new")
    finally:
        os.close(fd)
    assert not dead.exists() and not aside.exists() and not just_killed.exists() and not claimed_dead.exists()
    assert claimed.exists() and other.exists() and living.exists()
    assert (out / "index.html").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.new.11111111.claim", ".site.new.fedcba98",
                                                          ".site2.new.0123abcd", "site"]  # fmt: skip


def test_an_export_killed_mid_write_leaves_nothing_the_next_export_keeps(tmp_path):
    """`export nn` named its temporary file with its process id (`.a.ts.23522.tmp`): no rerun removed it."""
    from training.rave.nn_export import save_atomic

    out = tmp_path / "a.ts"
    left = Path(atomic.temp_beside(out))  # what a killed export left
    left.write_bytes(b"half a model")
    save_atomic(torch.jit.script(torch.nn.Identity()), out, {"x": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.ts"]
    assert torch.jit.load(str(out))(torch.ones(2)).tolist() == [1.0, 1.0]


@pytest.mark.parametrize("through_link", [False, True])
def test_a_second_export_to_one_file_waits_for_the_first_instead_of_removing_its_temporary_file(
    tmp_path, monkeypatch, through_link
):
    """The next export took a living export's temporary file for a killed one's and removed it: the first failed
    with 'cannot write it (No such file or directory)' (hunt 159); one to a link to the file did too (hunt 163)."""
    import threading

    from training.rave import nn_export

    out = tmp_path / "steered.ts"
    inside, release, errors = threading.Event(), threading.Event(), []
    real = torch.jit.save

    def slow(module, fh, **kwargs):
        if threading.current_thread().name == "first":
            inside.set()
            release.wait(10)
        real(module, fh, **kwargs)

    monkeypatch.setattr(torch.jit, "save", slow)

    link = tmp_path / "link.ts"
    link.symlink_to(out.name)

    def export(tag: str) -> None:
        try:
            to = link if through_link and tag == "second" else out
            nn_export.save_atomic(torch.jit.script(torch.nn.Identity()), to, {"by": tag})
        except Exception as exc:
            errors.append(f"{tag}: {exc}")

    first = threading.Thread(target=export, args=("first",), name="first")
    second = threading.Thread(target=export, args=("second",), name="second")
    first.start()
    assert inside.wait(10)
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waiting for the first
    release.set()
    first.join(10)
    second.join(10)
    assert errors == [] and nn_export.read_metadata(out) == {"by": "second"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.ts", "steered.ts"] and link.is_symlink()


def test_an_interrupted_plot_leaves_no_file_and_its_report_is_not_marked_done(tmp_path, monkeypatch):
    """Hunt 58: Ctrl-C while a plot was saved left `.judge.tmp.png` (124 bytes) that no rerun removed, and
    judge.json (what a resumed `eval hooks` takes as a finished judge) was written before judge.png, so the plot
    was never made again. Likewise metrics.json before the SAE's training curves."""
    from matplotlib.figure import Figure

    from training.judge import save_report

    def interrupted(self, fname, **kwargs):
        Path(fname).write_bytes(b"\x89PNG half")
        raise KeyboardInterrupt

    monkeypatch.setattr(Figure, "savefig", interrupted)
    result = {"model": {"name": "m.ts"}, "held_out_clips": 2, "strengths": [1.0], "concepts": {}}
    with pytest.raises(KeyboardInterrupt):
        save_report(result, tmp_path / "judge")
    assert os.listdir(tmp_path / "judge") == []
    from sae.plots import plot_training

    with pytest.raises(KeyboardInterrupt):
        plot_training([{"step": 1, "fvu": 0.5, "l0": 4.0, "dead": 0.0}], tmp_path / "training_curves.png")
    assert sorted(os.listdir(tmp_path)) == ["judge"]


def test_the_same_object_saved_twice_is_the_same_bytes(tmp_path):
    """torch names the archive inside its zip after the file it is given: saved under random temporary names, two
    saves of one state dict differed, so a MusicGen rebuilt from the same seed got another sha256 and the stores and
    banks made with it refused it as another model."""
    import hashlib

    from sae.atomic import atomic_torch_save

    state = {"w": torch.arange(6.0).reshape(2, 3)}
    atomic_torch_save(state, tmp_path / "a.bin")
    atomic_torch_save(state, tmp_path / "b.bin")
    digest = [hashlib.sha256((tmp_path / n).read_bytes()).hexdigest() for n in ("a.bin", "b.bin")]
    assert digest[0] == digest[1] and torch.equal(torch.load(tmp_path / "a.bin")["w"], state["w"])


def test_a_read_only_file_is_refused_not_replaced(tmp_path):
    """Hunt 105: `concept remove` on a bank its owner made read-only (chmod 444) replaced it by rename and made it
    0644, where a plain write is refused; it is said in one line and left as it was."""
    from sae.atomic import atomic_write_text

    path = tmp_path / "concepts.yaml"
    path.write_text("version: 1\n")
    path.chmod(0o444)
    with pytest.raises(UserError, match=r"concepts.yaml: read-only \(mode 444\); chmod u\+w it to let this change it"):
        atomic_write_text(path, "version: 1\nconcepts: {}\n")
    assert path.read_text() == "version: 1\n" and path.stat().st_mode & 0o777 == 0o444
    assert [p.name for p in tmp_path.iterdir()] == ["concepts.yaml"]  # no temporary file left


def test_a_file_written_again_keeps_its_mode(tmp_path):
    """A private bank (0600) became 0644 when a save replaced it (hunt 83); a new file gets a plain open's mode."""
    from sae.atomic import atomic_write_text

    path = tmp_path / "concepts.yaml"
    path.write_text("version: 1\n")
    path.chmod(0o600)
    atomic_write_text(path, "version: 1\nconcepts: {}\n")
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == "version: 1\nconcepts: {}\n"
    umask = os.umask(0o022)
    os.umask(umask)
    atomic_write_text(tmp_path / "new.yaml", "x")
    assert (tmp_path / "new.yaml").stat().st_mode & 0o777 == 0o666 & ~umask


def test_a_lock_file_removed_before_our_flock_still_keeps_a_second_writer_out(tmp_path, monkeypatch):
    """A job that fails in a folder it made removes its lock file; a job that had opened that file just before took
    its flock on the unlinked file, and a third job, opening the path anew, wrote beside it unrefused."""
    import fcntl

    from sae.atomic import sole_writer

    lock = tmp_path / ".lock"
    lock.touch()
    real, raced = fcntl.flock, []

    def flock(fd: int, op: int) -> None:
        if not raced and op & fcntl.LOCK_EX:
            raced.append(fd)
            lock.unlink()  # the failed job's cleanup, between our open and our flock
        real(fd, op)

    monkeypatch.setattr(fcntl, "flock", flock)
    with sole_writer(tmp_path, "collect"):
        monkeypatch.setattr(fcntl, "flock", real)
        with pytest.raises(UserError, match="another collect is writing there now"), sole_writer(tmp_path, "collect"):
            pass
    assert raced


@pytest.mark.parametrize("length", [200, 243, 250, 255])
def test_a_name_as_long_as_the_file_system_allows_is_written_and_its_leftovers_cleared(tmp_path, length):
    """The temporary name `.NAME.XXXXXXXX.tmp` is 14 bytes longer than NAME: an output name of 242 to 255 bytes
    (one a file system takes) was refused as 'File name too long' (hunt 156)."""
    name = "é" * ((length - 3) // 2) + "x" * ((length - 3) % 2) + ".ts"
    out = tmp_path / name
    assert len(name.encode()) == length
    left = Path(atomic.temp_beside(out))  # what a killed writer left
    assert len(left.name.encode()) <= atomic.NAME_MAX and atomic.remove_leftovers(out) == 1
    atomic_write_text(out, "model")
    assert out.read_text() == "model" and os.listdir(tmp_path) == [name]
    other = tmp_path / (name[:-3] + ".pt")  # another long name that starts the same: its leftovers stay
    kept = Path(atomic.temp_beside(other))
    assert atomic.remove_leftovers(out) == 0 and kept.exists()

    folder = tmp_path / (name[:-3] + ".d")
    with atomic.folder_replacing(folder) as new:
        (new / "index.html").write_text("first")
    with atomic.folder_replacing(folder) as new:  # the old one renamed aside where no exchange is
        (new / "index.html").write_text("second")
    assert (folder / "index.html").read_text() == "second"
    dead = _killed_writers_folder(Path(atomic.tempfile_name(folder, "new")))
    assert len(dead.name.encode() + atomic.CLAIM.encode()) <= atomic.NAME_MAX
    assert atomic.remove_stale_folders(folder) == 1 and not dead.exists()


@pytest.mark.parametrize("length", [10, 250])
def test_a_name_that_is_not_utf8_is_written(tmp_path, length):
    """A Latin-1 name (`caf\\xe9.wav` from an old archive) is a name Linux takes: the hash of long names made every
    write to one a UnicodeEncodeError traceback (hunt 163)."""
    name = os.fsdecode(b"caf\xe9" * (length // 4) + b"x" * (length % 4))
    out = tmp_path / name
    left = Path(atomic.temp_beside(out))
    assert len(os.fsencode(left.name)) <= atomic.NAME_MAX and atomic.remove_leftovers(out) == 1
    atomic_write_text(out, "take")
    assert out.read_text() == "take" and os.listdir(tmp_path) == [name]


def test_a_write_past_the_file_size_limit_is_one_line_naming_the_limit(tmp_path):
    """Hunt 217: under `ulimit -f` (a batch scheduler's h_fsize), and likewise a disk quota with room on the disk,
    libsndfile's "System error." and safetensors' "File too large (os error 27)" were tracebacks: the failing write
    is probed on its temporary file, before that goes, and named with the limit."""
    import subprocess
    import sys

    code = """import sys, numpy as np, torch
from realtime.audio_files import write_audio
from sae.errors import UserError
from sae.store import ActivationWriter
try:
    write_audio(sys.argv[1] + "/x.wav", np.zeros((44100, 1), np.float32), 44100)
except OSError as exc:
    print(exc)
try:
    with ActivationWriter(sys.argv[1] + "/store", "h", 64) as w:
        w.add(torch.zeros(400, 64), "a", 0)
except UserError as exc:
    print(exc)
"""

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20480, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    argv = [sys.executable, "-c", code, str(tmp_path)]
    run = subprocess.run(argv, capture_output=True, text=True, preexec_fn=limited)
    said = run.stdout.splitlines()
    assert run.returncode == 0 and len(said) == 2, (run.stdout, run.stderr[-2000:])
    limit = "File too large (the file size limit, ulimit -f, is 20480 bytes)"
    assert said[0].startswith(f"[Errno 27] {limit} (System error.)"), said
    assert said[1].startswith(f"writing a shard of 'h' in {tmp_path / 'store' / 'h'}: {limit}"), said
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
