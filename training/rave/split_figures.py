"""The SAE's own figures on the clips a judge is run on: its reconstruction (FVU with a 95 % interval over clips,
L0) and each concept's probe AUROC (the bank's probe in raw units, with Newcombe's interval), so a held-out font
gets the figures `sae train` and `concept find` give only on the fonts they read (hunt 199 left the demo report
with FVU and AUROC in font only)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sae.metrics import evaluate_by_source
from sae.stats import auroc_interval


def probe_score(features: torch.Tensor, intercept: float, coef: dict[int, float]) -> float:
    """The bank probe's logit of one clip: intercept + Σ coef[i] · mean_t f[t, i] (`sae.bank.ConceptProbe`)."""
    pooled = features.mean(0)
    return float(intercept + sum(c * float(pooled[i]) for i, c in coef.items()))


@torch.no_grad()
def sae_figures(
    model: Any,
    sae: Any,
    hook: str,
    clips: Sequence[np.ndarray],
    files: Sequence[str],
    labels: dict[str, np.ndarray],
    probes: dict[str, Any],
    trained: set[str] | None,
    digests: Sequence[str],
    seed: int = 0,
) -> dict[str, Any]:
    """FVU, its interval over clips (each clip its own source), L0 and the probe AUROC of each concept in `probes`
    (name → `ConceptProbe`; labels[name]: a bool per clip) on `clips` (mono at the model's rate). `trained`: the
    sha256 of the audio the SAE trained on (None: no record); `digests`: each clip's, to count how many it heard."""
    from training.rave.collect import activations_of, chunk_samples, make_streams

    streams, chunk = make_streams(model, [hook]), chunk_samples(model)
    rows = [activations_of(model, a, [hook], chunk, streams)[hook] for a in clips]
    device = sae.W_dec.device
    features = [sae.encode(x.to(device, torch.float32)).cpu() for x in rows]
    m = evaluate_by_source(sae, zip(files, rows, strict=True), seed=seed)
    out: dict[str, Any] = {
        "clips": len(clips),
        "frames": sum(len(x) for x in rows),
        "fvu": m["fvu"],
        "fvu_interval": m["fvu_interval"],
        "l0": m["l0"],
        "trained_on_clips": None if trained is None else sum(d in trained for d in digests),
        "auroc": {},
    }
    for name, probe in probes.items():
        y = labels[name]
        scores = np.array([probe_score(f, probe.intercept, probe.coef) for f in features])
        iv = auroc_interval(scores, y, seed=seed)
        sides = {"with": int(y.sum()), "without": int((~y).sum())}
        out["auroc"][name] = {"value": iv.value, "lo": iv.lo, "hi": iv.hi} | sides
    return out


def figures_line(s: dict[str, Any], split: str) -> str:
    """The console's line of `sae_figures` on `split` ('test', or 'holdout_font': said "held-out font")."""
    split = "held-out font" if split == "holdout_font" else split
    iv = s["fvu_interval"]
    fvu = f"FVU {s['fvu']:.3f}" + (f" [{iv[0]:.3f}, {iv[1]:.3f}]" if iv else "")
    heard = s["trained_on_clips"]
    heard_words = (
        "" if heard is None else f"; the SAE trained on {heard} of them" if heard else "; none of them trained on"
    )
    aurocs = "; ".join(
        f"{n} {a['value']:.2f} [{a['lo']:.2f}, {a['hi']:.2f}] ({a['with']} with, {a['without']} without)"
        for n, a in s["auroc"].items()
    )
    return f"SAE on the {s['clips']} {split} clips{heard_words}: {fvu}, L0 {s['l0']:.1f}" + (
        f"; probe AUROC {aurocs}" if aurocs else "; no concept keeps a probe (an older bank)"
    )


def clip_digests(data: Path, files: Sequence[str]) -> list[str]:
    """The sha256 of each clip file, as `sae train` records the audio it trained on."""
    from sae.bank import file_sha256

    return [file_sha256(data / f) for f in files]
