"""Benchmark: is the probe's chance level (`compare_probes(permutations=...)`, printed by `concept find` as
"shuffled labels ... 95th pct") calibrated when clips come from sources of alike clips (`--groups`)?

Builds `--datasets` data sets with no concept at all: `--sources` sources of `--per-source` clips, the clips of one
source alike (a source's features plus a little noise), half the sources labelled "with". Each runs the whole
procedure (grouped folds, sparse probe) once on its labels, which is a draw of the real null, and `--permutations`
times on shuffled labels: by whole sources (what `sae.probe.shuffled_labels` does) and, as the baseline, clip by
clip (what it did before). A calibrated chance level has its 95th percentile near the real null's, about 5 % of
the data sets above their own 95th percentile, and about 5 % at p <= 0.05. Figures are printed, never asserted.

    .venv/bin/python bench/probe_chance.py
    .venv/bin/python bench/probe_chance.py --datasets 60 --permutations 40
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

PROG = "bench/probe_chance.py"
MIN_SOURCES = 4  # 2 a side: grouped folds never split a source (1 was an IndexError traceback)


def source_count(text: str) -> int:
    n = positive_int(text)
    if n < MIN_SOURCES:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer >= {MIN_SOURCES} (2 sources a side)")
    return n


def noise_data(seed: int, sources: int, per_source: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(SAE features, raw activations, labels, groups) of one data set without a concept."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(sources) < sources // 2, per_source).astype(int)
    groups = np.repeat(np.arange(sources), per_source).astype(str)
    base = rng.normal(size=(sources, 20))[np.repeat(np.arange(sources), per_source)]
    sae = np.abs(base + 0.1 * rng.normal(size=base.shape))
    raw = base[:, :8] + 0.1 * rng.normal(size=(len(y), 8))
    return sae, raw, y, groups


def main() -> None:
    p = Parser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--datasets", type=positive_int, default=30)
    p.add_argument("--permutations", type=positive_int, default=20)
    p.add_argument("--sources", type=source_count, default=16, help=f"at least {MIN_SOURCES}")
    p.add_argument("--per-source", type=positive_int, default=4)
    args = p.parse_args()
    warnings.filterwarnings("ignore")
    import sae.probe as probe

    by_source = probe.shuffled_labels
    ways = {"whole sources (musicsae)": by_source, "clip by clip (baseline)": lambda y, g, rng: rng.permutation(y)}
    real: list[float] = []
    found: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    t0 = time.perf_counter()
    for seed in range(args.datasets):
        S, R, y, g = noise_data(seed, args.sources, args.per_source)
        for name, shuffle in ways.items():
            probe.shuffled_labels = shuffle
            rep = probe.compare_probes(S, R, y, folds=4, seed=seed, groups=g, permutations=args.permutations)
            found[name].append((rep.permutation["p95"], rep.permutation["p_value"]))
        real.append(rep.auroc["sae_probe"])
    probe.shuffled_labels = by_source
    r = np.array(real)
    print(f"{args.datasets} data sets without a concept ({args.sources} sources x {args.per_source} alike clips), "
          f"{args.permutations} shuffles each, {time.perf_counter() - t0:.0f} s")  # fmt: skip
    print(f"real null (the probe's AUROC on its own labels): mean {r.mean():.3f}, 95th percentile "
          f"{np.percentile(r, 95):.3f}")  # fmt: skip
    from sae.stats import wilson

    n = args.datasets
    over = {}
    for name, rows in found.items():
        p95, pv = np.array([a for a, _ in rows]), np.array([b for _, b in rows])
        over[name] = int((r > p95).sum())
        low = int((pv <= 0.05).sum())
        least = 1 / (args.permutations + 1)  # the smallest p value this many shuffles can give
        reach = "" if least <= 0.05 else f" (unreachable: the least p of {args.permutations} shuffles is {least:.2f})"
        print(f"{name}: mean reported 95th pct {p95.mean():.3f}; data sets above their own 95th pct: "
              f"{over[name]} of {n}, {wilson(over[name], n).text(unit=' %')} (calibrated: ~5 %); "
              f"p <= 0.05 in {low} of {n}{reach}")  # fmt: skip
    base, ours = over["clip by clip (baseline)"], over["whole sources (musicsae)"]
    print(
        f"above their own 95th pct, baseline / musicsae: {base} / {ours} of {n} each"
        + (f" ({base / ours:.1f}x; counts this small give the ratio little weight)" if ours else "")
    )


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
