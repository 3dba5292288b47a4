"""Benchmark: is the figure `concept musicgen` reports for its chosen layer honest when no layer holds the concept?

Builds `--datasets` data sets of pure noise (labels unrelated to any feature) over `--layers` layers, `--clips`
clips a side. The baseline chooses the layer by the SAE probe's out-of-fold AUROC on every clip and reports that
layer's figures on the same clips (what `concept musicgen` did); musicsae chooses on half of each side's clips
(`training.musicgen.concepts.split_halves`) and reports on the other half. An honest report puts chance (0.5) below
the 95 % interval's lower end in about 2.5 % of the data sets or fewer. Figures are printed, never asserted.

    .venv/bin/python bench/layer_choice.py
    .venv/bin/python bench/layer_choice.py --datasets 60 --layers 24
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from training.cli.args import Parser, positive_int  # noqa: E402

PROG = "bench/layer_choice.py"
MIN_CLIPS = 4  # a side: each half then holds 2 a side, what the probe's folds need (3 was a ValueError traceback)


def clips_a_side(text: str) -> int:
    n = positive_int(text)
    if n < MIN_CLIPS:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {MIN_CLIPS} (half choose the layer)")
    return n


def main() -> None:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=positive_int, default=30)
    p.add_argument("--layers", type=positive_int, default=8)
    p.add_argument("--clips", type=clips_a_side, default=15, help=f"clips a side, at least {MIN_CLIPS}")
    p.add_argument(
        "--k", type=positive_int, default=4, help="features of the sparse probe (fixed: quicker than inner CV)"
    )
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    from sae.probe import compare_probes
    from training.musicgen.concepts import split_halves

    n = args.clips
    y = np.r_[np.ones(n, int), np.zeros(n, int)]
    (w_val, o_val), (w_test, o_test) = split_halves(list(range(n)), list(range(n, 2 * n)), seed=0)
    val, test = np.r_[w_val, o_val].astype(int), np.r_[w_test, o_test].astype(int)
    above = {"chosen and reported on every clip (baseline)": 0, "chosen on half, reported on the other (musicsae)": 0}
    t0 = time.perf_counter()
    for seed in range(args.datasets):
        rng = np.random.default_rng(seed)
        data = [(np.abs(rng.normal(size=(2 * n, 32))), rng.normal(size=(2 * n, 16))) for _ in range(args.layers)]
        whole = [compare_probes(S, R, y, k=args.k, folds=5, seed=0) for S, R in data]
        best = max(range(args.layers), key=lambda i: whole[i].auroc["sae_probe"])
        baseline, ours = above
        above[baseline] += whole[best].intervals["sae_probe"]["lo"] > 0.5

        on_half = [compare_probes(S[val], R[val], y[val], k=args.k, folds=5, seed=0) for S, R in data]
        chosen = max(range(args.layers), key=lambda i: on_half[i].auroc["sae_probe"])
        S, R = data[chosen]
        reported = compare_probes(S[test], R[test], y[test], k=args.k, folds=5, seed=0)
        above[ours] += reported.intervals["sae_probe"]["lo"] > 0.5
    print(f"{args.datasets} pure-noise data sets, {args.layers} layers, {n} + {n} clips, "
          f"{time.perf_counter() - t0:.0f} s")  # fmt: skip
    for name, count in above.items():
        print(f"{name}: interval above chance in {count} of {args.datasets} ({100 * count / args.datasets:.0f} %)")
    base, ours = above.values()
    print(f"above chance, baseline / musicsae: {base / ours:.1f}x" if ours else
          f"above chance: baseline {base}, musicsae 0")  # fmt: skip


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
