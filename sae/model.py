"""TopK and BatchTopK sparse autoencoders (Gao et al. 2024; Bussmann et al. 2024).

    f     = act((x_n - b_dec) @ W_enc + b_enc) / scale      x_n = (x - x_mean) * scale
    x_hat = f @ W_dec + b_dec / scale + x_mean

`act` keeps the k largest pre-activations per row (TopK), or the k·B largest of a batch while training and
those above a learned global `threshold` at inference (BatchTopK). Rows of `W_dec` (decoder directions) stay
at unit norm. Training works in the normalised space `x_n`; `encode`/`decode` take and give raw units, and
`folded()` moves `x_mean`/`scale` into `b_dec`, `b_enc` and `threshold` so a saved SAE needs no side table
(features are then in raw units too; the decoder stays unit norm).

Training uses a sparse path (`train_forward`): one dense encoder matmul without autograd, then only the
selected (row, latent) pairs carry gradients, and decoding is an `embedding_bag` over the selected
decoder rows, so backward costs O(B·k·d_in) instead of O(B·d_sae·d_in).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sae.errors import UserError

ARCHS = ("topk", "batchtopk")
EXPANSION = 8
"""Default dictionary size: d_sae = EXPANSION × d_in (at least MIN_D_SAE)."""
MIN_D_SAE = 64
MAX_K = 32


def default_k(d_in: int) -> int:
    """Active features per row that fit the input: a quarter of its width, 1 .. MAX_K (k = 32 on a
    16-dim RAVE latent would be no sparsity at all)."""
    return max(1, min(MAX_K, d_in // 4))


def default_d_sae(d_in: int) -> int:
    """Dictionary size that scales with the input: EXPANSION × d_in, at least MIN_D_SAE."""
    return max(MIN_D_SAE, EXPANSION * d_in)


def sparsity_warning(k: int, d_in: int) -> str | None:
    """A one-line warning when k is half the input width or more (the code is barely sparse), else None."""
    if 2 * k >= d_in:
        return (
            f"k={k} on {d_in}-dim inputs: at least half as many active features as input dimensions, so the code "
            f"is hardly sparse (default for this width: k={default_k(d_in)})"
        )
    return None


FAR_ROW = 1e4  # rows this many times the median row norm are no activations (a damaged store): out of the scale


def typical_norm(norms: Tensor) -> float:
    """The median of the row norms that are not exactly 0 (0 where none is): `FAR_ROW` counts from it, since rows of
    exact zeros (a hook's output at digital silence, padding) would make every real row look far past a median of 0."""
    live = norms[norms > 0]
    return float(live.median()) if live.numel() else 0.0


@dataclass
class SAEConfig:
    """Args:
    d_in: activation width.
    d_sae: number of latents (d_in × expansion).
    k: active latents per row (TopK), or on average per row (BatchTopK).
    arch: "topk" or "batchtopk".
    hook_name: hook / layer the activations come from.
    model_name: model the activations come from.
    aux_k: latents used by the AuxK loss (default: max(2k, d_in // 2), at most d_sae / 2).
    aux_coef: AuxK loss weight.
    dead_tokens: a latent that has not fired for this many training rows counts as dead (AuxK target).
    threshold_lr: EMA rate of the BatchTopK inference threshold.
    """

    d_in: int
    d_sae: int
    k: int = 32
    arch: str = "topk"
    hook_name: str = ""
    model_name: str = ""
    aux_k: int = 0
    aux_coef: float = 1.0 / 32.0
    dead_tokens: int = 1_000_000
    threshold_lr: float = 0.01

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise UserError(f"SAE architecture {self.arch!r}: expected one of {', '.join(ARCHS)}")
        if self.d_in <= 0 or self.d_sae <= 0:
            raise UserError(f"SAE dims d_in={self.d_in}, d_sae={self.d_sae}: expected positive integers")
        if not 1 <= self.k <= self.d_sae:
            raise UserError(f"k={self.k}: expected 1 <= k <= d_sae ({self.d_sae})")
        if self.aux_k <= 0:
            self.aux_k = max(1, min(max(2 * self.k, self.d_in // 2), self.d_sae // 2))
        self.aux_k = min(self.aux_k, self.d_sae)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SAEConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class _SelectedPreacts(torch.autograd.Function):
    """Values pre[rows, cols] of `pre = (x_n - b_dec) @ W_enc + b_enc`, with gradients through those entries only.

    `pre` is computed (without autograd) by the caller. Backward never forms the dense [B, d_sae] gradient:
    dW_enc is an `embedding_bag` of input rows grouped by latent, O(nnz · d_in).
    """

    @staticmethod
    def forward(
        ctx, x_n: Tensor, b_dec: Tensor, W_enc: Tensor, b_enc: Tensor, pre: Tensor, rows: Tensor, cols: Tensor
    ) -> Tensor:
        ctx.save_for_backward(x_n, b_dec, W_enc, rows, cols)
        return pre[rows, cols]

    @staticmethod
    def backward(ctx, g: Tensor):
        x_n, b_dec, W_enc, rows, cols = ctx.saved_tensors
        d_sae = W_enc.shape[1]
        g_b = torch.zeros(d_sae, dtype=g.dtype, device=g.device).index_add_(0, cols, g)
        g_bdec = g_w = None
        if ctx.needs_input_grad[1]:
            g_bdec = -(W_enc @ g_b)
        if ctx.needs_input_grad[2]:
            order = torch.argsort(cols, stable=True)
            counts = torch.bincount(cols, minlength=d_sae)
            offsets = torch.cumsum(counts, 0) - counts
            rows_sorted, g_sorted = rows[order], g[order]
            g_w = F.embedding_bag(rows_sorted, x_n, offsets, mode="sum", per_sample_weights=g_sorted)
            # x_in = x_n - b_dec: subtract b_dec once per selected entry
            g_w -= g_b[:, None] * b_dec[None, :]
            g_w = g_w.t().contiguous()
        return None, g_bdec, g_w, g_b if ctx.needs_input_grad[3] else None, None, None, None


class SparseAutoencoder(nn.Module):
    """TopK / BatchTopK SAE. Public: `encode`, `decode`, `forward`, `W_enc` [d_in, d_sae], `b_enc`,
    `W_dec` [d_sae, d_in], `b_dec`, `threshold` (BatchTopK), `cfg`.

    Args:
        cfg: the SAE config.
    """

    def __init__(self, cfg: SAEConfig) -> None:
        super().__init__()
        self.cfg = cfg
        W_dec = torch.randn(cfg.d_sae, cfg.d_in)
        W_dec /= W_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(W_dec)
        self.W_enc = nn.Parameter(W_dec.t().clone().contiguous())
        self.b_enc = nn.Parameter(torch.zeros(cfg.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in))
        self.register_buffer("threshold", torch.zeros((), dtype=torch.float64))
        self.register_buffer("x_mean", torch.zeros(cfg.d_in))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("since_fired", torch.zeros(cfg.d_sae, dtype=torch.long))

    # -- shape helpers -----------------------------------------------------------------------------------
    def _check_in(self, x: Tensor, width: int, what: str) -> None:
        if x.shape[-1] != width:
            raise UserError(f"SAE {what} input of width {x.shape[-1]}: expected {width}")

    # -- public, raw units -------------------------------------------------------------------------------
    def pre_acts(self, x: Tensor) -> Tensor:
        """Normalised-space pre-activations [.., d_sae]."""
        x_n = (x.to(self.W_enc.dtype) - self.x_mean) * self.scale
        return (x_n - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: Tensor) -> Tensor:
        """Dense latents [.., d_sae] (zeros where inactive), in raw units: `decode(encode(x)) ≈ x`."""
        self._check_in(x, self.cfg.d_in, "encode")
        pre = self.pre_acts(x)
        if self.cfg.arch == "batchtopk":
            f = pre * (pre > self.threshold.to(pre.dtype))
        else:
            vals, idx = pre.topk(self.cfg.k, dim=-1)
            f = torch.zeros_like(pre).scatter_(-1, idx, vals.relu())
        return f / self.scale

    def decode(self, f: Tensor) -> Tensor:
        self._check_in(f, self.cfg.d_sae, "decode")
        return f.to(self.W_dec.dtype) @ self.W_dec + self.b_dec / self.scale + self.x_mean

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    # -- training (normalised space) --------------------------------------------------------------------
    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.x_mean) * self.scale

    def _select(self, pre: Tensor, batch_topk: bool) -> tuple[Tensor, Tensor, Tensor]:
        """(rows, cols, offsets) of the active latents, rows ascending."""
        B = pre.shape[0]
        k = self.cfg.k
        if batch_topk:
            flat = pre.reshape(-1).topk(k * B, sorted=False).indices.sort().values
            rows, cols = flat // pre.shape[1], flat % pre.shape[1]
            counts = torch.bincount(rows, minlength=B)
            offsets = torch.cumsum(counts, 0) - counts
        else:
            cols = pre.topk(k, dim=1, sorted=False).indices.reshape(-1)
            rows = torch.arange(B, device=pre.device).repeat_interleave(k)
            offsets = torch.arange(0, B * k, k, device=pre.device)
        return rows, cols, offsets

    def _decode_sparse(self, rows: Tensor, cols: Tensor, offsets: Tensor, vals: Tensor) -> Tensor:
        return F.embedding_bag(cols, self.W_dec, offsets, mode="sum", per_sample_weights=vals)

    def train_forward(self, x_n: Tensor, track: bool = True) -> dict[str, Tensor]:
        """Loss terms on a normalised batch x_n [B, d_in]; updates dead-latent counters (and the BatchTopK
        threshold) when `track`. Returns loss, mse (per row, summed over dims), aux, x_hat, l0, fired mask and
        min_active (smallest active value, the BatchTopK threshold target)."""
        cfg = self.cfg
        with torch.no_grad():
            pre = torch.addmm(self.b_enc, x_n - self.b_dec, self.W_enc)
        rows, cols, offsets = self._select(pre, cfg.arch == "batchtopk")
        vals = _SelectedPreacts.apply(x_n, self.b_dec, self.W_enc, self.b_enc, pre, rows, cols).relu()
        x_hat = self._decode_sparse(rows, cols, offsets, vals) + self.b_dec
        err = x_n - x_hat
        mse = err.pow(2).sum(-1).mean()
        active = vals.detach() > 0
        fired = torch.zeros(cfg.d_sae, dtype=torch.bool, device=x_n.device)
        fired[cols[active]] = True
        aux = torch.zeros((), device=x_n.device)
        dead = self.since_fired >= cfg.dead_tokens
        n_dead = int(dead.sum())
        if n_dead > 0 and cfg.aux_coef > 0:
            k_aux = min(cfg.aux_k, n_dead)
            pre_dead = pre.masked_fill(~dead, -math.inf)
            a_cols = pre_dead.topk(k_aux, dim=1, sorted=False).indices.reshape(-1)
            B = x_n.shape[0]
            a_rows = torch.arange(B, device=x_n.device).repeat_interleave(k_aux)
            a_off = torch.arange(0, B * k_aux, k_aux, device=x_n.device)
            a_vals = _SelectedPreacts.apply(x_n, self.b_dec, self.W_enc, self.b_enc, pre, a_rows, a_cols).relu()
            e = err.detach()
            e_hat = self._decode_sparse(a_rows, a_cols, a_off, a_vals)
            denom = (e - e.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
            aux = (e_hat - e).pow(2).sum(-1).mean() / denom
            aux = torch.nan_to_num(aux, nan=0.0)
        if track:
            self.track(fired, x_n.shape[0], vals.detach()[active])
        return {
            "loss": mse + cfg.aux_coef * aux,
            "mse": mse.detach(),
            "aux": aux.detach(),
            "x_hat": x_hat.detach(),
            "l0": active.sum().to(torch.float32) / x_n.shape[0],
            "fired": fired,
            "min_active": vals.detach()[active].min() if bool(active.any()) else vals.new_full((), math.inf),
        }

    @torch.no_grad()
    def track(self, fired: Tensor, n_rows: int, active_vals: Tensor) -> None:
        """Update dead counters (rows since each latent fired) and the BatchTopK threshold."""
        self.since_fired += n_rows
        self.since_fired[fired] = 0
        if self.cfg.arch == "batchtopk" and active_vals.numel():
            lr = self.cfg.threshold_lr
            m = active_vals.min().to(torch.float64)
            self.threshold.copy_(m if float(self.threshold) == 0.0 else (1 - lr) * self.threshold + lr * m)

    @torch.no_grad()
    def calibrate_threshold(self, x: Tensor) -> None:
        """BatchTopK: set the inference threshold so that the latents active on raw rows `x` are k a row on
        average, as training selects them. The running estimate (`track`) starts at the untrained SAE's first batch
        and moves 1 % a step: it lagged pre-activations that fell as training went on, so a 100-step SAE was saved
        with an inference L0 of 1.5 of k 4 (FVU 0.54, where its training batches read 4 and 0.2)."""
        pre = self.pre_acts(x.to(self.W_enc.device)).reshape(-1)
        n = min(self.cfg.k * len(x), pre.numel())
        self.threshold.fill_(float(pre.topk(n).values.min().clamp_min(0.0)))

    @torch.no_grad()
    def project_decoder_grad(self) -> None:
        """Remove the gradient component parallel to each decoder row (keeps unit norm to first order)."""
        if self.W_dec.grad is not None:
            g = self.W_dec.grad
            g -= (g * self.W_dec).sum(1, keepdim=True) * self.W_dec

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)

    # -- initialisation ----------------------------------------------------------------------------------
    def _scale_for(self, energy: float) -> float:
        """The scale that gives rows of mean squared norm `energy` one of d_in; 1 for rows all zero. Clamping the
        energy at 1e-12 left rows of norm 1e-10 at 1e-4 after it, where Adam's steps swamped them: 97 % of the
        features never fired, without a word (hunt 161). At most 1e30, which float32 holds."""
        return min(math.sqrt(self.cfg.d_in / energy), 1e30) if energy > 0 else 1.0

    @torch.no_grad()
    def init_from_sample(
        self, x: Tensor, normalize: str = "auto", median_iters: int = 30, decoder: str = "random", seed: int = 0
    ) -> str:
        """Set normalisation (`scale`: E‖x_n‖² = d_in; `center_scale`: also subtract the mean; `none`;
        `auto`: center when the mean carries more energy than the spread) and b_dec at the geometric
        median of the normalised sample. `decoder="data"` points every decoder row (and encoder column) at a
        different sample row, centred on b_dec: on a narrow input (a 16-dim RAVE latent) random directions
        mostly point where no data is and those features never fire; data directions all start where the data
        is. Returns the normalisation used."""
        wide = x.to(torch.float64)  # the energies of activations past 1e19 overflow float32: an SAE of NaN
        x = x.to(self.W_dec.dtype)
        norms = wide.norm(dim=1)
        far = norms > FAR_ROW * typical_norm(norms)  # a damaged row (1e30) would set the scale of every other one
        if bool(far.any()) and not bool(far.all()):
            wide = wide[~far]
        mean = wide.mean(0)
        spread = (wide - mean).pow(2).sum(-1).mean()
        if normalize == "auto":
            normalize = "center_scale" if mean.pow(2).sum() > spread else "scale"
        if normalize == "center_scale":
            self.x_mean.copy_(mean)
            self.scale.fill_(self._scale_for(float(spread)))
        elif normalize == "scale":
            self.x_mean.zero_()
            self.scale.fill_(self._scale_for(float(wide.pow(2).sum(-1).mean())))
        elif normalize == "none":
            self.x_mean.zero_()
            self.scale.fill_(1.0)
        else:
            raise UserError(f"normalisation {normalize!r}: expected auto, scale, center_scale or none")
        self.b_dec.copy_(geometric_median(self.normalize(x), median_iters))
        if decoder == "data":
            centred = self.normalize(x) - self.b_dec
            g = torch.Generator().manual_seed(seed)
            rows = centred[torch.randint(0, len(centred), (self.cfg.d_sae,), generator=g)]
            rows = rows + 1e-3 * torch.randn(rows.shape, generator=g, dtype=rows.dtype)  # distinct when rows repeat
            rows = rows / rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
            self.W_dec.copy_(rows)
            self.W_enc.copy_(rows.t())
        elif decoder != "random":
            raise UserError(f"decoder init {decoder!r}: expected random or data")
        return normalize

    def normalization(self) -> str:
        """The normalisation `init_from_sample` set (`center_scale`, `scale` or `none`), read off the buffers."""
        if bool(self.x_mean.any()):
            return "center_scale"
        return "none" if bool((self.scale == 1).all()) else "scale"

    # -- export --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def folded(self) -> SparseAutoencoder:
        """A copy with the input normalisation folded into the weights (x_mean = 0, scale = 1)."""
        out = copy.deepcopy(self)
        s = float(self.scale)
        out.b_dec.copy_(self.x_mean + self.b_dec / s)
        out.b_enc.copy_(self.b_enc / s)
        out.threshold.copy_(self.threshold / s)
        out.x_mean.zero_()
        out.scale.fill_(1.0)
        return out


@torch.no_grad()
def geometric_median(x: Tensor, iters: int = 30, eps: float = 1e-8) -> Tensor:
    """Weiszfeld iterations from the mean."""
    m = x.mean(0)
    for _ in range(iters):
        w = 1.0 / (x - m).norm(dim=1).clamp_min(eps)
        m_new = (w[:, None] * x).sum(0) / w.sum()
        if (m_new - m).norm() < 1e-6 * (m.norm() + eps):
            return m_new
        m = m_new
    return m
