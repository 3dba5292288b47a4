"""The static feature dashboard: `build_dashboard(sae_dir, store_dir, audio_root, out_dir, ...)`.

Reads the activation store and the SAE (never the model) and writes a site that opens from disk:

    OUT/index.html               every live feature: firing rates, max activation, purity, concepts,
                                 description; sortable, filterable to features firing on 1-25 % of clips
    OUT/features/f00012.html     one page per described feature: numbers, activation histogram, top clips
                                 as playable snippets cut around the peak frame, spectrograms with the
                                 activation curve overlaid, concepts that use it
    OUT/concepts/<name>.html     a bank concept: features, weights, AUROC, before/after steering audio
    OUT/layers.html              per-layer map of the SAEs beside this one (FVU, L0, dead, AUROC)
    OUT/features.json            the same numbers and descriptions as data
    OUT/audio/, OUT/img/, OUT/assets/

The site is built in a temp folder beside OUT and swapped in at the end, so OUT is never half-written.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from realtime.audio_files import AUDIO_EXTENSIONS, c_stderr_hushed, file_change
from sae.atomic import folder_replacing
from sae.bank import Concept, ConceptBank, edit_sha256
from sae.describe import (
    CLIP_RATE_RANGE,
    FeatureStats,
    Purity,
    activation_curves,
    check_pair,
    clip_purity,
    feature_stats,
    label_purity,
)
from sae.errors import UserError
from sae.io import load_sae
from sae.paths import check_outside
from sae.store import open_store, stored_origins
from training.dashboard import assets, layers
from training.dashboard.audio_props import AudioProps, analyse
from training.dashboard.labels import ClipLabels, match_manifest
from training.dashboard.listen import listen_files, listening_table
from training.dashboard.render import (
    SpectrogramPlotter,
    cut,
    histogram_svg,
    read_audio,
    read_channels,
    site_name,
    write_wav,
)
from training.dashboard.verdict import verdict_html

# steering-evaluation audio: file-name tokens (besides the concept's name) -> what the file is, in page order
EVAL_MODES = (
    ("original", ("original", "orig", "clean", "dry", "input")),
    ("no edit", ("plain", "none", "noedit", "before")),
    ("off", ("off",)),
    ("on", ("on",)),
    ("clamp", ("clamp",)),
    ("scale", ("scale",)),
)
EVAL_DIRS = ("eval", "renders", "judge")  # looked for beside the bank file
PITCHED = 0.3  # share of a clip's loud frames that must be periodic for its pitch to be shown
STOPWORDS = {"a", "an", "and", "the", "of", "with", "in", "on", "at", "to", "for", "by", "from", "or", "as", "is"}


def prompt_words(source: str) -> set[str]:
    """Content words of a prompt source (MusicGen stores: the prompt text, ` #k` on repeats)."""
    text = re.sub(r" #\d+$", "", source).lower()
    words = (w.strip("'-") for w in re.findall(r"[^\W\d_][\w'-]*", text))  # letters of any script; 'chill' is chill
    return {w for w in words if len(w) > 1 and w not in STOPWORDS}


def sparkline_svg(curve: np.ndarray, peak: int, width: int = 416, height: int = 60) -> str:
    """Inline SVG of an activation curve over a whole source, the peak frame marked."""
    n = max(len(curve), 2)
    top = max(float(np.max(curve)) if len(curve) else 0.0, 1e-9)
    pts = " ".join(
        f"{i * width / (n - 1):.1f},{height - 4 - (height - 8) * float(v) / top:.1f}" for i, v in enumerate(curve)
    )
    x = peak * width / (n - 1)
    return (
        f'<svg class="curve" width="{width}" height="{height}" role="img" aria-label="activation over the source">'
        f'<polyline fill="none" stroke="#1a7fa0" stroke-width="1.4" points="{pts}"/>'
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}" stroke="#e07a1f" stroke-dasharray="3,2"/></svg>'
    )


SITE_ENTRIES = frozenset(
    {"index.html", "features.json", "layers.html", "assets", "audio", "img", "features", "concepts"}
)
"""What a dashboard holds at its top level: an earlier one is replaced whole."""


def check_site_out(out: Path) -> None:
    """Before any work: OUT is absent, empty, or an earlier dashboard holding nothing else (it is replaced whole:
    an SAE, a store or notes put there were deleted with it)."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is a file; choose another --out")
    if not out.is_dir() or not any(out.iterdir()):
        return
    if not all((out / f).is_file() for f in ("index.html", "features.json")):
        raise UserError(f"{out}: exists and is not a dashboard; choose another --out")
    other = sorted(p.name for p in out.iterdir() if p.name not in SITE_ENTRIES)
    if other:
        raise UserError(f"{out}: an earlier dashboard that also holds {', '.join(other[:3])} (it is replaced whole); "
                        "move those out or choose another --out")  # fmt: skip


@dataclass
class DashboardConfig:
    """Args:
    top_n: top-activating clips per feature page.
    max_pages: feature pages at most (features of bank concepts always get one).
    snippet_seconds: length of each audio snippet, centred on the peak frame.
    clip_range: features firing on this share of clips are the described ones ("1-25 %").
    device: where the SAE encodes ("cpu", "cuda", ...).
    eval_dir: steering-evaluation folder: judge.json, listen/, before/after audio (default: `EVAL_DIRS` beside the
        bank, those that exist).
    """

    top_n: int = 8
    max_pages: int = 100
    snippet_seconds: float = 3.0
    clip_range: tuple[float, float] = CLIP_RATE_RANGE
    device: str = "cpu"
    eval_dir: str | None = None


@dataclass
class ClipView:
    source: str
    frame: int
    value: float
    wav: str
    start: float  # seconds into the clip where the snippet starts
    png: str
    props: AudioProps | None  # None: no audio (prompt sources)
    labels: list[str]
    curve_svg: str = ""


@dataclass
class FeatureView:
    index: int
    clips: list[ClipView] = field(default_factory=list)
    purity: Purity | None = None
    purity_by: str = ""
    description: str = ""
    tags: list[str] = field(default_factory=list)


def _e(x: Any) -> str:
    return html.escape(str(x))


