"""SAE quality on held-out activations: FVU, explained variance, L0, dead fraction, firing histogram."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from sae.model import SparseAutoencoder
from sae.store import REPEAT_RE

if TYPE_CHECKING:
    from sae.store import ActivationStore

HIST_EDGES = [float(e) for e in torch.arange(-8.0, 0.01, 0.5).tolist()]  # log10 firing frequency


@dataclass
class Moments:
    """Rows, squared reconstruction error, sum of squares and sum of rows of some activations (float64), the last two
    taken about a shift shared by every `Moments` that are added (rows far from 0 lost their variance to
    cancellation: rows × 0.01 + 3000 read FVU NaN): what the FVU of any union of them is computed from."""

    n: int
    sse: float
    sum_sq: float
    sum_x: Tensor

    @staticmethod
    def of(x: Tensor, x_hat: Tensor, shift: Tensor | None = None) -> Moments:
        x, x_hat = x.double(), x_hat.double()
        sse = float((x - x_hat).pow(2).sum())
        if shift is not None:
            x = x - shift
        return Moments(x.shape[0], sse, float(x.pow(2).sum()), x.sum(0))

    def __add__(self, other: Moments) -> Moments:
        return Moments(self.n + other.n, self.sse + other.sse, self.sum_sq + other.sum_sq, self.sum_x + other.sum_x)

    @property
    def fvu(self) -> float:
        """sse over the variance about the mean; NaN where the rows have none (one row, rows all alike): not sse /
        1e-30 (1e31). The variance counts where it is over 1e-9 of the sum of squares about the shift, which is
        near the mean, so rounding of rows all alike stays under it and rows far from 0 keep theirs."""
        total_var = self.sum_sq - float(self.sum_x.pow(2).sum()) / self.n if self.n else 0.0
        return self.sse / total_var if total_var > 1e-9 * self.sum_sq else math.nan


class RunningMetrics:
    """Accumulates reconstruction and sparsity statistics over batches of raw activations."""

    def __init__(self, d_sae: int) -> None:
        self.n = 0
        self.sse = 0.0
        self.sum_sq = 0.0
        self.sum_x: Tensor | None = None
        self.shift: Tensor | None = None  # the first batch's mean: sums about it keep the variance of offset rows
        self.nnz = 0
        self.fires = torch.zeros(d_sae, dtype=torch.long)

    def update(self, x: Tensor, x_hat: Tensor, f: Tensor) -> Moments:
        """Add a batch; returns its reconstruction moments (for per-source sums)."""
        if self.shift is None:
            self.shift = x.double().reshape(-1, x.shape[-1]).mean(0)
        mo = Moments.of(x, x_hat, self.shift)
        self.n += mo.n
        self.sse += mo.sse
        self.sum_sq += mo.sum_sq
        self.sum_x = mo.sum_x if self.sum_x is None else self.sum_x + mo.sum_x
        active = f != 0
        self.nnz += int(active.sum())
        self.fires += active.sum(0).cpu()
        return mo

    def result(self) -> dict[str, Any]:
        """Every figure; with no rows, each of them NaN (nothing measured), so a caller's keys are always there."""
        if self.n == 0:
            return (
                {"rows": 0}
                | {k: math.nan for k in ("fvu", "explained_variance", "mse", "l0", "dead_fraction")}
                | {
                    "dead_latents": None,
                    "firing_histogram": None,
                }
            )
        fvu = Moments(self.n, self.sse, self.sum_sq, self.sum_x).fvu
        freq = self.fires.double() / self.n
        alive = freq[freq > 0]
        counts = torch.zeros(len(HIST_EDGES) - 1)
        if alive.numel():
            logf = alive.log10().clamp(HIST_EDGES[0], HIST_EDGES[-1]).float()
            counts = torch.histogram(logf, bins=torch.tensor(HIST_EDGES)).hist
        return {
            "rows": self.n,
            "fvu": fvu,
            "explained_variance": 1.0 - fvu,
            "mse": self.sse / self.n,
            "l0": self.nnz / self.n,
            "dead_fraction": float((self.fires == 0).double().mean()),
            "dead_latents": int((self.fires == 0).sum()),
            "firing_histogram": {
                "log10_frequency_edges": HIST_EDGES,
                "counts": [int(c) for c in counts.tolist()],
                "dead": int((self.fires == 0).sum()),
            },
        }


@torch.no_grad()
def evaluate(sae: SparseAutoencoder, batches: Iterable[Tensor], max_rows: int | None = None) -> dict[str, Any]:
    """Metrics of `sae` (inference path: BatchTopK uses its threshold) on raw-unit batches ([..., d_in]: leading
    dimensions are rows)."""
    device = sae.W_dec.device
    m = RunningMetrics(sae.cfg.d_sae)
    for x in batches:
        if max_rows is not None and m.n >= max_rows:
            break
        x = x.reshape(-1, x.shape[-1])
        if max_rows is not None:
            x = x[: max_rows - m.n]
        x = x.to(device, torch.float32)
        f = sae.encode(x)
        m.update(x, sae.decode(f), f)
    return m.result()


