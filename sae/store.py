"""Activation store: sharded safetensors on disk, a manifest per hook, streaming readers.

Layout (ARCHITECTURE.md, "Activation store"):

    ROOT/store.json                      {"model": {...}, "frame_rate": float, "sample_rate": int}
    ROOT/<hook>/manifest.json            {"hook", "dim", "dtype", "shards": [...], "complete": [...], "origins": {...}}
    ROOT/<hook>/shard_00000.safetensors  tensor "activations" [rows, dim], float16 or float32

A shard is written under a temp name, fsynced and renamed; then the manifest is rewritten the same way
under an exclusive file lock (so several collector processes, e.g. torchrun ranks, may append to one
hook). A shard that is not listed in the manifest does not exist for readers. `complete` lists the
sources whose every row is in listed shards: a re-run collector skips them, and rows of a source that
are already stored (same source, same frames) are dropped on `add`, so a resumed collection never
duplicates rows. `origins` holds what the collector recorded of each audio file it read (its size, time and
sha256): a re-run tells an edited file from the one whose rows it holds.

Readers stream: `iter_batches` reads blocks of consecutive rows (memory-mapped slices of shards), shuffles
them through a buffer and never holds more than about `shuffle_buffer` rows. A block is `BLOCK_ROWS` rows
(a shard of 65536 rows is 8 blocks), smaller for small hooks (at least 64 blocks, at least 256 rows). The
held-out split is by whole sources (every row of a clip on one side), chosen by a hash of the source name,
independent of the training seed; a hook of too few sources for the fraction is split by blocks. Rows with
NaN/inf are counted and skipped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import re
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from sae.atomic import (
    atomic_write_text,
    flocked,
    folder_replacing,
    held,
    remove_leftovers,
    sole_writer,
    temp_beside,
    write_failure,
)
from sae.errors import UserError, differences
from sae.jsonfile import is_count, is_integer, is_number, read_json_object
from sae.ranks import run_id, this_rank

KEY = "activations"
MANIFEST = "manifest.json"
STORE_JSON = "store.json"
BLOCK_ROWS = 8192
MIN_BLOCK_ROWS = 256
DTYPES = {"float16": torch.float16, "float32": torch.float32}
SHARD_DTYPES = {"F16": "float16", "F32": "float32"}  # safetensors' names of DTYPES
REPEAT_RE = re.compile(r" #\d+$")  # a prompt's k-th repeat (training.musicgen.collect.prompt_sources)


def read_store_json(path: Path) -> dict[str, Any]:
    """A store's `store.json`: an object whose `model` and `collect` are objects when set (a hand-edited or damaged
    file is refused in one line naming the key, not read into a traceback later)."""
    info = read_json_object(path, "store.json")
    for key in ("model", "collect"):
        if info.get(key) is not None and not isinstance(info[key], dict):
            raise UserError(f"{path}: {key} is {type(info[key]).__name__}: expected an object")
    for kind, settings in (info.get("collect") or {}).items():  # read into a traceback by same_collect_settings
        if settings is not None and not isinstance(settings, dict):
            raise UserError(f"{path}: collect.{kind} is {type(settings).__name__}: expected an object")
    for key in ("frame_rate", "sample_rate"):
        value = info.get(key)
        if value is not None and (not is_number(value) or value <= 0):
            raise UserError(f"{path}: {key} {value!r}: expected a positive number")
    return info


def read_manifest(path: Path) -> dict[str, Any]:
    """A hook's `manifest.json`, checked entry by entry: `dim` a positive integer, `dtype` one of `DTYPES`, `shards` a
    list of {file: a name in the hook's folder, rows: a count, provenance: [{source, start_frame, rows, and the
    kind of collection when known}] adding up to the shard's rows}, `complete` a list of source names. A
    hand-edited or damaged one is refused in one line naming the entry: a shard named
    '../other_hook/shard_00000.safetensors' was read from another hook."""
    m = read_json_object(path, "manifest")
    for key in ("dim", "dtype", "shards"):
        if key not in m:
            raise UserError(f"{path}: missing key {key!r}")
    if not is_count(m["dim"]) or m["dim"] < 1:
        raise UserError(f"{path}: dim {m['dim']!r}: expected a positive integer")
    if not isinstance(m["dtype"], str) or m["dtype"] not in DTYPES:  # a list: unhashable, a TypeError
        raise UserError(f"{path}: dtype {m['dtype']!r}, expected one of {', '.join(DTYPES)}")
    if not isinstance(m["shards"], list):
        raise UserError(f"{path}: shards is {type(m['shards']).__name__}: expected a list")
    named: dict[str, int] = {}
    for i, shard in enumerate(m["shards"]):
        where = f"{path}: shard {i}"
        if not isinstance(shard, dict):
            raise UserError(f"{where} is {type(shard).__name__}: expected an object")
        name = shard.get("file")
        if not isinstance(name, str) or not name or name.startswith(".") or "/" in name or "\\" in name:
            raise UserError(f"{where}: file {name!r}: expected a file name in the hook's folder")
        if name in named:  # its rows would be read, trained on and counted twice (a manifest merged by hand)
            raise UserError(f"{where}: file {name!r} is shard {named[name]} too; expected each shard once")
        named[name] = i
        if not is_count(shard.get("rows")):
            raise UserError(f"{where}: rows {shard.get('rows')!r}: expected an integer >= 0")
        prov = shard.get("provenance", [])
        if not isinstance(prov, list) or not all(
            isinstance(p, dict) and isinstance(p.get("source"), str) and is_count(p.get("start_frame"))
            and is_count(p.get("rows")) and isinstance(p.get("kind", ""), str) for p in prov
        ):  # fmt: skip
            raise UserError(f"{where}: provenance: expected a list of {{source, start_frame, rows[, kind]}}")
        if prov and sum(p["rows"] for p in prov) != shard["rows"]:
            raise UserError(f"{where}: provenance adds up to {sum(p['rows'] for p in prov)} rows, "
                            f"the shard holds {shard['rows']}")  # fmt: skip
    complete = m.get("complete", [])
    if not isinstance(complete, list) or not all(isinstance(c, str) for c in complete):
        raise UserError(f"{path}: complete: expected a list of source names")
    origins = m.get("origins", {})
    if not isinstance(origins, dict) or not all(
        isinstance(o, dict) and is_count(o.get("bytes")) and isinstance(o.get("sha256"), str)
        and "mtime_ns" in o and all(is_integer(o.get(k, 0)) for k in ("mtime_ns", "ctime_ns", "inode"))  # < 0 too
        for o in origins.values()
    ):  # fmt: skip
        raise UserError(f"{path}: origins: expected an object of {{source: {{bytes, mtime_ns, sha256, ...}}}}")
    return m


def stored_origins(root: str | os.PathLike) -> list[dict[str, dict[str, Any]]]:
    """The file origins (`ActivationWriter.set_origin`) each hook of store `root` records, hooks a run does not
    write included (a run of a new hook alone stored an edited file's rows beside the old ones' of the others)."""
    return [read_manifest(m).get("origins", {}) for m in sorted(Path(root).glob(f"*/{MANIFEST}"))]


def record_moved(writers: Iterable[ActivationWriter], moved: dict[str, dict[str, Any]]) -> None:
    """Record the new origins of files that moved over the same bytes (`realtime.audio_files.refuse_changed`) in
    the writers that hold rows of them: hashed once, not on every re-run."""
    for source, origin in moved.items():
        for w in writers:
            if source in w.origins:
                w.set_origin(source, origin)


@contextlib.contextmanager
def whole_store(store: Path) -> Iterator[Path]:
    """Where a stage of a recipe collects its `store`: a new folder beside it (holding what the store holds) that
    becomes it once the collection ends, removed if it stops. A stage stopped in its collect and run again stored
    the same rows in other shards, and the SAE's batches (blocks per shard) came out otherwise: other figures than
    an uninterrupted run's (hunt 207; a store there already too, hunt 208)."""
    with folder_replacing(Path(store)) as tmp:
        if Path(store).exists():  # rows added to a store there (another hook, more prompts): links to its files, in
            # a copy that replaces it once whole (shards are never changed; manifests and store.json are replaced)
            shutil.copytree(store, tmp, copy_function=os.link, dirs_exist_ok=True)
        yield tmp