def _page(title: str, body: str, depth: int) -> str:
    up = "../" * depth
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
        f'<link rel="icon" href="data:,"><link rel="stylesheet" href="{up}assets/style.css">'
        f'<script src="{up}assets/app.js"></script></head><body>'
        f'<nav><a href="{up}index.html">features</a><a href="{up}layers.html">layers</a></nav>{body}</body></html>\n'
    )


def shown(name: str) -> str:
    """A source name as text: the bytes of a file name that is not UTF-8 (Latin-1 `café.wav`) shown as '�'."""
    return name.encode(errors="surrogateescape").decode(errors="replace")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", errors="replace")  # a file name that is not UTF-8 is shown with '?'


def _base_of(v: FeatureView) -> str:
    """What a purity's base share is of: tags belong to snippets, and only the snippets on the site's pages have
    them (so it moves with --max-pages); labels belong to every clip."""
    return "the snippets on these pages" if v.purity_by == "property tags" else "all clips"


def _tags(c: ClipView) -> set[str]:
    """A snippet's property tags (none without audio)."""
    return set(c.props.tags) if c.props else set()


def _feature_indices(c: Concept) -> list[int]:
    """The SAE features of a concept: those its probe uses, then those its edits steer (`steer`), each once."""
    steer = [f.index for f in c.steer.features] if c.steer is not None else []
    return list(dict.fromkeys([f.index for f in c.features] + steer))


def _feature_href(j: int, depth: int = 0) -> str:
    return f"{'../' * depth}features/f{j:05d}.html"


def _rank(p: Purity) -> float:
    """Purity shrunk by the number of clips it rests on (1 of 1 clip ranks below 7 of 8)."""
    return p.purity * p.clips / (p.clips + 1)


def _pct(x: float) -> str:
    return f"{100 * x:.2f} %" if x < 0.1 else f"{100 * x:.1f} %"


