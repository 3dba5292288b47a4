"""PNG plots of SAE training curves and the latent firing histogram (matplotlib, Agg backend)."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: Path, **savefig: Any) -> None:
    """`fig` as a PNG at `path`, written atomically (a killed writer leaves a temporary file `remove_leftovers`
    clears, never a half-written PNG); `savefig`: matplotlib's options (dpi, ...)."""
    from sae.atomic import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", **savefig))


def plot_training(history: list[dict[str, Any]], path: str | os.PathLike, title: str = "") -> Path:
    """FVU, L0 and dead fraction (training batches) against step."""
    plt = _plt()
    path = Path(path)
    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for ax, key, label, log in (
        (axes[0], "fvu", "FVU (train batch)", True),
        (axes[1], "l0", "L0", False),
        (axes[2], "dead", "dead fraction", False),
    ):
        ax.plot(steps, [h[key] for h in history], lw=1.2)
        ax.set_xlabel("step")
        ax.set_title(label)
        if log and all(h[key] > 0 for h in history):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, y=1.03)
    save_png(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_firing(hist: dict[str, Any], path: str | os.PathLike, title: str = "") -> Path:
    """Histogram of log10 firing frequency on held-out activations (dead latents noted)."""
    plt = _plt()
    path = Path(path)
    edges, counts = hist["log10_frequency_edges"], hist["counts"]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.bar(edges[:-1], counts, width=[b - a for a, b in itertools.pairwise(edges)], align="edge")
    ax.set_xlabel("log10 firing frequency")
    ax.set_ylabel("latents")
    ax.set_title(f"{title} (dead: {hist.get('dead', 0)})".strip())
    ax.grid(alpha=0.3)
    save_png(fig, path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