@contextlib.contextmanager
def _locked(hook_dir: Path) -> Iterator[None]:
    with flocked(hook_dir / ".lock"):
        yield


def same_collect_settings(
    root: str | os.PathLike, kind: str, settings: dict[str, Any], folder: str | None = None
) -> str | None:
    """Record in store.json `collect.<kind>` what a kind of rows ("prompts", "audio", "rave") is collected with;
    a store whose rows of that kind were made with others is refused in one line naming what differs (rows of two
    runs would mix, and the sources already stored would be skipped as complete). A store without rows of that kind
    (a run that found nothing usable, or stopped before its first shard, beside rows of another kind) takes the new
    settings, unless another collect is writing into the store now (its rows are not in a shard yet: two runs of
    two folders both went on, their rows mixed under the same source names; hunt 206).

    `folder`: the key of `settings` naming the audio folder the sources are named under. A project moved (its store
    and audio moved to another place or machine: the folder recorded is gone) may be taken in its new place where
    every source stored of that kind has its file's sha256 recorded: it was refused, naming a folder that no longer
    exists (hunt 214). Then the folder recorded is returned, nothing written: the collector checks the new folder
    holds every file stored, with the same bytes (`realtime.audio_files.check_collect_folder`), and records the
    new settings (`record_collect_settings`). Else None."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / STORE_JSON
    with _locked(root):
        info = read_store_json(path) if path.exists() else {}
        old = (info.get("collect") or {}).get(kind)
        if old != settings and old is not None and not _has_rows(root, kind) and _another_writing(root):
            raise UserError(
                f"store {root}: another collect is writing {kind} rows into it with other settings "
                f"({differences(old, settings, 'its')}); wait for it, or collect into another --out"
            )
        if old is None or (old != settings and not _has_rows(root, kind)):
            info["collect"] = {**(info.get("collect") or {}), kind: settings}
            atomic_write_text(path, json.dumps(info, indent=1), fsync=True)
        elif old != settings:
            if folder is not None and _moved_only(old, settings, folder) and _traced(root, kind):
                return str(old[folder])
            raise UserError(
                f"store {root}: its {kind} rows were collected with other settings "
                f"({differences(old, settings, 'stored')}); collect with the same, "
                "or into another --out"
            )


def _moved_only(old: Any, new: dict[str, Any], folder: str) -> bool:
    """Whether collect settings `old` (store.json's) and `new` differ in the audio `folder` alone, and the folder
    recorded is not there (a folder beside it is another one: its files would be read in by their names)."""
    return (
        isinstance(old, dict)
        and set(old) == set(new)
        and all(old[k] == v for k, v in new.items() if k != folder)
        and not os.path.lexists(str(old[folder]))
    )


def record_collect_settings(root: str | os.PathLike, kind: str, settings: dict[str, Any]) -> None:
    """Record `settings` as what the store's `kind` rows are collected with (a moved folder, once checked)."""
    path = Path(root) / STORE_JSON
    with _locked(Path(root)):
        info = read_store_json(path) if path.exists() else {}
        info["collect"] = {**(info.get("collect") or {}), kind: settings}
        atomic_write_text(path, json.dumps(info, indent=1), fsync=True)


def _kind_sources(manifest: dict[str, Any], kind: str) -> set[str] | None:
    """The sources of a hook's `kind` rows (with rows, or complete with none), or None where rows name no source."""
    ours, others = set(manifest.get("complete", [])), set()  # complete sources (of any kind), and those of others
    for shard in manifest["shards"]:
        prov = shard.get("provenance") or []
        if shard["rows"] and not prov:
            return None
        for p in prov:
            (ours if p.get("kind", kind) == kind else others).add(p["source"])
    return ours - others


def kind_sources(root: str | os.PathLike, kind: str) -> set[str]:
    """The sources of the store's `kind` rows, in every hook."""
    found: set[str] = set()
    for path in Path(root).glob(f"*/{MANIFEST}"):
        found |= _kind_sources(read_manifest(path), kind) or set()
    return found


def _traced(root: Path, kind: str) -> bool:
    """Whether every source of the store's `kind` rows, in every hook, has its file's sha256 in its hook's origins
    (stores of before origins were recorded have none: their sources are known by their names alone)."""
    for path in root.glob(f"*/{MANIFEST}"):
        m = read_manifest(path)
        ours = _kind_sources(m, kind)
        if ours is None or not ours <= set(m.get("origins", {})):  # (`read_manifest`: each origin holds its sha256)
            return False
    return True


def _another_writing(root: Path) -> bool:
    """Whether a collect of another run (not this process, nor a rank of its launch) holds a writer lock of the
    store at `root` (`ActivationWriter` writes its `run_id` into its lock file)."""
    for lock in root.glob("*/.writer_*.lock"):
        with contextlib.suppress(OSError):
            if held(lock) and lock.read_text().strip() != run_id():
                return True
    return False


def _has_rows(root: Path, kind: str) -> bool:
    """Whether any hook of the store holds rows of `kind`; rows stored without a kind (stores of before kinds were
    recorded) count as every kind's."""
    for path in root.glob(f"*/{MANIFEST}"):
        for shard in read_manifest(path)["shards"]:
            prov = shard.get("provenance") or []
            if any(p.get("kind", kind) == kind for p in prov) or (shard["rows"] and not prov):
                return True
    return False


def refuse_names_of_other_kinds(root: str | os.PathLike, kind: str, sources: Iterable[str], what: str) -> None:
    """Rows are keyed by source name: a `kind` source named like a source stored by another kind (a prompt reading
    'a.wav' beside the file a.wav) would be taken as done, its rows dropped as already covered, and later read as
    one clip with the other. Refused in one line naming the first clash."""
    root = Path(root)
    wanted = set(sources)
    for path in sorted(root.glob(f"*/{MANIFEST}")):
        for shard in read_manifest(path)["shards"]:
            for p in shard.get("provenance") or []:
                if p["source"] in wanted and p.get("kind", kind) != kind:
                    raise UserError(
                        f"{what} {p['source']!r}: store {root} holds {p['kind']} rows of that name; "
                        "rename it or collect into another --out"
                    )


def _check_hook_name(hook: str) -> None:
    if not hook or hook.startswith(".") or "/" in hook or "\\" in hook:
        raise UserError(f"hook name {hook!r}: expected a non-empty name without '/' or a leading '.'")


def _new_manifest(hook: str, dim: int, dtype: str) -> dict[str, Any]:
    return {"hook": hook, "dim": dim, "dtype": dtype, "shards": [], "complete": []}


def same_model(a: Any, b: Any) -> bool:
    """Whether two model records name one model: the same weights (sha256) and backend where both record a
    sha256, whatever the folder's name (a copy of the weights elsewhere, `--model .`), else equal records."""
    if isinstance(a, dict) and isinstance(b, dict) and a.get("sha256") and b.get("sha256"):
        return a["sha256"] == b["sha256"] and a.get("backend") == b.get("backend")
    return a == b


def _model_words(model: Any) -> str:
    """A store's model in words: 'demo_rave.ts (sha256 91ae76d46047…)', with what else differs left to the caller."""
    if not isinstance(model, dict):
        return repr(model)
    sha = str(model.get("sha256") or "")
    return f"{model.get('name', '?')}" + (f" (sha256 {sha[:12]}…)" if sha else "")


class ActivationWriter:
    """Append activations of one hook to a store, shard by shard, atomically.

    Args:
        root: store directory (created if missing).
        hook: hook / layer name (one subdirectory).
        dim: activation width; must match an existing manifest.
        dtype: "float16" or "float32" on disk.
        model: identity of the source model (name, sha256, ...) for store.json.
        frame_rate: activation frames per second of audio.
        sample_rate: audio sample rate.
        shard_rows: rows per shard (the last shard may be shorter).

    `add(x, source, start_frame)` buffers rows; full shards are flushed as they fill, `close()` flushes the
    rest. Re-opening an existing store appends. Use as a context manager; on an exception the buffered
    rows of unfinished shards are written too (they are valid rows), and the error propagates.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        hook: str,
        dim: int,
        dtype: str = "float16",
        model: dict[str, Any] | None = None,
        frame_rate: float | None = None,
        sample_rate: int | None = None,
        shard_rows: int = 65536,
    ) -> None:
        _check_hook_name(hook)
        if dtype not in DTYPES:
            raise UserError(f"activation dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
        if int(dim) <= 0 or int(shard_rows) <= 0:
            raise UserError(f"activation writer for {hook!r}: expected dim > 0 and shard_rows > 0")
        self.root = Path(root)
        self.hook = hook
        self.dim = int(dim)
        self.dtype = dtype
        self.shard_rows = int(shard_rows)
        self.dir = self.root / hook
        self._made = not self.dir.exists()  # a hook this run adds: gone again if the run fails before a row
        self.dir.mkdir(parents=True, exist_ok=True)
        # one writer per hook and torchrun rank: two collects at once would both store every source that was not
        # complete when they started, doubling its rows (ranks take disjoint shares of the sources)
        self._lock = contextlib.ExitStack()
        rank = this_rank()[0]
        self._lock.enter_context(sole_writer(self.dir, f"collect of {hook!r}", f".writer_{rank}.lock"))
        (self.dir / f".writer_{rank}.lock").write_text(run_id())  # whose it is (`_another_writing`)
        self._shard_temp = self.dir / f"shard.rank{rank}"  # its temporary shards: this rank's lock holds them
        try:
            remove_leftovers(self._shard_temp)  # what a writer of this rank killed mid-write left
            self._update_store_json(model, frame_rate, sample_rate)
            with _locked(self.dir):
                remove_leftovers(self.dir / MANIFEST)
                manifest = self._load_manifest()
                if manifest is None:
                    manifest = _new_manifest(hook, self.dim, dtype)
                    atomic_write_text(self.dir / MANIFEST, json.dumps(manifest, indent=1), fsync=True)
        except BaseException:
            self._lock.close()
            self._drop_if_unused()
            raise
        self._covered = _coverage(manifest)
        self._complete = set(manifest.get("complete", []))
        self._origins: dict[str, dict[str, Any]] = dict(manifest.get("origins", {}))
        self._new_origins: dict[str, dict[str, Any]] = {}
        self._buf: list[torch.Tensor] = []
        self._prov: list[dict[str, Any]] = []  # provenance of buffered rows, in order
        self._buffered = 0
        self._last_source: str | None = None
        self._to_complete: list[str] = []
        self.rows_written = 0
        self.rows_skipped = 0
        self.nonfinite_rows = 0
        self._closed = False

    # -- store.json / manifest -------------------------------------------------------------------------
    def _update_store_json(self, model: dict[str, Any] | None, frame_rate: float | None, sr: int | None) -> None:
        path = self.root / STORE_JSON
        with _locked(self.root):
            remove_leftovers(path)
            info = read_store_json(path) if path.exists() else {}
            new = {"model": model, "frame_rate": frame_rate, "sample_rate": sr}
            changed = False
            for key, value in new.items():
                if value is None:
                    continue
                if key == "frame_rate":
                    value = float(value)
                if key == "sample_rate":
                    value = int(value)
                old = info.get(key)
                if old is not None and old != value and not (key == "model" and same_model(old, value)):
                    if key == "model":
                        raise UserError(
                            f"store {self.root}: holds activations of {_model_words(old)}, not {_model_words(value)}; "
                            "collect into another --out folder (one store per model)"
                        )
                    raise UserError(f"store {self.root}: {key} is {old!r}, not {value!r}; use another store directory")
                if old is None:
                    info[key] = value
                    changed = True
            for key in new:
                info.setdefault(key, None)
            if changed or not path.exists():
                atomic_write_text(path, json.dumps(info, indent=1), fsync=True)

    def _load_manifest(self) -> dict[str, Any] | None:
        path = self.dir / MANIFEST
        if not path.exists():
            return None
        manifest = read_manifest(path)
        if manifest["dim"] != self.dim:
            raise UserError(
                f"{path}: hook {self.hook!r} holds dim {manifest.get('dim')}, not {self.dim}; mixed dims in one hook"
            )
        if manifest.get("dtype") != self.dtype:
            raise UserError(f"{path}: hook {self.hook!r} holds {manifest.get('dtype')}, not {self.dtype}")
        return manifest

    # -- writing -----------------------------------------------------------------------------------------
    @property
    def complete_sources(self) -> set[str]:
        """Sources whose rows are all in the store (as of opening, plus what this writer finished)."""
        return set(self._complete)

    @property
    def origins(self) -> dict[str, dict[str, Any]]:
        """What was recorded of each source's file (`set_origin`; none for prompts and stores from before them)."""
        return dict(self._origins)

    def set_origin(self, source: str, origin: dict[str, Any]) -> None:
        """Record what `source`'s file was when its rows were read ({bytes, mtime_ns, sha256, ...}); it goes into the
        manifest with the source's rows."""
        self._origins[source] = origin
        self._new_origins[source] = origin

    def add(self, x: torch.Tensor | np.ndarray, source: str, start_frame: int = 0, kind: str | None = None) -> int:
        """Buffer rows `x` [N, dim] of `source` starting at frame `start_frame`; returns rows kept.

        Rows of frames already stored for `source` are dropped (resumed collection). Adding rows of a new
        source marks the previous source complete. `kind` (the collection's, as in `same_collect_settings`) goes
        into the rows' provenance.
        """
        if self._closed:
            raise UserError(f"activation writer for {self.hook!r} is closed")
        # what the manifest's reader refuses, refused here, before a shard is written that its manifest cannot record
        if not isinstance(source, str) or not source:
            raise UserError(f"activations for {self.hook!r}: source {source!r}, expected a non-empty str")
        if isinstance(start_frame, bool) or not isinstance(start_frame, int | np.integer) or start_frame < 0:
            raise UserError(f"activations for {self.hook!r} from {source!r}: start_frame {start_frame!r}, expected an "
                            "integer >= 0")  # fmt: skip
        if kind is not None and not isinstance(kind, str):
            raise UserError(f"activations for {self.hook!r} from {source!r}: kind {kind!r}, expected a str or None")
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).detach().to("cpu")
        if t.ndim != 2 or t.shape[1] != self.dim:
            raise UserError(
                f"activations for {self.hook!r} from {source!r}: shape {tuple(t.shape)}, expected [N, {self.dim}]"
            )
        if self._last_source is not None and source != self._last_source:
            self.mark_complete(self._last_source)
        self._last_source = source
        t = t.to(torch.float32)
        finite = torch.isfinite(t).all(dim=1)
        self.nonfinite_rows += int((~finite).sum())
        out = t.to(DTYPES[self.dtype])
        if not bool(torch.isfinite(out)[finite].all()):
            raise UserError(
                f"activations for {self.hook!r} from {source!r} exceed the float16 range; collect with dtype float32"
            )
        # drop frames of this source already stored
        frames = torch.arange(start_frame, start_frame + t.shape[0])
        keep = torch.ones(t.shape[0], dtype=torch.bool)
        for a, b in self._covered.get(source, ()):
            keep &= (frames < a) | (frames >= b)
        if not bool(keep.all()):
            self.rows_skipped += int((~keep).sum())
            # keep contiguous runs so provenance stays (source, start_frame, rows)
            idx = torch.nonzero(keep).reshape(-1)
            if idx.numel() == 0:
                return 0
            runs = torch.tensor_split(idx, (torch.nonzero(idx.diff() != 1).reshape(-1) + 1).tolist())
            for run in runs:
                self._append(out[run], source, int(start_frame + run[0]), kind)
            return int(idx.numel())
        self._append(out, source, int(start_frame), kind)
        return int(t.shape[0])

    def _append(self, rows: torch.Tensor, source: str, start_frame: int, kind: str | None) -> None:
        if rows.shape[0] == 0:
            return
        self._buf.append(rows)
        prov = {"source": source, "start_frame": start_frame, "rows": int(rows.shape[0])}
        self._prov.append(prov if kind is None else {**prov, "kind": kind})
        self._buffered += int(rows.shape[0])
        self._covered.setdefault(source, []).append((start_frame, start_frame + int(rows.shape[0])))
        while self._buffered >= self.shard_rows:
            self._flush(self.shard_rows)

    def mark_complete(self, source: str) -> None:
        """Declare all rows of `source` added; recorded in the manifest once they are in shards."""
        if source not in self._complete and source not in self._to_complete:
            self._to_complete.append(source)

    def _take(self, n: int) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        data = torch.cat(self._buf) if len(self._buf) > 1 else self._buf[0]
        prov, left, rest = [], n, []
        for i, p in enumerate(self._prov):
            if left == 0:
                rest = self._prov[i:]
                break
            if p["rows"] <= left:
                prov.append(p)
                left -= p["rows"]
            else:
                prov.append({**p, "rows": left})
                rest = [{**p, "start_frame": p["start_frame"] + left, "rows": p["rows"] - left}, *self._prov[i + 1 :]]
                left = 0
                break
        self._buf = [data[n:]] if data.shape[0] > n else []
        self._prov = rest
        self._buffered = data.shape[0] - n
        return data[:n].contiguous(), prov

    def _flush(self, n: int) -> None:
        rows, prov = self._take(n) if n > 0 else (None, [])
        pending = {p["source"] for p in self._prov}
        done = [s for s in self._to_complete if s not in pending]
        flushed = {p["source"] for p in prov}  # origins go in with the first of their source's rows in a shard
        stored = flushed | (set(self._covered) - pending)
        origins = {s: o for s, o in self._new_origins.items() if s in stored}
        if rows is None and not done and not origins:
            return
        tmp = None

        def write(rows: torch.Tensor, tmp: Path) -> None:
            mode = os.stat(tmp).st_mode
            save_file({KEY: rows.contiguous()}, tmp, metadata={"hook": self.hook})
            os.chmod(tmp, mode)  # safetensors makes its files 0600
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())

        try:
            if rows is not None:
                tmp = temp_beside(self._shard_temp)
                write(rows, tmp)
            with _locked(self.dir):
                manifest = self._load_manifest() or _new_manifest(self.hook, self.dim, self.dtype)
                if tmp is not None and (kept := _uncovered(prov, _coverage(manifest))) is not None:
                    # rows another writer stored meanwhile (a launch's rank beside another collect: hunt 206)
                    self.rows_skipped += int(rows.shape[0]) - len(kept[0])
                    rows, prov = rows[kept[0]], kept[1]
                    if prov:
                        write(rows, tmp)
                    else:
                        os.unlink(tmp)
                        tmp, rows = None, None
                if tmp is not None:
                    used = {s["file"] for s in manifest["shards"]}
                    i = len(manifest["shards"])
                    while f"shard_{i:05d}.safetensors" in used:
                        i += 1
                    name = f"shard_{i:05d}.safetensors"
                    os.replace(tmp, self.dir / name)
                    tmp = None
                    manifest["shards"].append({"file": name, "rows": int(rows.shape[0]), "provenance": prov})
                complete = manifest.setdefault("complete", [])
                complete.extend(s for s in done if s not in complete)
                if origins:
                    manifest.setdefault("origins", {}).update(origins)
                atomic_write_text(self.dir / MANIFEST, json.dumps(manifest, indent=1), fsync=True)
        except Exception as exc:  # safetensors reports a full disk as its own SafetensorError
            failure = write_failure(self.dir / "shard", exc, tmp)  # before the temporary file (it filled the disk) goes
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if isinstance(exc, OSError) or failure is not None:
                why = (failure or exc).strerror or exc
                raise UserError(f"writing a shard of {self.hook!r} in {self.dir}: {why}") from None
            raise
        if rows is not None:
            self.rows_written += int(rows.shape[0])
        self._complete.update(done)
        self._to_complete = [s for s in self._to_complete if s not in done]
        for s in origins:
            self._new_origins.pop(s, None)

    def close(self) -> None:
        """Flush buffered rows as a (short) shard and mark the last source complete."""
        if self._closed:
            return
        if self._last_source is not None:
            self.mark_complete(self._last_source)
        try:
            self._flush(self._buffered)
        finally:
            self._lock.close()
        self._closed = True
        if self.nonfinite_rows:
            warnings.warn(
                f"{self.hook}: {self.nonfinite_rows} rows with NaN/inf stored; readers skip them", stacklevel=2
            )

    def __enter__(self) -> ActivationWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:  # keep valid rows, but never mark the interrupted source complete
            self._last_source = None
            with contextlib.suppress(Exception):
                self._flush(self._buffered)
            self._lock.close()
            self._closed = True
            self._drop_if_unused()

    def _drop_if_unused(self) -> None:
        """The hook folder this writer made, when the run failed before it stored a row or a source: a collect
        refused at a later hook (its dtype, the store's settings) left an empty manifest of the refused dtype
        behind, which refused every later collect and `sae train` ("has no rows")."""
        if not self._made:
            return
        with contextlib.suppress(OSError, UserError):
            if (self.dir / MANIFEST).exists():
                manifest = read_manifest(self.dir / MANIFEST)
                if manifest["shards"] or manifest.get("complete"):
                    return
            ours = {MANIFEST, ".lock", f".writer_{this_rank()[0]}.lock"}
            if {p.name for p in self.dir.iterdir()} <= ours:  # no other rank's writer in there
                for name in ours:
                    (self.dir / name).unlink(missing_ok=True)
                self.dir.rmdir()