def _count(n: int, noun: str) -> str:
    """'1 clip', '3 clips'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


class _Progress:
    """rich progress bars, or nothing."""

    def __init__(self, enabled: bool, console=None) -> None:
        self.p = None
        if enabled:
            from rich import get_console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

            from training.cli.quiet import progress_bar

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
            self.p = progress_bar(*columns, console=console or get_console())

    def __enter__(self):
        if self.p:
            self.p.__enter__()
        return self

    def __exit__(self, *exc):
        if self.p:
            self.p.__exit__(*exc)

    def task(self, name: str, total: int):
        if not self.p:
            return lambda n=1: None
        tid = self.p.add_task(name, total=total)
        return lambda n=1: self.p.advance(tid, n)


class DashboardBuilder:
    """Builds the site; see the module docstring. `warnings` collects one-line notes (e.g. missing audio)."""

    def __init__(
        self,
        sae_dir,
        store_dir,
        audio_root,
        out_dir,
        bank_path=None,
        manifest_path=None,
        cfg: DashboardConfig | None = None,
        console=None,
        progress: bool = True,
    ) -> None:
        self.cfg = cfg or DashboardConfig()
        self.sae_dir = Path(sae_dir)
        self.audio_root = Path(audio_root)
        self.out = Path(out_dir)
        if console is None and progress:
            from rich.console import Console

            console = Console(stderr=True)
        self.console = console
        self.progress = progress
        self.warnings: list[str] = []
        if not self.audio_root.is_dir():
            raise UserError(f"audio root {self.audio_root}: not a directory")
        check_site_out(self.out)
        inputs = [(sae_dir, "--sae"), (store_dir, "--store"), (audio_root, "--audio-root"), (bank_path, "--bank"),
                  (manifest_path, "--manifest"), (self.cfg.eval_dir, "--eval-dir")]  # fmt: skip
        check_outside(self.out, inputs, "which is replaced whole")
        if str(self.cfg.device).startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise UserError(f"device {self.cfg.device!r}: CUDA is not available here; use --device cpu")
        self.sae = load_sae(self.sae_dir, device=self.cfg.device)
        self.store = open_store(store_dir, "--store")
        self.hook = check_pair(self.store, self.sae, str(self.sae_dir))
        fr = self.store.info.get("frame_rate")
        if not fr or float(fr) <= 0:
            raise UserError(f"store {self.store.root}: store.json has no frame_rate; cannot place activations in audio")
        self.frame_rate = float(fr)
        if self.cfg.snippet_seconds * self.frame_rate < 1:  # it wrote every snippet as an empty WAV
            raise UserError(f"--snippet {self.cfg.snippet_seconds:g}: shorter than one frame of the store "
                            f"({1 / self.frame_rate:.3g} s)")  # fmt: skip
        self.bank_path = Path(bank_path) if bank_path else None
        self.bank = ConceptBank.load(self.bank_path) if self.bank_path else None
        if self.cfg.eval_dir and not Path(self.cfg.eval_dir).is_dir():
            raise UserError(f"--eval-dir {self.cfg.eval_dir}: not a folder (a steering evaluation's output)")
        self.manifest_path = Path(manifest_path) if manifest_path else None
        if self.manifest_path is not None and not self.manifest_path.exists():
            raise UserError(f"manifest {self.manifest_path}: no such file or folder")
        self.concepts = self._own_concepts()

    # ------------------------------------------------------------------ inputs
    def _note(self, text: str) -> None:
        if text in self.warnings:  # e.g. a damaged file read again for each concept: said once
            return
        self.warnings.append(text)
        if self.console is not None:  # as written: file names are not markup, whatever the console
            self.console.print(text, style="yellow", markup=False, highlight=False, soft_wrap=True)

    def _own_concepts(self) -> list[Concept]:
        """Bank concepts that live in this SAE: found with it (its folder, or a copy of its weights:
        `ConceptBank.uses_sae`), or, for a concept that records no weights, on its hook where the bank's SAE folder
        is gone. (A gone folder of other weights stopped the build, blamed on this SAE; a copy had no page.)"""
        if self.bank is None:
            return []
        own = []
        for c in self.bank:
            gone = c.sae_sha256 is None and c.hook == self.hook and not self.bank.sae_dir(c).exists()
            if self.bank.uses_sae(c, self.sae_dir) or gone:
                self.bank.check_sae(c, self.sae_dir)
                bad = [j for j in _feature_indices(c) if j >= self.sae.cfg.d_sae]
                if bad:
                    raise UserError(
                        f"{self.bank_path}: concept {c.name!r} uses feature {bad[0]}, but SAE {self.sae_dir} has "
                        f"{self.sae.cfg.d_sae} features"
                    )
                own.append(c)
        others = [f"{c.name} ({c.hook}, SAE {c.sae})" for c in self.bank if c not in own]
        if others:  # named here: "listed without pages" listed them nowhere
            self._note(
                f"{len(others)} concept(s) of {self.bank_path} belong to other SAEs, not shown: {', '.join(others)}"
            )
        return own

    def _audio_sources(self) -> list[str]:
        """Sources to leave out: audio files that are missing, unreadable, changed since the store collected them
        (its recorded size and bytes: a folder rendered again under the same names, hunt 193), or shorter than the
        frames the store holds for them (another recording under the same name); each kind named in one line."""
        import soundfile as sf

        rows = self.store.sources(self.hook)
        origins = stored_origins(self.store.root)
        missing, unreadable, changed, short = [], [], [], []
        for s, n in rows.items():
            path = self.audio_root / s
            if not os.path.isfile(path):  # False on any OSError: a prompt longer than a file name may be (hunt 153)
                missing.append(s)
                continue
            try:
                with c_stderr_hushed():  # libmpg123 speaks for itself ("Xing stream size off...": hunt 202)
                    seconds = sf.info(os.fsencode(path)).duration
                why = file_change(path, [o[s] for o in origins if s in o])[0]
            except (RuntimeError, sf.LibsndfileError, OSError):
                unreadable.append(s)
                continue
            if why:
                changed.append(s)
            elif n / self.frame_rate > seconds * 1.05 + 2.0 / self.frame_rate:
                short.append(s)
        bad = missing + unreadable + changed + short
        self.audio = True
        if rows and len(missing) == len(rows) and not any(s.lower().endswith(AUDIO_EXTENSIONS) for s in rows):
            self.audio = False
            self._note(f"the store's {len(rows)} sources are prompts, not audio files: pages show activations only")
            self.missing, self.skipped = [], []
            return []
        if bad and len(bad) == len(rows):
            raise UserError(
                f"none of the {len(rows)} audio files the store {self.store.root} references is usable under "
                f"{self.audio_root} ({len(missing)} missing, {len(unreadable)} unreadable, {len(changed)} changed "
                f"since collected, {len(short)} shorter than their stored frames; first: {next(iter(rows))!r}); pass "
                "the audio root the store was collected from"
            )

        def names(xs: list[str]) -> str:
            return ", ".join(xs[:5]) + (f" (+{len(xs) - 5} more)" if len(xs) > 5 else "")

        n = len(rows)
        prompts = [s for s in missing if not s.lower().endswith(AUDIO_EXTENSIONS)]  # collect musicgen --prompts
        files = [s for s in missing if s not in prompts]
        if prompts:
            self._note(
                f"{len(prompts)} of the store's {n} sources are prompts, not audio files: no clip to play for them, "
                f"left out of the top clips: {names(prompts)}"
            )
        if files:
            self._note(
                f"{len(files)} of {n} audio files referenced by the store are missing under "
                f"{self.audio_root}, skipped: {names(files)}"
            )
        if unreadable:
            self._note(
                f"{len(unreadable)} of {n} audio files under {self.audio_root} are unreadable, skipped: "
                f"{names(unreadable)}"
            )
        if changed:
            self._note(
                f"{len(changed)} of {n} audio files under {self.audio_root} changed since the store collected them "
                f"(other sizes or bytes: their clips are not the activations'), skipped: {names(changed)}"
            )
        if short:
            self._note(
                f"{len(short)} of {n} audio files under {self.audio_root} are shorter than the frames the "
                f"store holds for them (not the collected audio?), skipped: {names(short)}"
            )
        self.missing, self.skipped = missing, bad
        return bad

    # ------------------------------------------------------------------ build
    def build(self) -> Path:
        cfg = self.cfg
        missing = self._audio_sources()
        with folder_replacing(self.out, keep_others=False) as tmp:
            with _Progress(self.progress, self.console) as prog:
                tick = prog.task("reading activations", self.store.rows(self.hook))
                stats = feature_stats(
                    self.store, self.sae, self.hook, top_n=cfg.top_n, skip_sources=missing, on_segment=tick
                )
                if stats.live.size == 0:
                    raise UserError(
                        f"SAE {self.sae_dir} has no live features: none of its {stats.d_sae} features fires on any "
                        f"of the {stats.frames} frames of store {self.store.root} hook {self.hook!r}"
                    )
                self.stats = stats
                self.labels = (
                    match_manifest(self.manifest_path, self.audio_root, stats.sources)
                    if self.manifest_path
                    else ClipLabels()
                )
                self.labels_by = "manifest labels"
                if self.labels.by_name and self.labels.by_name == len(self.labels.labels):
                    self._note(f"manifest {self.manifest_path}: no row is at a source's path under --audio-root; "
                               f"{self.labels.by_name} sources took the labels of the row of the same file name "
                               "(check that the manifest is of these clips)")  # fmt: skip
                if not self.audio and not self.labels.labels:
                    self.labels = ClipLabels(labels={src: prompt_words(src) for src in stats.sources})
                    self.labels_by = "prompt words"
                if self.manifest_path and not self.labels.labels:
                    self._note(f"manifest {self.manifest_path}: no row matches a store source; no labels used")
                pages = self._choose_pages(stats)
                views = self._media(tmp, stats, pages, prog)
                self._label_purity(stats, views)
                tick = prog.task("writing pages", len(views) + len(self.concepts) + 2)
                self._write_assets(tmp)
                for v in views.values():
                    self._feature_page(tmp, stats, v, views)
                    tick()
                for c in self.concepts:
                    self._concept_page(tmp, c, stats, views)
                    tick()
                self._layers_page(tmp)
                self._index(tmp, stats, views)
                self._data(tmp, stats, views)
                tick(2)
            if self.out.exists():  # again: the folder may have changed while the site was built
                check_site_out(self.out)
        return self.out / "index.html"

    def _choose_pages(self, stats: FeatureStats) -> list[int]:
        """Concept features first, then features in the clip-rate range ranked by label purity (with a
        manifest) or by max activation; when no feature is in the range, the live ones."""
        concept_feats = list(dict.fromkeys(j for c in self.concepts for j in _feature_indices(c)))  # shared: once
        cands = stats.in_clip_range(*self.cfg.clip_range)
        if cands.size == 0 and stats.live.size:  # said: the pages are not the range's (hunt 141)
            lo, hi = self.cfg.clip_range
            self._note(f"no live feature fires on {_pct(lo)}–{_pct(hi)} of clips (--clip-range): the pages describe "
                       "the live features by activation instead")  # fmt: skip
            cands = stats.live
        if self.labels.labels:
            key = {int(j): self._purity_of(stats, int(j)) for j in cands}
            order = sorted(key, key=lambda j: (-_rank(key[j]), -min(key[j].lift, 1e9), -stats.max_act[j], j))
        else:
            order = sorted((int(j) for j in cands), key=lambda j: (-stats.max_act[j], j))
        pages = list(dict.fromkeys(concept_feats))
        for j in order:
            if len(pages) >= max(self.cfg.max_pages, len(concept_feats)):
                break
            if j not in pages:
                pages.append(j)
        return pages

    def _purity_of(self, stats: FeatureStats, j: int) -> Purity:
        return clip_purity([c.source for c in stats.top_clips(j)], self.labels.labels)

    def _media(self, out: Path, stats: FeatureStats, pages: list[int], prog) -> dict[int, FeatureView]:
        wanted: dict[str, set[int]] = {}
        for j in pages:
            for c in stats.top_clips(j):
                wanted.setdefault(c.source, set()).add(j)
        n_clips = sum(len(stats.top_clips(j)) for j in pages)
        tick = prog.task("activation curves", len(wanted))
        curves = activation_curves(self.store, self.sae, wanted, self.hook)
        tick(len(wanted))
        (out / "audio").mkdir(parents=True)
        (out / "img").mkdir(parents=True)
        views = {j: FeatureView(j) for j in pages}
        if not self.audio:
            for j in pages:
                for clip in stats.top_clips(j):
                    svg = sparkline_svg(curves[clip.source][j], clip.frame)
                    labels = sorted(self.labels.labels.get(clip.source, ()))
                    views[j].clips.append(ClipView(clip.source, clip.frame, clip.value, "", 0.0, "", None, labels, svg))
            return views
        plotter = SpectrogramPlotter()
        snippets: dict[tuple[str, int], tuple[str, AudioProps]] = {}
        tick = prog.task("snippets and spectrograms", n_clips)
        jobs = sorted(
            ((c.source, j, r, c) for j in pages for r, c in enumerate(stats.top_clips(j))),
            key=lambda t: (t[0], t[1], t[2]),
        )
        unreadable: set[str] = set()  # readable by `sf.info` (`_audio_sources`) but refused by the reader: NaN samples
        for source, j, rank, clip in jobs:
            if source not in unreadable:
                try:
                    y, sr = read_audio(str(self.audio_root / source))
                except UserError as exc:  # one bad clip stopped the whole build after its statistics (hunt 153)
                    unreadable.add(source)
                    self._note(f"{exc}: its clips are shown without audio")
            if source in unreadable:  # as a prompt's: its activations, no snippet
                labels = sorted(self.labels.labels.get(source, ()))
                svg = sparkline_svg(curves[source][j], clip.frame)
                views[j].clips.append(ClipView(source, clip.frame, clip.value, "", 0.0, "", None, labels, svg))
                tick()
                continue
            center = (clip.frame + 0.5) / self.frame_rate
            snip = cut(y, sr, center, self.cfg.snippet_seconds)  # the mono mix: spectrogram and properties
            key = (source, round(snip.start * 1000))
            if key not in snippets:
                name = hashlib.sha1(f"{source}|{key[1]}".encode(errors="surrogateescape")).hexdigest()[:12]
                wav = f"audio/{site_name(Path(source).stem[:40])}_{name}.wav"
                sides, _ = read_channels(str(self.audio_root / source))  # a stereo source plays in stereo
                write_wav(out / wav, snip if sides.shape[1] == 1 else cut(sides, sr, center, self.cfg.snippet_seconds))
                snippets[key] = (wav, analyse(snip.audio, snip.sr))
            wav, props = snippets[key]
            png = f"img/f{j:05d}_{rank}.png"
            plotter.plot(
                out / png,
                snip,
                curves[source][j],
                self.frame_rate,
                title=f"#{j} · {shown(source)} · peak {clip.value:.3g} at {clip.frame / self.frame_rate:.2f} s",
            )
            labels = sorted(self.labels.labels.get(source, ()))
            views[j].clips.append(ClipView(source, clip.frame, clip.value, wav, snip.start, png, props, labels))
            tick()
        for v in views.values():
            v.clips.sort(key=lambda c: -c.value)
        return views

    def _label_purity(self, stats: FeatureStats, views: dict[int, FeatureView]) -> None:
        """Purity by manifest labels when there are any, else by the clips' property tags; then descriptions."""
        if self.labels.labels:
            for v in views.values():
                v.purity, v.purity_by = self._purity_of(stats, v.index), self.labels_by
        else:
            # tags belong to a snippet (a feature's own stretch of its clip), not to the clip: each feature's
            # snippets against every snippet shown, one count per (clip, start)
            shown = {(c.source, c.start): _tags(c) for v in views.values() for c in v.clips}
            for v in views.values():
                tops = [_tags(c) for c in v.clips]
                v.purity, v.purity_by = label_purity(tops, list(shown.values())), "property tags"
        for v in views.values():
            v.description, v.tags = self._describe(v)

    def _describe(self, v: FeatureView) -> tuple[str, list[str]]:
        """What the feature sounds like, in words a musician uses: the label its top clips share (with clip
        counts), their instruments, and only the audio properties that apply (a pitch range only when most top
        clips are pitched; voices only when there are some)."""
        if not v.clips:
            return "no activating clip", []
        n = len(v.clips)
        parts = []
        pur = v.purity
        if pur and pur.label and pur.purity > pur.base:
            k = round(pur.purity * pur.clips)
            label = pur.label.replace("_", " ")
            base = f"(in {100 * pur.base:.0f} % of {_base_of(v)})"
            if 2 * k > pur.clips:  # "mostly" is a majority: 1 of 5 was "mostly voice female" beside 2 of 5 drums
                parts.append(f"mostly {label}: {k} of {pur.clips} top clips {base}")
            elif k >= 2:
                parts.append(f"more {label} than elsewhere: {k} of {pur.clips} top clips {base}")
        inst = self.labels.dominant_instruments([c.source for c in v.clips])
        if inst:
            parts.append(", ".join(f"{name.replace('_', ' ')} in {k} of {n}" for name, k in inst))
        if not self.audio:
            shown = "; ".join(repr(c.source) for c in v.clips[:3])
            parts.append(f"top prompts: {shown}" + (f" (+{n - 3})" if n > 3 else ""))
            return " · ".join(parts), []
        props = [c.props for c in v.clips if c.props]  # a clip the reader refused has none
        pitched = [p for p in props if p.pitch_range and p.periodic >= PITCHED]
        if 2 * len(pitched) > len(props):
            from training.dashboard.audio_props import note_name

            lo = note_name(float(np.median([p.pitch_lo_hz for p in pitched])))
            hi = note_name(float(np.median([p.pitch_hi_hz for p in pitched])))
            parts.append(f"pitch {lo}–{hi}" if lo != hi else f"pitch {lo}")
        voiced = [c for c in v.clips if "voice" in c.labels] if self.labels.labels else []
        if voiced:
            parts.append(f"voice in {len(voiced)} of {n}")
        common = [t for t, k in Counter(t for p in props for t in p.tags).most_common() if k * 2 > len(props)]
        if common:
            parts.append(", ".join(common))
        return " · ".join(parts), common

    # ------------------------------------------------------------------ pages
    def _write_assets(self, out: Path) -> None:
        _write(out / "assets" / "style.css", assets.STYLE)
        _write(out / "assets" / "app.js", assets.SCRIPT)

    def _listed(self, stats: FeatureStats) -> list[int]:
        """Features on the index and in features.json: the live ones and those of concepts."""
        return sorted(set(stats.live.tolist()) | {j for c in self.concepts for j in _feature_indices(c)})

    def _concepts_of(self, j: int) -> list[Concept]:
        return [c for c in self.concepts if j in _feature_indices(c)]

    def _concept_links(self, j: int, depth: int) -> str:
        return " ".join(
            f'<a class="tag concept" href="{"../" * depth}concepts/{_e(c.name)}.html">{_e(c.name)}</a>'
            for c in self._concepts_of(j)
        )

    def _feature_page(self, out: Path, stats: FeatureStats, v: FeatureView, views: dict[int, FeatureView]) -> None:
        j = v.index
        order = sorted(views)
        i = order.index(j)
        prev_next = []
        if i > 0:
            prev_next.append(f'<a href="f{order[i - 1]:05d}.html">&larr; #{order[i - 1]}</a>')
        if i + 1 < len(order):
            prev_next.append(f'<a href="f{order[i + 1]:05d}.html">#{order[i + 1]} &rarr;</a>')
        pur = v.purity
        purity = (
            f"{round(pur.purity * pur.clips)} of {pur.clips} {_e(pur.label)}"
            f' <span class="small muted">(in {100 * pur.base:.0f} % of {_base_of(v)}; by {_e(v.purity_by)})</span>'
            if pur and pur.label
            else "–"
        )
        cards = []
        for c in v.clips:
            p = c.props
            labels = "".join(f'<span class="tag">{_e(t)}</span>' for t in c.labels)
            if p is None:  # no audio: the activation over the whole source
                cards.append(
                    f'<div class="card"><div><b>{_e(c.source)}</b> <span class="muted small">peak {c.value:.3g} at '
                    f"{c.frame / self.frame_rate:.2f} s</span></div>{c.curve_svg}"
                    f'<div class="small">{labels}</div></div>'
                )
                continue
            tags = "".join(f'<span class="tag">{_e(t)}</span>' for t in p.tags)
            pitch = f"pitch {_e(p.pitch_range)} · " if p.pitch_range and p.periodic >= PITCHED else ""
            cards.append(
                f'<div class="card"><div><b>{_e(c.source)}</b> <span class="muted small">peak {c.value:.3g} at '
                f"{c.frame / self.frame_rate:.2f} s</span></div>"
                f'<img src="../{c.png}" alt="spectrogram of {_e(c.source)} with the activation of #{j}" '
                f'width="416" height="168"><audio controls preload="metadata" src="../{c.wav}"></audio>'
                f'<div class="small">{labels}</div><div class="small muted">{pitch}{p.rms_db:.0f} dBFS · '
                f"centroid {p.centroid_hz / 1000:.1f} kHz · {p.onset_rate:.1f} onsets/s {tags}</div></div>"
            )
        body = (
            f'<h1>Feature #{j}</h1><div class="muted">{_e(self.sae_dir.name)} · hook {_e(self.hook)} · '
            f"{' · '.join(prev_next)}</div>"
            f'<p class="lead">{_e(v.description)}</p>'
            f"<p>Concepts using it: {self._concept_links(j, 1) or '<span class=muted>none</span>'}</p>"
            f'<h2>What it sounds like: the clips that make it fire most</h2><p class="small muted">Each snippet is '
            f"centred on the moment the feature fires most; the curve over the spectrogram is its activation.</p>"
            f'<div class="cards">{"".join(cards) or "<p>none</p>"}</div>'
            f"<h2>Numbers</h2>"
            f'<div class="stats"><div><b>{_pct(stats.clip_rate[j])}</b>of clips ({stats.clip_fires[j]} of '
            f"{stats.clips})</div><div><b>{_pct(stats.frame_rate[j])}</b>of frames</div>"
            f"<div><b>{stats.max_act[j]:.3g}</b>max activation</div>"
            f"<div><b>{stats.mean_active[j]:.3g}</b>mean when active</div>"
            f"<div><b>{purity}</b>top clips sharing a label</div></div>"
            f'<h3>Activation histogram</h3><p class="small muted">non-zero activations, log scale</p>'
            f"{histogram_svg(stats.hist[j], stats.hist_edges)}"
        )
        _write(out / _feature_href(j), _page(f"Feature #{j}", body, 1))

    def _concept_page(self, out: Path, c: Concept, stats: FeatureStats, views: dict[int, FeatureView]) -> None:
        rows = []
        for f in c.features:
            j = f.index
            link = f'<a href="../{_feature_href(j)}">#{j}</a>' if j in views else f"#{j}"
            desc = views[j].description if j in views else ""
            rows.append(
                # data-v: "#12" and "8.33 %" sorted as text (16.7 % before 8.33 %)
                f'<tr><td data-v="{j}">{link}</td><td class="num">{f.weight:.3g}</td>'
                f'<td class="num">{f.typical:.3g}</td>'
                f'<td class="num" data-v="{stats.clip_rate[j]:.6g}">{_pct(stats.clip_rate[j])}</td>'
                f'<td class="num">{stats.max_act[j]:.3g}</td>'
                f"<td>{_e(desc)}</td></tr>"
            )
        default = c.default.spelled()
        steers = ""
        if c.steer is not None:
            links = ", ".join(
                f'<a href="../{_feature_href(f.index)}">#{f.index}</a>' if f.index in views else f"#{f.index}"
                for f in c.steer.features
            )
            steers = (f"<p>Its edits steer {len(c.steer.features)} feature(s), chosen by effect (threshold "
                      f"{c.steer.threshold:g}): {links}</p>")  # fmt: skip
        body = (
            f'<h1>Concept {_e(c.name)}</h1><div class="muted">model {_e(c.model.name)} '
            f"({_e(c.model.sha256[:12])}) · hook {_e(c.hook)} · default {_e(default)}</div>"
            f"{self._steering_section(out, c)}"
            f"{self._found_how(c)}"
            f'<h2>The SAE features it uses</h2><table class="sortable"><thead><tr><th data-key>feature</th>'
            f"<th data-key>weight</th><th data-key>typical</th><th data-key>clips fired</th><th data-key>max act</th>"
            f"<th>description</th></tr></thead><tbody>{''.join(rows)}</tbody></table>{steers}"
        )
        _write(out / "concepts" / f"{c.name}.html", _page(f"Concept {c.name}", body, 1))

    @staticmethod
    def _found_how(c: Concept) -> str:
        """How well the concept's probe told clips with it from clips without it, in words: the AUROCs with their
        95 % intervals and the clip counts where the bank records them (an older bank: the point values)."""
        a = c.auroc
        if not isinstance(a.get("sae_probe"), int | float):
            return ""
        names = {"diff_means": "a difference of means", "logistic_raw": "a logistic probe"}
        base = [(v, k) for k, v in a.items() if k in names and isinstance(v, int | float)]
        ci = "in brackets its 95 % interval; " if "sae_probe" in c.auroc_interval else ""
        text = (
            f"On held-out clips, the concept's probe on {len(c.features)} SAE feature(s) told clips with "
            f"{_e(c.name)} from clips without it with an AUROC of {c.auroc_text('sae_probe')} ({ci}0.5: chance, "
            "1: always)"
        )
        if base:
            k = max(base)[1]
            text += f"; the best probe on the raw activations, {names.get(k, _e(k))}, reached {c.auroc_text(k)}"
        if c.clips is not None:
            text += f", on {c.clips.with_} clips with {_e(c.name)} and {c.clips.without} without"
            if c.clips.sources:  # the folds kept each source whole: the intervals rest on this many (hunt 193)
                text += f" from {c.clips.sources} sources"
        return f"<h2>How well it was found</h2><p>{text}.</p>"

    def _eval_dirs(self) -> list[Path]:
        """--eval-dir, else the folders beside the bank that `musicsae demo` / `eval steering` write."""
        if self.cfg.eval_dir:
            return [Path(self.cfg.eval_dir)]
        if self.bank_path is None:
            return []
        return [self.bank_path.parent / n for n in EVAL_DIRS if (self.bank_path.parent / n).is_dir()]

    def _judge_results(self, dirs: list[Path], c: Concept) -> list[tuple[Path, dict]]:
        """Every judge report (`judge.json`) under `dirs` with an entry for concept `c` (the demo writes one for
        its test split and one for its held-out font); one that judged another SAE's concept of that name (a
        concept found again on a new SAE beside an earlier judge/ folder) is noted and left out."""
        out = []
        for d in dirs:
            for js in sorted(d.rglob("judge.json")):
                try:
                    data = json.loads(js.read_text())
                except (OSError, ValueError) as exc:  # said, as a damaged listening example is
                    self._note(f"{js}: unreadable ({type(exc).__name__}: {exc}); its verdicts are left out")
                    continue
                concepts = data.get("concepts") if isinstance(data, dict) else None
                if not (isinstance(concepts, dict) and isinstance(concepts.get(c.name), dict)):
                    continue
                entry = concepts[c.name]  # MusicGen's judge records each concept's SAE, RAVE's its one
                judged = entry.get("sae_sha256") or data.get("sae_sha256")
                if isinstance(judged, str) and c.sae_sha256 and judged != c.sae_sha256:
                    self._note(f"{js}: judged {c.name} with SAE weights {judged[:12]}, not the bank's "
                               f"{c.sae_sha256[:12]} (found again since?); its verdict is left out")  # fmt: skip
                    continue
                edit = entry.get("edit_sha256")
                if isinstance(edit, str) and edit != edit_sha256(c):
                    self._note(f"{js}: judged another edit of {c.name} (its features or steering have changed since: "
                               "found again?); its verdict is left out")  # fmt: skip
                    continue
                out.append((js, data))
        return sorted(out, key=lambda r: r[1].get("split") != "test")  # the fonts the model knows first (stable)

    def _steering_section(self, out: Path, c: Concept) -> str:
        """The listening table (from `listen/listen.json`), the judge's verdict in plain words (from
        `judge.json`), or, without a listening table, the before/after renders found by their file names."""
        dirs = [d for d in self._eval_dirs() if d.is_dir()]
        if not dirs:
            return ""
        every = self._judge_results(dirs, c)
        judged = every[0] if every else None
        parts = []
        found = None
        # the first whose judge is shown, or that has none beside it, and whose table shows something: one with no
        # row left (its audio files gone) or unreadable hid the renders and every later one (hunt 173)
        for path, data in listen_files(dirs, c.name):
            own = (path.parent.parent / "judge.json").resolve()
            mine = next(((js, d) for js, d in every if js.resolve() == own), None)
            if mine is None and own.is_file():  # its judge was left out (noted above), or judged no such concept
                self._note(f"{path}: listening examples of the judge {own}, whose verdict on {c.name} is not shown; "
                           "not shown either")  # fmt: skip
                continue

            def table(path: Path = path, data: dict = data, judge: dict | None = mine[1] if mine else None) -> str:
                html = listening_table(out, c.name, path, data, judge)
                if not html:
                    self._note(f"{path}: no listening example of {c.name} has its audio files there; not shown")
                return html

            shown = self._read_by_hand([path, *([(mine or judged)[0]] if mine or judged else [])], table)
            if shown:  # the calls of the judge that wrote the examples (OUT/listen/listen.json beside OUT/judge.json)
                found, judged = path, mine or judged  # a valid verdict from another folder stays shown
                parts.append(shown)
                break
        if len(every) > 1:  # e.g. the fonts the model knows and a held-out font, side by side
            labels = {"test": "in-font (test split)", "holdout_font": "held-out font"}

            def cell(js: Path, data: dict) -> str:
                title = _e(labels.get(data.get("split"), js.parent.name))
                return f"<div><h3>{title}</h3>{verdict_html(c.name, data, str(js))}</div>"

            cells = [self._read_by_hand([js], lambda js=js, data=data: cell(js, data)) for js, data in every]
            parts.append(f'<div class="pair">{"".join(cells)}</div>')
        elif judged:
            parts.append(self._read_by_hand([judged[0]], lambda: verdict_html(c.name, judged[1], str(judged[0]))))
        if not found:
            parts.append(self._named_renders(out, c, dirs))
        return "".join(parts)

    def _read_by_hand(self, files: list[Path], section: Callable[[], str]) -> str:
        """`section()`'s HTML from the JSON `files` (an evaluation's output, found by name); one whose values are of
        the wrong kind (edited by hand, another tool's) is noted and its section left out, not a traceback."""
        try:
            return section()
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            self._note(f"{' / '.join(map(str, files))}: unexpected contents ({type(exc).__name__}: {exc}); "
                       "its section is left out")  # fmt: skip
            return ""
        except UserError as exc:  # an audio file of the section that cannot be read (a listening example cut short)
            self._note(f"{' / '.join(map(str, files))}: {exc}; its section is left out")
            return ""

    def _named_renders(self, out: Path, c: Concept, dirs: list[Path]) -> str:
        """Before/after audio whose file names hold the concept and a mode (original / no edit / off / on /
        scale), e.g. the renders `musicsae demo` writes."""

        def pattern(name: str) -> re.Pattern:
            return re.compile(rf"(^|[^a-z0-9]){re.escape(name.lower())}([^a-z0-9]|$)")

        pat = pattern(c.name)
        longer = [pattern(o.name) for o in (self.bank or []) if len(o.name) > len(c.name)]
        found: list[tuple[int, str, Path, str]] = []  # (order, mode, file, where it is: folder/path)
        site = self.out.resolve()
        for d in dirs:
            for wav in sorted(d.rglob("*.wav")):
                folders = wav.relative_to(d).parts[:-1]
                # a dashboard built inside eval/ (or the one being written, hidden beside it) holds copies of the
                # renders: found as renders, they doubled at every rebuild until a name was too long (hunt 153)
                if "listen" in folders or any(f.startswith(".") for f in folders) or wav.resolve().is_relative_to(site):
                    continue
                stem = wav.stem.lower()
                if not pat.search(stem) or any(p.search(stem) for p in longer):  # "bright_two_off" is not "bright"'s
                    continue
                rest = set(re.split(r"[^a-z0-9]+", pat.sub(" ", stem)))
                mode = next(((i, m) for i, (m, tokens) in enumerate(EVAL_MODES) if rest & set(tokens)), None)
                if mode:
                    found.append((*mode, wav, f"{d.name}/{wav.relative_to(d).as_posix()}"))
        if not found:
            return ""
        items = []
        for _, mode, wav, where in sorted(found, key=lambda t: (t[0], t[2].name))[:8]:
            # by its path, hashed whole: site_name makes x_y/a.wav and x/y_a.wav one name, and the second overwrote
            tag = hashlib.sha1(where.encode(errors="surrogateescape")).hexdigest()[:8]
            dest = f"audio/eval_{site_name(f'{c.name}_{where.removesuffix(wav.suffix)}')}_{tag}.wav"
            shutil.copyfile(wav, out / dest)
            items.append(
                f'<div><b>{_e(mode)}</b> <span class="small muted">{_e(where)}</span><br>'
                f'<audio controls preload="metadata" src="../{_e(dest)}"></audio></div>'
            )
        where = ", ".join(str(d) for d in dirs)
        return f'<h2>Renders</h2><p class="small muted">from {_e(where)}</p><div class="pair">{"".join(items)}</div>'

    def _layers_page(self, out: Path) -> None:
        rows = layers.layer_rows(layers.sae_dirs_beside(self.sae_dir), self.bank, self._note)
        layers.plot_layers(rows, out / "img" / "layers.png")
        body = (
            '<h1>Per-layer map</h1><p class="muted">SAEs beside '
            f"{_e(self.sae_dir)}: reconstruction quality (FVU, held out where the SAE held rows out; L0, dead "
            "latents; from each metrics.json, or cfg.json where none ships) "
            "and concept separability (held-out AUROC of the SAE-feature probe, from the bank).</p>"
            f'<img src="img/layers.png" alt="per-layer map" style="max-width:100%">'
            f"{layers.layer_table_html(rows)}"
        )
        _write(out / "layers.html", _page("Per-layer map", body, 0))

    def _index(self, out: Path, stats: FeatureStats, views: dict[int, FeatureView]) -> None:
        lo, hi = self.cfg.clip_range
        rate = stats.clip_rate
        rows = []
        for j in self._listed(stats):
            v = views.get(j)
            name = f'<a href="{_feature_href(j)}">#{j}</a>' if v else f"#{j}"
            pur = v.purity if v else (self._purity_of(stats, j) if self.labels.labels else None)
            pv = _rank(pur) if pur and pur.label else -1
            ptxt = f"{round(pur.purity * pur.clips)} of {pur.clips} {_e(pur.label)}" if pur and pur.label else ""
            label = pur.label if pur and pur.label and pur.purity > pur.base else ""
            concepts = " ".join(c.name for c in self._concepts_of(j))
            inrange = int(lo <= rate[j] <= hi and stats.frame_fires[j] > 0)  # as the header counts them
            rows.append(
                (
                    v is None,
                    -pv,
                    -float(stats.max_act[j]),
                    j,
                    f'<tr data-inrange="{inrange}" data-page="{int(v is not None)}" data-label="{_e(label)}" '
                    f'data-rate="{100 * rate[j]:.6g}"><td data-v="{j}">{name}</td>'
                    f"<td>{_e(v.description) if v else ''}</td>"
                    f'<td class="num" data-v="{pv:.4f}">{ptxt}</td>'
                    f'<td class="num" data-v="{rate[j]:.6g}">{_pct(rate[j])}</td>'
                    f'<td class="num" data-v="{stats.frame_rate[j]:.6g}">{_pct(stats.frame_rate[j])}</td>'
                    f'<td class="num" data-v="{stats.max_act[j]:.6g}">{stats.max_act[j]:.3g}</td>'
                    f'<td data-v="{_e(concepts)}">{self._concept_links(j, 0)}</td></tr>',
                    label,
                )
            )
        labels = sorted({r[-1] for r in rows if r[-1]})
        rows = [r[-2] for r in sorted(rows)]  # described first, purest first
        n_in = int(((rate >= lo) & (rate <= hi) & (stats.frame_fires > 0)).sum())
        concept_list = " ".join(
            f'<a class="tag concept" href="concepts/{_e(c.name)}.html">{_e(c.name)}</a>' for c in self.concepts
        )
        notes = "".join(f"<li>{_e(w)}</li>" for w in self.warnings)
        model = (self.store.info.get("model") or {}).get("name", "?")
        options = "".join(f'<option value="{_e(x)}">{_e(x)}</option>' for x in labels)
        body = (
            f'<h1>SAE features · {_e(self.sae_dir.name)}</h1><div class="muted">model {_e(model)} · hook '
            f"{_e(self.hook)} · {stats.d_sae} features, {stats.live.size} live, {n_in} fire on "
            f"{_pct(lo)}–{_pct(hi)} of clips · {_count(stats.clips, 'clip')}, {_count(stats.frames, 'frame')} at "
            f"{self.frame_rate:g} Hz</div>"
            + (f'<ul class="small">{notes}</ul>' if notes else "")
            + (f"<p>Concepts (a page each, to listen to): {concept_list}</p>" if concept_list else "")
            + '<p class="small muted">Each row is one feature of the SAE: what its top clips have in common, how '
            "many of them share a label, and how often it fires. Click a feature to hear its clips; click a "
            "heading to sort.</p>"
            + '<div class="controls">'
            + (
                f'<label>label <select id="label"><option value="">any</option>{options}</select></label>'
                if labels
                else ""
            )
            + '<label>fires on <input type="number" id="minrate" min="0" max="100" step="any" placeholder="0" '
            'style="width:5em"> to <input type="number" id="maxrate" min="0" max="100" step="any" '
            'placeholder="100" style="width:5em"> % of clips</label>'
            f'<label><input type="checkbox" id="inrange"> only {_pct(lo)}–{_pct(hi)}</label>'
            '<label><input type="checkbox" id="pages"> only described</label>'
            '<label>search <input type="search" id="q" placeholder="guitar, bright, #12"></label>'
            '<span class="muted small"><span id="shown"></span> shown</span></div>'
            '<table class="sortable" id="features"><thead><tr><th data-key>feature</th>'
            "<th data-key>what its top clips share</th>"
            '<th data-key data-first="desc" class="desc">top label</th>'
            '<th data-key data-first="desc">clips fired</th><th data-key data-first="desc">frames fired</th>'
            '<th data-key data-first="desc">max act</th><th data-key>concepts</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>"
        )
        _write(out / "index.html", _page(f"SAE features · {self.sae_dir.name}", body, 0))

    def _data(self, out: Path, stats: FeatureStats, views: dict[int, FeatureView]) -> None:
        feats = []
        for j in self._listed(stats):
            d = stats.summary(int(j))
            v = views.get(int(j))
            if v:
                d["description"], d["tags"] = v.description, v.tags
                if v.purity:
                    d["purity"] = {
                        "label": v.purity.label,
                        "purity": v.purity.purity,
                        "base": v.purity.base,
                        "by": v.purity_by,
                    }
                d["clips"] = [
                    {
                        "source": c.source,
                        "frame": c.frame,
                        "value": c.value,
                        "wav": c.wav,
                        "start": c.start,
                        "png": c.png,
                        "labels": c.labels,
                        "props": c.props.to_dict() if c.props else None,
                    }
                    for c in v.clips
                ]
            d["concepts"] = [c.name for c in self._concepts_of(int(j))]
            feats.append(d)
        data = {
            "sae": str(self.sae_dir),
            "store": str(self.store.root),
            "hook": self.hook,
            "model": self.store.info.get("model"),
            "frame_rate": self.frame_rate,
            "d_sae": stats.d_sae,
            "clips": stats.clips,
            "frames": stats.frames,
            "live": int(stats.live.size),
            "clip_range": list(self.cfg.clip_range),
            "missing_audio": self.missing,
            "skipped_audio": self.skipped,
            "warnings": self.warnings,
            "features": feats,
        }
        _write(out / "features.json", json.dumps(data, indent=1))


def build_dashboard(
    sae_dir,
    store_dir,
    audio_root,
    out_dir,
    bank_path=None,
    manifest_path=None,
    cfg: DashboardConfig | None = None,
    console=None,
    progress: bool = True,
) -> Path:
    """Build the static feature dashboard into `out_dir`; returns the path of its index.html.

    Args:
        sae_dir: SAE directory (SAELens layout).
        store_dir: the activation store the SAE was trained on.
        audio_root: folder the store's `source` paths are relative to.
        out_dir: site folder (replaced atomically when it already holds a dashboard).
        bank_path: concept bank YAML (concept pages, concept membership).
        manifest_path: data manifest (.jsonl/.csv or its folder) for labels and purity.
        cfg: sizes and options (`DashboardConfig`).
        console: rich Console for progress and notes (None: progress on a default console).
    """
    return DashboardBuilder(
        sae_dir, store_dir, audio_root, out_dir, bank_path, manifest_path, cfg, console, progress
    ).build()
