"""Collect MusicGen residual-stream activations into the activation store.

Two sources, one row per audio frame (50 Hz for MusicGen), conditional rows only:
- prompts: generate with classifier-free guidance and record the conditional rows step by step
  (KV cache: one position per step; the delay tail after the last frame is dropped);
- audio: encode each file with the model's compression model and run the LM teacher-forced over the
  codes in chunks (one forward per chunk: much faster than generating). Files are read by the project's one
  reader (`realtime.audio_files`): unreadable, silent or too-short files are skipped with a note.

Provenance: `source` is the prompt text (repeats get ` #2`, ` #3`...) or the audio path relative to the
audio root; `start_frame` counts frames of that source. Resumable: sources complete in every requested
layer are skipped, and rows already stored for a source are not stored twice; an audio file changed since its rows
were stored is refused.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from realtime.audio_files import (
    AudioNotes,
    audio_folder,
    check_collect_folder,
    file_origin,
    list_audio,
    read_mono,
    source_name,
)
from realtime.musicgen import MusicGenBackend, Recorder
from sae.csvfile import parse_csv
from sae.errors import UserError
from sae.ranks import split_by_rank, this_rank
from sae.store import (
    ActivationWriter,
    record_moved,
    refuse_names_of_other_kinds,
    same_collect_settings,
)
from sae.yamlfile import parse_yaml


@dataclass
class CollectConfig:
    """Args:
    out: store directory.
    layers: layer indices to record.
    duration: seconds generated per prompt.
    seed: generation seed of the first batch (batch k uses seed + k).
    batch_size: prompts per generation batch / audio chunks per teacher-forced batch.
    cfg_coef: classifier-free guidance coefficient for generation.
    chunk: seconds of audio per teacher-forced chunk (at most the model's training length).
    description: text condition for audio (None: the null condition, the unconditional branch).
    dtype: store dtype, float16 or float32.
    shard_rows: rows per store shard.
    """

    out: Path
    layers: list[int]
    duration: float = 10.0
    seed: int = 0
    batch_size: int = 4
    cfg_coef: float = 3.0
    chunk: float = 10.0
    description: str | None = None
    dtype: str = "float16"
    shard_rows: int = 65536


def read_prompts(path: str | Path) -> list[str]:
    """Prompts from a .txt (one per line, `#` comments), .csv (`prompt` column) or .yaml/.json list."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--prompts {path}: not a file")
    try:
        text = path.read_text(encoding="utf-8-sig")  # Notepad's and Excel's UTF-8 start with a BOM: '\ufeffprompt'
    except UnicodeDecodeError:
        raise UserError(f"--prompts {path}: not UTF-8 text; expected a .txt, .csv, .yaml or .json of prompts") from None
    suffix = path.suffix.lower()
    if suffix in (".yaml", ".yml", ".json"):
        data = parse_yaml(text, f"--prompts {path}")
        if isinstance(data, dict):
            if other := [k for k in data if k != "prompts"]:  # `seed: 9` beside the prompts was dropped
                raise UserError(f"--prompts {path}: unknown key {other[0]!r}; expected a 'prompts:' list only")
            data = data.get("prompts")
        if not isinstance(data, list) or not all(isinstance(p, str | dict) for p in data):
            raise UserError(f"--prompts {path}: expected a list of prompts (or a 'prompts:' list)")
        for i, p in enumerate(data):  # `promt: drums` dropped the entry, `prompt: [a, b]` played "['a', 'b']"
            if isinstance(p, dict) and not isinstance(p.get("prompt"), str):
                raise UserError(f"--prompts {path}: entry {i + 1} {p!r}: expected a 'prompt' text")
            if isinstance(p, dict) and (other := [k for k in p if k != "prompt"]):  # a job list's seed was dropped
                raise UserError(f"--prompts {path}: entry {i + 1}: unknown key {other[0]!r}; a prompt list takes "
                                "'prompt' only (seed and duration are the command's --seed, --duration)")  # fmt: skip
        prompts = [p if isinstance(p, str) else p["prompt"] for p in data]
    elif suffix == ".csv":
        rows, header = parse_csv(text, f"--prompts {path}")
        if rows and "prompt" not in header:
            raise UserError(f"--prompts {path}: expected a 'prompt' column")
        filled = [str(c) for c in header if c != "prompt" and any(str(r.get(c) or "").strip() for r in rows)]
        extra = any(str(v).strip() for r in rows for v in (r.get(None) or []))  # cells past the header (a comma)
        if filled or extra:  # a `render musicgen --batch` job list's seeds were dropped
            column = repr(filled[0]) if filled else "without a name (a row has more cells than the header)"
            raise UserError(f"--prompts {path}: column {column}; a prompt list takes 'prompt' only (seed and "
                            "duration are the command's --seed, --duration)")  # fmt: skip
        prompts = [r["prompt"] or "" for r in rows]
    else:
        prompts = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    prompts = [p.strip() for p in prompts if p and p.strip()]
    if not prompts:
        raise UserError(f"--prompts {path}: no prompts in the file")
    return prompts