def _uncovered(
    prov: list[dict[str, Any]], cov: dict[str, list[tuple[int, int]]]
) -> tuple[torch.Tensor, list[dict[str, Any]]] | None:
    """The rows of `prov`'s runs (in order, as a shard holds them) that `cov` (`_coverage`) does not hold yet: their
    indices and runs; None where it holds none of them."""
    keep, runs, at, overlap = [], [], 0, False
    for p in prov:
        a, n = int(p["start_frame"]), int(p["rows"])
        free = [(a, a + n)]
        for lo, hi in cov.get(p["source"], ()):
            left = []
            for x, y in free:
                if hi <= x or lo >= y:
                    left.append((x, y))
                    continue
                overlap = True
                left += [(x, lo)] * (x < lo) + [(hi, y)] * (hi < y)
            free = left
        for x, y in free:
            keep.append(torch.arange(at + x - a, at + y - a))
            runs.append({**p, "start_frame": x, "rows": y - x})
        at += n
    if not overlap:
        return None
    return (torch.cat(keep) if keep else torch.zeros(0, dtype=torch.long)), runs


def _coverage(manifest: dict[str, Any]) -> dict[str, list[tuple[int, int]]]:
    cov: dict[str, list[tuple[int, int]]] = {}
    for shard in manifest.get("shards", []):
        for p in shard.get("provenance", []):
            cov.setdefault(p["source"], []).append((int(p["start_frame"]), int(p["start_frame"]) + int(p["rows"])))
    return cov


