"""Feature statistics of an SAE over an activation store: what each latent does, as numbers.

One streaming pass over a hook (`feature_stats`) gives, per SAE feature: how often it fires (share of
frames and share of clips, a clip being one store `source`), its largest and mean activation, a histogram
of its non-zero activations, and its top-activating clips (one entry per clip: the peak frame and value).
A second pass (`activation_curves`) re-encodes only the clips that are needed and returns per-frame
activation curves of chosen features, for plots and for cutting audio around the activating frames.

`check_pair` refuses a store and an SAE that come from different models / hooks / widths, and
`clip_purity` scores how much a feature's top clips share one label (of a data manifest or of any
other per-clip tags). Plain torch + numpy; no audio here.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sae.errors import UserError
from sae.model import SparseAutoencoder
from sae.store import ActivationStore

HIST_EDGES = np.linspace(-4.0, 4.0, 41)  # log10 of a non-zero activation
CLIP_RATE_RANGE = (0.01, 0.25)  # the usual filter: features firing on 1-25 % of clips


def resolve_hook(store: ActivationStore, sae: SparseAutoencoder) -> str:
    """The store hook the SAE reads: its `hook_name`, or the store's only hook when the SAE names none."""
    hook = sae.cfg.hook_name
    if hook:
        if hook not in store.hooks:
            raise UserError(
                f"SAE trained on hook {hook!r}, but store {store.root} holds hooks {', '.join(store.hooks) or 'none'}; "
                "use the store the SAE was trained on"
            )
        return hook
    if len(store.hooks) != 1:
        raise UserError(f"SAE names no hook and store {store.root} holds {len(store.hooks)} hooks; expected one")
    return store.hooks[0]


def check_same_model(store: ActivationStore, sae: SparseAutoencoder, sae_dir: str | Path) -> None:
    """Refuse a store and an SAE of different models: by the model file's sha256 where the SAE's cfg.json records
    the store it was trained on (two models of one name told apart, one model under two names the same), else by
    name."""
    from sae.io import cfg_model, read_sae_cfg

    info = store.info.get("model") or {}
    store_model, store_sha = str(info.get("name") or ""), info.get("sha256")
    ident, sha = cfg_model(read_sae_cfg(sae_dir)) if Path(sae_dir).is_dir() else ({}, None)
    if sha and isinstance(store_sha, str):
        if sha != store_sha:
            raise UserError(
                f"SAE {sae_dir} was trained on activations of {ident.get('name', '?')} ({sha[:12]}), but store "
                f"{store.root} holds activations of {store_model or '?'} ({store_sha[:12]}); use the store the SAE "
                "was trained on"
            )
        return  # the same weights, whatever their folder or file is called (as stores tell models apart)
    sae_model = sae.cfg.model_name
    if sae_model and store_model and sae_model != store_model:
        raise UserError(
            f"SAE {sae_dir} was trained on model {sae_model!r}, but store {store.root} holds activations of "
            f"{store_model!r}; use the store the SAE was trained on"
        )


def check_pair(store: ActivationStore, sae: SparseAutoencoder, sae_dir: str = "SAE") -> str:
    """Refuse a store and an SAE of different models, hooks or widths; returns the hook to read."""
    check_same_model(store, sae, sae_dir)
    hook = resolve_hook(store, sae)
    dim = store.dim(hook)
    if dim != sae.cfg.d_in:
        raise UserError(
            f"SAE {sae_dir} reads {sae.cfg.d_in}-dim activations, but store {store.root} hook {hook!r} holds "
            f"{dim}-dim rows; they come from different models or layers"
        )
    store.require_rows(hook)
    return hook


@dataclass
class TopClip:
    """One of a feature's top-activating clips: the clip, its peak frame (in source frames) and value."""

    source: str
    frame: int
    value: float