def prompt_sources(prompts: list[str]) -> list[str]:
    """Unique source names: the prompt, with ` #k` on its k-th repeat (k counted on past a name that is another
    prompt's text: 'calm guitar' twice beside 'calm guitar #2' took that prompt's rows for the repeat's)."""
    texts = set(prompts)
    last: dict[str, int] = {}
    used: set[str] = set()
    out = []
    for p in prompts:
        k, name = last.get(p, 0) + 1, p
        if k > 1 or name in used:
            k = max(k, 2)
            while (name := f"{p} #{k}") in used or name in texts:
                k += 1
        last[p] = k
        used.add(name)
        out.append(name)
    return out


def load_audio(path: Path, sample_rate: int, notes: AudioNotes, min_samples: int = 1) -> torch.Tensor | None:
    """Mono float32 [1, N] at `sample_rate` (`realtime.audio_files.read_mono`), or None (noted) when unusable."""
    audio = read_mono(path, sample_rate, notes, min_samples)
    return None if audio is None else torch.from_numpy(audio)[None]


def my_batches(n: int, batch_size: int) -> list[int]:
    """The first positions of this rank's generation batches of `n` prompts (every batch in one process)."""
    return split_by_rank(list(range(0, n, batch_size)))[0]


def my_prompts(n: int, batch_size: int) -> list[int]:
    """The positions of this rank's prompts of `n`."""
    return [i for k in my_batches(n, batch_size) for i in range(k, min(k + batch_size, n))]