@dataclass
class StreamState:
    """Where a batch stream is: enough to resume it exactly (see `BatchStream.state_dict`)."""

    epoch: int = 0
    unit: int = 0  # index (in this epoch's order) of the first unit of the current round
    skip: int = 0  # batches of the current round already yielded
    carry: torch.Tensor | None = None  # rows left over from the previous round (< batch_size)
    nonfinite_rows: int = 0


@dataclass
class BatchStream:
    """An iterator of shuffled [batch_size, dim] float32 batches from one hook of a store.

    Rounds: read units (blocks of rows) in a seeded order until about `shuffle_buffer` rows are buffered,
    shuffle them, yield the full batches, carry the remainder into the next round. `state_dict()` after any
    batch lets a new stream resume right after it. Every `iter()` is a pass of its own, from the start (or from
    where `load_state_dict` put it), so a stream read twice gives the same batches twice.
    """

    store: ActivationStore
    hook: str
    batch_size: int
    units: list[tuple[int, int, int]]  # (shard index, row start, row stop)
    shuffle_buffer: int
    seed: int
    rank: int
    world_size: int
    loop: bool
    drop_last: bool
    state: StreamState = field(default_factory=StreamState)  # where the pass in progress is
    start: StreamState = field(default_factory=StreamState)  # where every pass begins

    def _order(self, epoch: int) -> list[tuple[int, int, int]]:
        units = self.units
        if self.shuffle_buffer > 0:
            g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**64)  # any --seed
            units = [units[i] for i in torch.randperm(len(units), generator=g).tolist()]
        return units[self.rank :: self.world_size]

    def state_dict(self) -> dict[str, Any]:
        s = self.state
        return {"epoch": s.epoch, "unit": s.unit, "skip": s.skip, "carry": s.carry, "nonfinite_rows": s.nonfinite_rows}

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Resume where `state_dict` was taken; a position no pass of this stream has (a checkpoint edited or of
        other settings) raises ValueError naming it (it hung, or was a shape-mismatch traceback mid-read)."""
        counts = {k: d[k] for k in ("epoch", "unit", "skip", "nonfinite_rows")}
        if not all(is_count(v) for v in counts.values()):
            raise ValueError(f"expected counts, not {counts}")
        units = len(self._order(counts["epoch"]))
        if counts["unit"] > units:
            raise ValueError(f"unit {counts['unit']}: a pass of this stream has {units} units")
        carry = d["carry"]
        dim = self.store.dim(self.hook)
        if carry is not None and not (
            isinstance(carry, torch.Tensor) and carry.dtype.is_floating_point and carry.ndim == 2
            and carry.shape[1] == dim and carry.shape[0] < self.batch_size
        ):  # fmt: skip
            shown = tuple(carry.shape) if isinstance(carry, torch.Tensor) else type(carry).__name__
            raise ValueError(f"carry {shown}: expected None or fewer than {self.batch_size} rows of width {dim}")
        self.start = StreamState(counts["epoch"], counts["unit"], counts["skip"], carry, counts["nonfinite_rows"])
        self.state = dataclasses.replace(self.start)

    @property
    def nonfinite_rows(self) -> int:
        return self.state.nonfinite_rows

    def __iter__(self) -> Iterator[torch.Tensor]:
        s = self.state = dataclasses.replace(self.start)
        while True:
            order = self._order(s.epoch)
            if not order:
                if self.loop:
                    raise UserError(
                        f"hook {self.hook!r}: rank {self.rank} of {self.world_size} has no activations to read"
                    )
                return
            from_start, finite_rows = s.unit == 0, 0
            while s.unit < len(order):
                parts = [s.carry] if s.carry is not None and s.carry.shape[0] else []
                rows, u = sum(p.shape[0] for p in parts), s.unit
                nonfinite = 0
                while u < len(order) and (rows < max(self.shuffle_buffer, self.batch_size) or u == s.unit):
                    block = self.store._read_rows(self.hook, *order[u])
                    finite = torch.isfinite(block).all(dim=1)
                    if not bool(finite.all()):
                        nonfinite += int((~finite).sum())
                        block = block[finite]
                    parts.append(block)
                    rows += block.shape[0]
                    finite_rows += block.shape[0]
                    u += 1
                data = torch.cat(parts) if parts else torch.zeros(0, self.store.dim(self.hook))
                if self.shuffle_buffer > 0:
                    g = torch.Generator().manual_seed((self.seed * 7_919 + s.epoch * 104_729 + s.unit) % 2**64)
                    data = data[torch.randperm(data.shape[0], generator=g)]
                last_round = u >= len(order) and not self.loop
                n_full = data.shape[0] // self.batch_size
                n_batches = n_full + (1 if last_round and not self.drop_last and data.shape[0] % self.batch_size else 0)
                if s.skip and s.skip >= n_batches:  # a resumed position past its round: nothing would move on
                    raise UserError(f"hook {self.hook!r}: resumed at batch {s.skip} of a round of {n_batches}; "
                                    "the checkpoint is not of this stream: remove it to start over")  # fmt: skip
                if s.skip == 0 and s.epoch == 0:
                    s.nonfinite_rows += nonfinite  # distinct rows: counted in the first epoch, once per round
                for b in range(s.skip, n_batches):
                    batch = data[b * self.batch_size : (b + 1) * self.batch_size]
                    s.skip = b + 1
                    if s.skip == n_batches:  # round done: advance before yielding so state_dict resumes after it
                        carry = data[n_full * self.batch_size :].clone() if n_batches == n_full else None
                        s.unit, s.skip, s.carry = u, 0, carry
                    yield batch
                if n_batches == 0:
                    s.unit, s.skip, s.carry = u, 0, data
            if not self.loop:
                return
            if from_start and finite_rows == 0:
                raise UserError(f"hook {self.hook!r}: every row this reader sees is NaN/inf; nothing to train on")
            s.epoch, s.unit, s.skip = s.epoch + 1, 0, 0


def _check_split(split: str, eval_fraction: float) -> None:
    if split not in ("train", "eval", "all"):
        raise UserError(f"split {split!r}: expected train, eval or all")
    if not 0.0 <= eval_fraction < 1.0:
        raise UserError(f"eval fraction {eval_fraction}: expected a number in [0, 1)")


class ActivationStore:
    """Read-only view of an activation store directory.

    Args:
        root: store directory (see module docstring for the layout).
    """

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise UserError(f"activation store {self.root}: not a directory")
        if (self.root / MANIFEST).is_file():
            raise UserError(
                f"activation store {self.root} is one hook's folder of the store {self.root.parent}: pass that "
                f"(hook {self.root.name!r})"
            )
        path = self.root / STORE_JSON
        self.info: dict[str, Any] = read_store_json(path) if path.exists() else {}
        self._manifests: dict[str, dict[str, Any]] = {}
        for sub in sorted(self.root.iterdir()):
            if sub.is_dir() and (sub / MANIFEST).exists():
                self._manifests[sub.name] = read_manifest(sub / MANIFEST)
        self._shapes: dict[tuple[str, int], tuple[int, int]] = {}

    # -- metadata ----------------------------------------------------------------------------------------
    @property
    def hooks(self) -> list[str]:
        return list(self._manifests)

    def manifest(self, hook: str) -> dict[str, Any]:
        if hook not in self._manifests:
            have = ", ".join(self._manifests) or "none"
            raise UserError(f"activation store {self.root}: no hook {hook!r} (hooks: {have})")
        return self._manifests[hook]

    def dim(self, hook: str) -> int:
        return int(self.manifest(hook)["dim"])

    def rows(self, hook: str) -> int:
        return sum(int(s["rows"]) for s in self.manifest(hook)["shards"])

    def sources(self, hook: str) -> dict[str, int]:
        """Rows stored per source (complete or not)."""
        out: dict[str, int] = {}
        for shard in self.manifest(hook)["shards"]:
            for p in shard.get("provenance", []):
                out[p["source"]] = out.get(p["source"], 0) + int(p["rows"])
        return out

    def complete_sources(self, hook: str) -> set[str]:
        """Sources whose rows are all stored: a resumed collection skips these."""
        return set(self.manifest(hook).get("complete", []))

    def require_rows(self, hook: str) -> None:
        if self.rows(hook) == 0:
            raise UserError(f"activation store {self.root}: hook {hook!r} has no rows")

    # -- reading -----------------------------------------------------------------------------------------
    def _shard_path(self, hook: str, i: int) -> Path:
        return self.root / hook / self.manifest(hook)["shards"][i]["file"]

    def check_shards(self, hook: str) -> None:
        """Read every shard's header of `hook` (cheap): a missing, damaged or mismatched shard is refused now, not
        when a stream first reaches it."""
        for i in range(len(self.manifest(hook)["shards"])):
            self._check_shard(hook, i)

    def _check_shard(self, hook: str, i: int) -> None:
        if (hook, i) in self._shapes:
            return
        path = self._shard_path(hook, i)
        entry = self.manifest(hook)["shards"][i]
        try:
            with safe_open(path, framework="pt") as f:
                if KEY not in f.keys():  # noqa: SIM118 (safe_open has no __contains__)
                    raise UserError(f"{path}: no tensor {KEY!r}")
                piece = f.get_slice(KEY)
                shape, dtype = tuple(piece.get_shape()), piece.get_dtype()
        except FileNotFoundError:
            raise UserError(f"{path}: listed in the manifest but missing") from None
        except UserError:
            raise
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise UserError(f"{path}: unreadable shard ({exc})") from None
        dim = self.dim(hook)
        if len(shape) != 2 or shape[1] != dim:
            raise UserError(f"{path}: shape {list(shape)}, but hook {hook!r} holds dim {dim}; mixed dims in one hook")
        if shape[0] != int(entry["rows"]):
            raise UserError(f"{path}: {shape[0]} rows, manifest says {entry['rows']}")
        if dtype not in SHARD_DTYPES:  # integers read as numbers without a word, and trained on
            raise UserError(f"{path}: {dtype} activations; expected a shard of {' or '.join(SHARD_DTYPES.values())}")
        self._shapes[(hook, i)] = shape

    def _read_rows(self, hook: str, shard: int, start: int, stop: int) -> torch.Tensor:
        self._check_shard(hook, shard)
        with safe_open(self._shard_path(hook, shard), framework="pt") as f:
            return f.get_slice(KEY)[start:stop].to(torch.float32)

    def block_rows(self, hook: str) -> int:
        """Rows per block: BLOCK_ROWS, smaller for small hooks (a power of two, >= MIN_BLOCK_ROWS, aiming at
        >= 64 blocks) so that a held-out fraction stays close to what was asked."""
        target = self.rows(hook) // 64
        if target >= BLOCK_ROWS:
            return BLOCK_ROWS
        return max(MIN_BLOCK_ROWS, 1 << max(0, target.bit_length() - 1))

    def units(self, hook: str) -> list[tuple[int, int, int]]:
        """Blocks of rows (shard index, start, stop), the unit of shuffling, rank splitting and hold-out."""
        block = self.block_rows(hook)
        out = []
        for i, shard in enumerate(self.manifest(hook)["shards"]):
            n = int(shard["rows"])
            out.extend((i, a, min(a + block, n)) for a in range(0, n, block))
        return out

    def held_sources(self, hook: str, eval_fraction: float) -> set[str] | None:
        """The sources (clips, files, prompts) of the eval split: `eval_fraction` of them, chosen by a hash of the
        name, never all; a prompt's repeats ("rock", "rock #2": other draws of the same text) go together. None
        (the split is then by blocks) where that would be none (fewer than 1 / (2 · eval_fraction) sources: one
        source would hold out far more rows than asked) or rows lack provenance."""
        if not self.every_row_has_a_source(hook):
            return None
        groups: dict[str, list[str]] = {}
        for shard in self.manifest(hook)["shards"]:
            for r in shard.get("provenance") or []:
                names = groups.setdefault(REPEAT_RE.sub("", r["source"]), [])
                if r["source"] not in names:
                    names.append(r["source"])
        n_eval = min(len(groups) - 1, math.floor(eval_fraction * len(groups) + 0.5))
        if n_eval < 1:
            return None
        held = sorted(groups, key=lambda n: hashlib.sha1(n.encode("utf-8", "surrogateescape")).hexdigest())[:n_eval]
        return {name for g in held for name in groups[g]}

    def split_sources(self, hook: str, split: str, eval_fraction: float) -> set[str] | None:
        """The sources whose rows make `split` (as `split_units` splits), or None where the split is not by whole
        sources (a hook of too few sources split by blocks, or rows without provenance)."""
        _check_split(split, eval_fraction)
        if not self.every_row_has_a_source(hook):
            return None
        every = set(self.sources(hook))
        if split == "all" or eval_fraction == 0.0:
            return every if split != "eval" else set()
        held = self.held_sources(hook, eval_fraction)
        if held is None:
            return None
        return held if split == "eval" else every - held

    def held_copies(self, hook: str, eval_fraction: float) -> list[str]:
        """The held-out sources of `hook` whose audio has the same bytes (the sha256 its origin records) as a
        training source's: a clip collected under two names (a `data make` folder's links and copies) trains under
        one while the other is measured (hunt 199). Empty where the split is not by sources or none is recorded."""
        held = self.split_sources(hook, "eval", eval_fraction)  # empty at --eval-fraction 0
        if not held:
            return []
        origins = self.manifest(hook).get("origins", {})
        trained = {origins[s]["sha256"] for s in set(self.sources(hook)) - held if s in origins}
        return sorted(s for s in held if s in origins and origins[s]["sha256"] in trained)

    def trained_audio(self, hook: str, eval_fraction: float) -> list[str]:
        """The sha256 of the audio files (their recorded origins) whose rows make the training split of `hook`: what
        a later judge checks its held-out clips against (`sae.io.TRAINED_AUDIO`). Empty where none is recorded."""
        origins = self.manifest(hook).get("origins", {})
        trained = self.split_sources(hook, "train", eval_fraction)
        return sorted({o["sha256"] for s, o in origins.items() if trained is None or s in trained})

    def every_row_has_a_source(self, hook: str) -> bool:
        """Every row of `hook` names its source (rows of a store written before provenance name none)."""
        return all(
            sum(int(r["rows"]) for r in shard.get("provenance") or []) == int(shard["rows"])
            for shard in self.manifest(hook)["shards"]
        )

    def _source_units(self, hook: str, wanted: Callable[[str], bool]) -> list[tuple[int, int, int]]:
        """Units over the rows of the sources `wanted` accepts: runs of consecutive such rows, cut into blocks."""
        block = self.block_rows(hook)
        out = []
        for i, shard in enumerate(self.manifest(hook)["shards"]):
            row, run = 0, None
            for rec in [*(shard.get("provenance") or []), None]:
                if rec is not None and wanted(rec["source"]):
                    run = row if run is None else run
                elif run is not None:
                    out.extend((i, a, min(a + block, row)) for a in range(run, row, block))
                    run = None
                row += int(rec["rows"]) if rec is not None else 0
        return out

    def split_units(self, hook: str, split: str, eval_fraction: float) -> list[tuple[int, int, int]]:
        """Units of the train or eval split. The eval split is whole sources (`held_sources`), so no clip has
        rows on both sides; a hook of too few sources is split by blocks, `eval_fraction` of them by hash."""
        _check_split(split, eval_fraction)
        self.require_rows(hook)
        units = self.units(hook)
        if split == "all" or eval_fraction == 0.0:
            return units if split != "eval" else []
        sources = self.split_sources(hook, split, eval_fraction)
        if sources is not None:
            return self._source_units(hook, lambda name: name in sources)
        if len(units) < 2:
            raise UserError(
                f"hook {hook!r} has {self.rows(hook)} rows (one block); a held-out split needs more rows (more "
                "clips), or hold out none (--eval-fraction 0)"
            )
        files = [s["file"] for s in self.manifest(hook)["shards"]]

        def key(u: tuple[int, int, int]) -> str:
            return hashlib.sha1(f"{files[u[0]]}:{u[1]}".encode()).hexdigest()

        n_eval = min(len(units) - 1, max(1, math.floor(eval_fraction * len(units) + 0.5)))
        held = set(sorted(units, key=key)[:n_eval])
        return [u for u in units if (u in held) == (split == "eval")]

    def iter_batches(
        self,
        hook: str,
        batch_size: int,
        split: str = "train",
        eval_fraction: float = 0.05,
        shuffle_buffer: int = 1 << 18,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        loop: bool = False,
        drop_last: bool | None = None,
    ) -> BatchStream:
        """Stream float32 batches of `hook` (NaN/inf rows skipped and counted in `.nonfinite_rows`).

        Args:
            split: "train", "eval" (held-out sources, `split_units`) or "all".
            eval_fraction: share of the sources held out.
            shuffle_buffer: rows shuffled together; 0 reads in store order without shuffling.
            seed: shuffle seed; the same seed gives the same batches.
            rank, world_size: this process reads units rank, rank + world_size, ... of each epoch's order.
            loop: repeat forever with a new order per epoch.
            drop_last: drop a last short batch (default: True when looping or on the train split); a split of
                fewer rows than one batch is then refused, unless looping (the remainder carries over).
        """
        if batch_size <= 0:
            raise UserError(f"batch size {batch_size}: expected a positive integer")
        if not 0 <= rank < world_size:
            raise UserError(f"rank {rank} of world size {world_size}: expected 0 <= rank < world size")
        units = self.split_units(hook, split, eval_fraction)
        if not units:
            raise UserError(f"hook {hook!r}: the {split} split is empty")
        if drop_last is None:
            drop_last = loop or split == "train"
        rows = sum(b - a for _, a, b in units)
        if drop_last and not loop and rows < batch_size:
            raise UserError(f"hook {hook!r}: the {split} split has {rows} rows, fewer than one batch of {batch_size} "
                            "(a short last batch is dropped); use a smaller batch or drop_last=False")  # fmt: skip
        return BatchStream(
            self, hook, int(batch_size), units, int(shuffle_buffer), int(seed), rank, world_size, loop, drop_last
        )

    def iter_segments(self, hook: str, sources: set[str] | None = None) -> Iterator[tuple[str, int, torch.Tensor]]:
        """(source, start_frame, float32 [rows, dim]) per provenance record, in store order (rows as stored); with
        `sources`, only theirs (other rows are not read)."""
        for i, shard in enumerate(self.manifest(hook)["shards"]):
            self._check_shard(hook, i)
            start = 0
            with safe_open(self._shard_path(hook, i), framework="pt") as f:
                sl = f.get_slice(KEY)
                for p in shard.get("provenance", []):
                    n = int(p["rows"])
                    if sources is None or p["source"] in sources:
                        yield p["source"], int(p["start_frame"]), sl[start : start + n].to(torch.float32)
                    start += n

    def sample(
        self, hook: str, n: int, split: str = "train", eval_fraction: float = 0.05, seed: int = 0
    ) -> torch.Tensor:
        """Up to `n` finite rows drawn uniformly from the split, without replacement (for init and stats: the first
        shuffle rounds held the rows of a few blocks, and the scale they gave missed the split's by half)."""
        units = self.split_units(hook, split, eval_fraction)
        ends = np.cumsum([end - start for _, start, end in units])
        total = int(ends[-1]) if len(ends) else 0
        picks = np.sort(np.random.default_rng(seed).choice(total, size=min(n, total), replace=False))
        which = np.searchsorted(ends, picks, side="right")
        by_shard: dict[int, list[int]] = {}
        for u, pick in zip(which.tolist(), picks.tolist(), strict=True):
            shard, start, end = units[u]
            by_shard.setdefault(shard, []).append(start + pick - int(ends[u]) + (end - start))
        parts = []
        for shard, rows in sorted(by_shard.items()):
            self._check_shard(hook, shard)
            with safe_open(self._shard_path(hook, shard), framework="pt") as f:
                piece = f.get_slice(KEY)
                runs = np.split(np.asarray(rows), np.flatnonzero(np.diff(rows) != 1) + 1)  # consecutive rows: one read
                parts += [piece[int(run[0]) : int(run[-1]) + 1].to(torch.float32) for run in runs]
        x = torch.cat(parts) if parts else torch.empty(0, self.dim(hook))
        x = x[torch.isfinite(x).all(1)]
        if not len(x):
            raise UserError(f"hook {hook!r}: every row of the {split} split is NaN/inf; nothing to train on")
        return x


STORE_EXPECTED = "expected the hook folders and shards `musicsae collect rave` or `collect musicgen` writes"


def open_store(path: str | os.PathLike, flag: str = "--store") -> ActivationStore:
    """The activation store a user named (`--store`, `--activations`), opened before any slow work: a missing path,
    a file, one hook's folder, or a folder with no hook in it is one line naming `flag` and what was expected (not
    a mismatch with an SAE's hook found later). The one check of every command that reads a store."""
    root = Path(path)
    if not root.exists():
        raise UserError(f"{flag} {root}: no such folder ({STORE_EXPECTED})")
    if not root.is_dir():
        raise UserError(f"{flag} {root}: a file, not a folder ({STORE_EXPECTED})")
    if (root / MANIFEST).is_file():
        raise UserError(f"{flag} {root}: one hook's folder of the store {root.parent}: pass that (hook {root.name!r})")
    store = ActivationStore(root)
    if not store.hooks:
        raise UserError(f"{flag} {root}: no activation store there ({STORE_EXPECTED})")
    return store