@dataclass
class FeatureStats:
    """Per-feature statistics over the clips of one hook. Arrays are indexed by feature.

    Attributes:
        hook: store hook.
        sources: the clips, in first-seen order (`top_src` indexes this list).
        frames: rows read.
        frame_fires, clip_fires: rows / clips where the feature is non-zero.
        max_act, sum_act: largest and summed activation.
        hist: [d_sae, bins] counts of log10(non-zero activation) over `HIST_EDGES`.
        top_src, top_frame, top_val: [d_sae, top_n] best clips per feature, best first (top_src -1: empty).
    """

    hook: str
    sources: list[str]
    frames: int
    frame_fires: np.ndarray
    clip_fires: np.ndarray
    max_act: np.ndarray
    sum_act: np.ndarray
    hist: np.ndarray
    top_src: np.ndarray
    top_frame: np.ndarray
    top_val: np.ndarray
    hist_edges: np.ndarray = field(default_factory=lambda: HIST_EDGES.copy())

    @property
    def d_sae(self) -> int:
        return int(self.max_act.shape[0])

    @property
    def clips(self) -> int:
        return len(self.sources)

    @property
    def frame_rate(self) -> np.ndarray:
        """Share of frames on which each feature fires."""
        return self.frame_fires / max(self.frames, 1)

    @property
    def clip_rate(self) -> np.ndarray:
        """Share of clips on which each feature fires at least once."""
        return self.clip_fires / max(self.clips, 1)

    @property
    def mean_active(self) -> np.ndarray:
        """Mean activation over the frames where the feature fires."""
        return self.sum_act / np.maximum(self.frame_fires, 1)

    @property
    def live(self) -> np.ndarray:
        return np.flatnonzero(self.frame_fires > 0)

    def in_clip_range(self, lo: float = CLIP_RATE_RANGE[0], hi: float = CLIP_RATE_RANGE[1]) -> np.ndarray:
        """Features firing on between `lo` and `hi` of the clips (inclusive), by index."""
        rate = self.clip_rate
        return np.flatnonzero((self.frame_fires > 0) & (rate >= lo) & (rate <= hi))

    def top_clips(self, feature: int) -> list[TopClip]:
        out = []
        for s, fr, v in zip(self.top_src[feature], self.top_frame[feature], self.top_val[feature], strict=True):
            if s >= 0 and v > 0:
                out.append(TopClip(self.sources[int(s)], int(fr), float(v)))
        return out

    def summary(self, feature: int) -> dict[str, Any]:
        """JSON-ready numbers of one feature."""
        j = int(feature)
        return {
            "index": j,
            "frame_rate": float(self.frame_rate[j]),
            "clip_rate": float(self.clip_rate[j]),
            "max_act": float(self.max_act[j]),
            "mean_active": float(self.mean_active[j]),
            "top": [{"source": c.source, "frame": c.frame, "value": c.value} for c in self.top_clips(j)],
        }