class Collector:
    """Writers for the requested layers of one model, and the two ways of filling them."""

    def __init__(self, mg: MusicGenBackend, cfg: CollectConfig):
        self.mg = mg
        self.cfg = cfg
        self.hooks = {i: mg.hook_name(i) for i in cfg.layers}
        self.notes = AudioNotes()  # files skipped (unreadable, silent, shorter than a frame) and resampled
        self.unusable = 0  # files `_chunks` skipped (their notes are in `notes`)
        self.stored = dict.fromkeys(cfg.layers, 0)  # rows stored per layer (a layer added to a store has more)
        self.writers: dict[int, ActivationWriter] = {}
        try:
            for i, hook in self.hooks.items():
                self.writers[i] = ActivationWriter(
                    cfg.out,
                    hook,
                    mg.dim,
                    dtype=cfg.dtype,
                    model=mg.model_ref(),
                    frame_rate=mg.frame_rate,
                    sample_rate=mg.sample_rate,
                    shard_rows=cfg.shard_rows,
                )
        except BaseException:  # a later layer refused: the earlier ones let go (and new ones go, empty)
            self.abort()
            raise

    def done(self) -> set[str]:
        """Sources complete in every layer (skipped on resume)."""
        sets = [w.complete_sources for w in self.writers.values()]
        return set.intersection(*sets) if sets else set()

    def _store(
        self,
        recorders: dict[int, Recorder],
        sources: list[str],
        kind: str,
        start_frame: int | list[int] = 0,
        skip: frozenset[str] = frozenset(),
    ) -> int:
        starts = start_frame if isinstance(start_frame, list) else [start_frame] * len(sources)
        rows = 0
        for i, rec in recorders.items():
            x = rec.result()
            kept = [(b, source) for b, source in enumerate(sources) if source not in skip]
            # rows the writer kept (frames already stored are dropped): a layer added to the store keeps more
            n = sum(self.writers[i].add(x[b], source, starts[b], kind) for b, source in kept)
            self.stored[i] += n
            rows = max(rows, n)
        return rows

    def from_prompts(self, prompts: list[str], progress: Callable[[int, int], None] | None = None) -> int:
        """Generate each prompt and store its conditional rows; returns the frames stored in the layer that stored
        most (per layer: `stored`)."""
        c = self.cfg
        # before it is recorded (a rerun was refused); whole frames, as `check_request`: 30.01 s renders 30 s
        if self.mg.rendered_seconds(c.duration) > self.mg.max_duration:
            raise UserError(f"--duration {c.duration:g}: this model generates at most {self.mg.max_duration:g} s")
        sources = prompt_sources(prompts)
        refuse_names_of_other_kinds(self.cfg.out, "prompts", sources, "prompt")
        same_collect_settings(
            self.cfg.out,
            "prompts",
            {"duration": c.duration, "seed": c.seed, "batch_size": c.batch_size, "cfg_coef": c.cfg_coef},
        )
        done = frozenset(self.done())
        frames = self.mg.frames(self.cfg.duration)
        total = 0
        # batch k of the whole list, with seed + k, even when a resumed run stored some of it: a batch's music
        # depends on its seed and on every prompt in it; the prompts already stored are not stored again
        for k in my_batches(len(prompts), self.cfg.batch_size):
            batch = list(zip(prompts[k : k + self.cfg.batch_size], sources[k : k + self.cfg.batch_size], strict=True))
            todo = [s for _, s in batch if s not in done]
            if not todo:
                continue
            recorders = {i: Recorder(rows=len(batch), limit=frames) for i in self.cfg.layers}
            seed = self.cfg.seed + k // self.cfg.batch_size
            with self.mg.hooks(recorders):
                self.mg.generate([p for p, _ in batch], self.cfg.duration, seed=seed, cfg_coef=self.cfg.cfg_coef)
            n = self._store(recorders, [s for _, s in batch], "prompts", skip=done)
            total += n
            for w in self.writers.values():  # a batch is whole prompts: complete now, not when the next is added
                for s in todo:  # (an interrupted run generated its last stored batch again)
                    w.mark_complete(s)
            if progress:  # what was stored (a layer that held a prompt already keeps none of it), not generated
                progress(len(todo), n)
        return total

    def _chunks(self, files: list[Path], root: Path) -> Iterator[tuple[str, int, torch.Tensor]]:
        """(source, start_frame, codes [K, T]) per chunk of every file not yet complete."""
        hop = self.mg.sample_rate / self.mg.frame_rate
        chunk = max(1, round(self.cfg.chunk * self.mg.frame_rate)) * round(hop)
        done = self.done()
        for path in files:
            source = source_name(path, root)
            if source in done:
                continue
            origin = file_origin(path)
            wav = load_audio(path, self.mg.sample_rate, self.notes, min_samples=math.ceil(hop))
            if wav is None:
                self.unusable += 1  # a file the progress counts all the same
                continue
            for w in self.writers.values():
                if origin is not None:
                    w.set_origin(source, origin)
            wav = self.mg.whole_frames(wav)
            for start in range(0, wav.shape[-1], chunk):
                piece = wav[:, start : start + chunk]
                codes = self.mg.encode(piece[None])[0]
                yield source, round(start / hop), codes

    def from_audio(self, root: str | Path, progress: Callable[[int, int], None] | None = None) -> int:
        """Teacher-force the LM over each file's codes; returns the frames stored in the layer that stored most (per
        layer: `stored`; skipped files: `notes`)."""
        root = Path(root)
        files = list_audio(root, "--audio folder")
        # sources are named relative to the folder: another folder's files of the same names would be taken as done
        folder = str(audio_folder(root).resolve())
        settings = {"chunk": self.cfg.chunk, "description": self.cfg.description, "audio": folder}
        refuse_names_of_other_kinds(self.cfg.out, "audio", (source_name(p, root) for p in files), "file")
        mine = split_by_rank(files)[0]
        moved, note = check_collect_folder(self.cfg.out, "audio", settings, files, mine, root)
        files = mine
        record_moved(self.writers.values(), moved)
        if note is not None:
            self.notes.said.append(note)
        done_before = {source_name(p, root) for p in files} & self.done()
        total = 0
        pending: list[tuple[str, int, torch.Tensor]] = []
        last_source = None

        def flush() -> int:
            """Teacher-force the pending chunks (one batch per chunk length: a file's last chunk is usually
            shorter) and store their rows in the order they came: each file's rows stay whole and in order, and a
            file is marked complete when the next one's rows come. Returns the rows stored in the layer that stored
            most."""
            if not pending:
                return 0
            by_len: dict[int, list[int]] = {}
            for j, item in enumerate(pending):
                by_len.setdefault(item[2].shape[-1], []).append(j)
            rows: list[dict[int, torch.Tensor]] = [{} for _ in pending]
            for idx in by_len.values():
                codes = torch.stack([pending[j][2] for j in idx])
                recorders = {i: Recorder(rows=len(idx), limit=codes.shape[-1]) for i in self.cfg.layers}
                with self.mg.hooks(recorders):
                    self.mg.teacher_force(codes, [self.cfg.description] * len(idx))
                for i, rec in recorders.items():
                    x = rec.result()
                    for b, j in enumerate(idx):
                        rows[j][i] = x[b]
            stored = dict.fromkeys(self.cfg.layers, 0)
            for (source, start, _), by_layer in zip(pending, rows, strict=True):
                for i, x in by_layer.items():  # rows the writer kept (frames already stored are dropped)
                    stored[i] += self.writers[i].add(x, source, start, "audio")
            pending.clear()
            for i, n in stored.items():
                self.stored[i] += n
            return max(stored.values(), default=0)

        ended = 0  # files whose last chunk is pending or stored, not yet counted as done
        self.unusable = 0
        try:
            for source, start, codes in self._chunks(files, root):  # batches span files (short clips: one chunk)
                if last_source is not None and source != last_source:
                    ended += 1
                if len(pending) >= self.cfg.batch_size:
                    n = flush()
                    total += n
                    if progress:
                        progress(ended, n)
                    ended = 0
                pending.append((source, start, codes))
                last_source = source
        except BaseException:
            with contextlib.suppress(Exception):  # keep the chunks already encoded (valid rows), then fail
                flush()
            raise
        n = flush()
        total += n
        if progress:  # the skipped files too: the bar counts every file it was given (it stopped at 9/10)
            progress(ended + int(last_source is not None) + self.unusable, n)
        if files and last_source is None and not done_before and this_rank()[1] == 1:  # a rank's share: its notes
            lines = self.notes.lines()
            why = f" ({lines[-1]})" if lines else ""
            raise UserError(f"--audio {root}: none of {len(files)} file(s) was usable{why}")
        return total

    def close(self) -> None:
        for w in self.writers.values():
            w.close()

    def abort(self) -> None:
        """Keep the rows already buffered (valid), never mark the interrupted source complete."""
        for w in self.writers.values():
            w.__exit__(KeyboardInterrupt, None, None)