@torch.no_grad()
def evaluate_by_source(
    sae: SparseAutoencoder,
    segments: Iterable[tuple[str, Tensor]],
    max_rows: int | None = None,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """`evaluate`'s metrics over (source, raw rows) segments, with `fvu_interval`: the 95 % bootstrap interval of
    the FVU over sources (clips resampled whole: rows of one clip are not independent; a prompt's repeats as one),
    `sources`, and
    `nonfinite_rows` (rows with NaN/inf, skipped as `iter_batches` skips them)."""
    device = sae.W_dec.device
    m = RunningMetrics(sae.cfg.d_sae)
    per: dict[str, Moments] = {}
    nonfinite = 0
    for source, x in segments:
        if max_rows is not None and m.n >= max_rows:
            break
        finite = torch.isfinite(x).all(1)
        nonfinite += int((~finite).sum())
        x = x[finite]
        if max_rows is not None:
            x = x[: max_rows - m.n]
        if not len(x):
            continue
        x = x.to(device, torch.float32)
        f = sae.encode(x)
        mo = m.update(x, sae.decode(f), f)
        unit = REPEAT_RE.sub("", source)  # a prompt's repeats ("rock", "rock #2") are held out, so resampled, together
        per[unit] = per[unit] + mo if unit in per else mo
    out = m.result()
    out["sources"] = len(per)
    out["nonfinite_rows"] = nonfinite
    iv = _fvu_interval(list(per.values()), n_boot, seed)
    # a resample of every source once is the point itself, summed in another order: its last bits put the point
    # outside a bound it is (0.44758993637696914 above 0.44758993637696903, with 2 sources)
    out["fvu_interval"] = None if iv is None else [min(iv[0], out["fvu"]), max(iv[1], out["fvu"])]
    return out


def evaluate_split(
    sae: SparseAutoencoder,
    store: ActivationStore,
    hook: str,
    split: str,
    eval_fraction: float,
    max_rows: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """`evaluate`'s metrics on the rows of one split of `hook` (store order), with `nonfinite_rows`; where the split
    is by whole sources, also `evaluate_by_source`'s interval over them."""
    sources = store.split_sources(hook, split, eval_fraction)
    if sources is not None:
        segments = ((source, x) for source, _, x in store.iter_segments(hook, sources))
        return evaluate_by_source(sae, segments, max_rows, seed=seed)
    stream = store.iter_batches(hook, 4096, split, eval_fraction, shuffle_buffer=0, drop_last=False)
    out = evaluate(sae, stream, max_rows=max_rows)
    out["nonfinite_rows"] = stream.nonfinite_rows
    return out


def _fvu_interval(per: list[Moments], n_boot: int, seed: int) -> list[float] | None:
    """2.5 and 97.5 percentiles of the FVU over bootstrap resamples of whole sources (None below 2 sources, and
    where over 2.5 % of the resamples have no FVU: sources with no variance, such as clips of one frame, drawn
    alone; their sse / 1e-30 made an upper bound of 2e30)."""
    if len(per) < 2:
        return None
    n = torch.tensor([p.n for p in per], dtype=torch.float64)
    sse = torch.tensor([p.sse for p in per], dtype=torch.float64)
    sq = torch.tensor([p.sum_sq for p in per], dtype=torch.float64)
    sx = torch.stack([p.sum_x.cpu() for p in per])
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(per), (n_boot, len(per)), generator=g)
    w = torch.zeros(n_boot, len(per), dtype=torch.float64).scatter_add_(
        1, idx, torch.ones_like(idx, dtype=torch.float64)
    )
    sum_sq = w @ sq
    total_var = sum_sq - (w @ sx).pow(2).sum(1) / (w @ n)
    defined = total_var > 1e-9 * sum_sq  # the point estimate's rule (`RunningMetrics.result`)
    if float((~defined).double().mean()) > 0.025:
        return None
    fvu = (w @ sse)[defined] / total_var[defined]
    lo, hi = torch.quantile(fvu, torch.tensor([0.025, 0.975], dtype=torch.float64)).tolist()
    return [lo, hi]


def batch_fvu(x: Tensor, x_hat: Tensor) -> float:
    """FVU of one batch (variance about the batch mean); NaN where the batch has none (one row, rows all alike), by
    `RunningMetrics.result`'s rule: sse / 1e-30 put 2e30 in the history and the curves."""
    x = x.reshape(-1, x.shape[-1])
    return Moments.of(x, x_hat.reshape(x.shape), shift=x[0].double()).fvu