class _ClipAccumulator:
    """Per-clip maxima of the current clip, merged into per-feature top lists when the clip ends."""

    def __init__(self, d_sae: int, top_n: int) -> None:
        self.top_src = np.full((d_sae, top_n), -1, np.int64)
        self.top_frame = np.zeros((d_sae, top_n), np.int64)
        self.top_val = np.zeros((d_sae, top_n), np.float64)
        self.clip_fires = np.zeros(d_sae, np.int64)
        self.fired: dict[int, np.ndarray] = {}  # source id -> packed fired bits (a clip may come back later)
        self.cur: int | None = None
        self.cur_max = np.zeros(d_sae, np.float64)
        self.cur_frame = np.zeros(d_sae, np.int64)

    def add(self, src: int, f: torch.Tensor, start_frame: int) -> None:
        if src != self.cur:
            self.flush()
            self.cur = src
            self.cur_max[:] = 0.0
        vals, arg = f.max(dim=0)
        vals = vals.double().numpy()
        better = vals > self.cur_max
        self.cur_max[better] = vals[better]
        self.cur_frame[better] = arg.numpy()[better] + start_frame

    def flush(self) -> None:
        if self.cur is None:
            return
        src, m, fr = self.cur, self.cur_max, self.cur_frame
        fired = m > 0
        old = self.fired.get(src)
        new = fired if old is None else fired & ~np.unpackbits(old, count=fired.size).astype(bool)
        self.clip_fires += new
        self.fired[src] = np.packbits(fired | (False if old is None else np.unpackbits(old, count=fired.size) > 0))
        # a clip already in a top list only moves up; others compete for the last slot
        present = self.top_src == src
        has = present.any(axis=1)
        if has.any():
            rows = np.flatnonzero(has)
            cols = present[rows].argmax(axis=1)
            up = m[rows] > self.top_val[rows, cols]
            self.top_val[rows[up], cols[up]] = m[rows[up]]
            self.top_frame[rows[up], cols[up]] = fr[rows[up]]
        cand = np.flatnonzero(fired & ~has & (m > self.top_val[:, -1]))
        if cand.size:
            self.top_val[cand, -1] = m[cand]
            self.top_frame[cand, -1] = fr[cand]
            self.top_src[cand, -1] = src
        touched = np.flatnonzero(has) if not cand.size else np.union1d(np.flatnonzero(has), cand)
        if touched.size:
            order = np.argsort(-self.top_val[touched], axis=1, kind="stable")
            for arr in (self.top_val, self.top_frame, self.top_src):
                arr[touched] = np.take_along_axis(arr[touched], order, axis=1)
        self.cur = None


@torch.no_grad()
def feature_stats(
    store: ActivationStore,
    sae: SparseAutoencoder,
    hook: str | None = None,
    top_n: int = 8,
    skip_sources: Iterable[str] = (),
    batch_rows: int = 8192,
    on_segment: Callable[[int], None] | None = None,
) -> FeatureStats:
    """Stream every segment of `hook` through `sae.encode` and gather per-feature statistics.

    Args:
        hook: store hook (default: the SAE's hook, see `resolve_hook`).
        top_n: top-activating clips kept per feature (one entry per clip).
        skip_sources: clips left out entirely (e.g. whose audio is missing).
        batch_rows: rows encoded at once.
        on_segment: called with the number of rows of each segment read (progress).
    """
    hook = hook or resolve_hook(store, sae)
    d_sae = sae.cfg.d_sae
    device = sae.W_dec.device
    skip = set(skip_sources)
    ids: dict[str, int] = {}
    acc = _ClipAccumulator(d_sae, max(1, int(top_n)))
    frame_fires = torch.zeros(d_sae, dtype=torch.long)
    max_act = torch.zeros(d_sae, dtype=torch.float64)
    sum_act = torch.zeros(d_sae, dtype=torch.float64)
    edges = torch.as_tensor(HIST_EDGES)
    hist = torch.zeros(d_sae * (len(HIST_EDGES) - 1), dtype=torch.long)
    frames = 0
    for source, start, x in store.iter_segments(hook):
        if on_segment is not None:
            on_segment(int(x.shape[0]))
        if source in skip:
            continue
        finite = torch.isfinite(x).all(dim=1)
        src = ids.setdefault(source, len(ids))
        for a in range(0, x.shape[0], batch_rows):
            xb, ok = x[a : a + batch_rows], finite[a : a + batch_rows]
            f = sae.encode(xb.to(device)).float().cpu()
            f[~ok] = 0.0
            f = f.clamp_min(0.0)
            frames += int(ok.sum())
            active = f > 0
            frame_fires += active.sum(0)
            max_act = torch.maximum(max_act, f.max(0).values.double())
            sum_act += f.sum(0, dtype=torch.float64)
            rows, cols = torch.nonzero(active, as_tuple=True)
            if rows.numel():
                logv = f[rows, cols].double().log10().clamp(float(edges[0]), float(edges[-1]) - 1e-9)
                b = torch.bucketize(logv, edges, right=True) - 1
                hist.index_add_(0, cols * (len(edges) - 1) + b, torch.ones_like(b))
            acc.add(src, f, start + a)
    acc.flush()
    return FeatureStats(
        hook=hook,
        sources=list(ids),
        frames=frames,
        frame_fires=frame_fires.numpy(),
        clip_fires=acc.clip_fires,
        max_act=max_act.numpy(),
        sum_act=sum_act.numpy(),
        hist=hist.reshape(d_sae, -1).numpy(),
        top_src=acc.top_src,
        top_frame=acc.top_frame,
        top_val=acc.top_val,
    )


@torch.no_grad()
def activation_curves(
    store: ActivationStore,
    sae: SparseAutoencoder,
    wanted: dict[str, Iterable[int]],
    hook: str | None = None,
) -> dict[str, dict[int, np.ndarray]]:
    """Per-frame activations of the wanted features of the wanted clips: source -> feature -> [frames].

    Frames are indexed by source frame (frame 0 is the clip's start); frames the store lacks are 0.
    """
    hook = hook or resolve_hook(store, sae)
    want = {s: sorted({int(j) for j in js}) for s, js in wanted.items()}
    parts: dict[str, list[tuple[int, np.ndarray]]] = {}
    device = sae.W_dec.device
    for source, start, x in store.iter_segments(hook):
        cols = want.get(source)
        if not cols:
            continue
        finite = torch.isfinite(x).all(dim=1)
        f = sae.encode(torch.where(finite[:, None], x, 0.0).to(device)).float().cpu().clamp_min(0.0)[:, cols]
        f[~finite] = 0.0  # a row readers skip fires nowhere, as in `feature_stats` (a zero row encoded may fire)
        parts.setdefault(source, []).append((start, f.numpy()))
    out: dict[str, dict[int, np.ndarray]] = {}
    for source, segs in parts.items():
        n = max(s + a.shape[0] for s, a in segs)
        full = np.zeros((n, len(want[source])), np.float32)
        for s, a in segs:
            full[s : s + a.shape[0]] = a
        out[source] = {j: full[:, i] for i, j in enumerate(want[source])}
    return out


@dataclass
class Purity:
    """How much a feature's top clips share one label.

    Attributes:
        label: the label most enriched among the top clips (None: no labelled top clip).
        purity: share of the top clips carrying `label`.
        base: share of all labelled clips carrying it.
        clips: labelled top clips counted.
    """

    label: str | None
    purity: float
    base: float
    clips: int

    @property
    def lift(self) -> float:
        return self.purity / self.base if self.base > 0 else math.inf if self.purity > 0 else 0.0


def clip_purity(top_sources: list[str], labels: dict[str, set[str]]) -> Purity:
    """Purity of `top_sources` under per-clip `labels` (source -> label set): `label_purity` of the top clips'
    labels against every labelled clip's."""
    return label_purity([labels[s] for s in top_sources if s in labels], list(labels.values()))


def label_purity(tops: list[set[str]], population: list[set[str]]) -> Purity:
    """Purity of the label sets `tops` (a feature's top clips or snippets) against `population` (all of them).

    The label is the one whose share among the top clips most exceeds its share in the population (ties:
    the larger share), so a label every clip carries never wins by default.
    """
    if not tops or not population:
        return Purity(None, 0.0, 0.0, len(tops))
    base = Counter(lab for ls in population for lab in ls)
    count = Counter(lab for ls in tops for lab in ls)
    if not count:
        return Purity(None, 0.0, 0.0, len(tops))
    n_all = len(population)
    best = max(sorted(count), key=lambda lab: (count[lab] / len(tops) - base[lab] / n_all, count[lab]))
    return Purity(best, count[best] / len(tops), base[best] / n_all, len(tops))
