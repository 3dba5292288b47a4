"""Benchmark: our SAE trainer vs dictionary_learning's TopK trainer, same activations, same run.

Both train a TopK SAE (same k, expansion, steps, batch, LR, schedule: no warm-up, linear decay over the last
20 %) on the same activation store, reading the same shuffled batches through `ActivationStore.iter_batches`,
on the same number of CPU threads. Each trainer runs `--repeats` times (default 3), the order alternating
(ours first, then theirs first, ...), each repeat from its own initialisation seed (`--seed` + repeat, the
same for both trainers, each drawing its own weights); the synthetic data has its own seed (`--data-seed`),
so no start sits at the planted answer. Prints every run, the medians of tokens/s and of the held-out FVU
after the same number of steps, and the throughput ratio of the medians. Timings are printed, never asserted.

    pip install --no-deps dictionary-learning==0.1.0      # only for this benchmark (its deps pin nnsight)
    .venv/bin/python bench/sae_train.py                     # synthetic planted activations
    .venv/bin/python bench/sae_train.py --activations runs/acts --hook latent --k 16 --expansion 8

Only `dictionary_learning/trainers/top_k.py` (and the modules it imports) is loaded: the package
`__init__` imports nnsight, which the benchmark neither needs nor installs.
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sae.errors import UserError  # noqa: E402
from sae.metrics import RunningMetrics  # noqa: E402
from sae.store import ActivationStore, open_store  # noqa: E402
from sae.synthetic import planted_store  # noqa: E402
from sae.train import TrainConfig, train_hook  # noqa: E402
from training.cli.args import Parser, integer, number, positive_float, positive_int, seed_int, thread_count  # noqa: E402

PROG = "bench/sae_train.py"


@functools.cache
def load_dictionary_learning_topk():
    """Import dictionary_learning's TopKTrainer without running the package __init__ (nnsight); once per run
    (the stand-in package modules have no spec, so a second find_spec would fail)."""
    spec = importlib.util.find_spec("dictionary_learning")
    if spec is None or spec.origin is None:
        raise UserError("dictionary_learning is not installed: pip install --no-deps dictionary-learning==0.1.0")
    root = Path(spec.origin).parent
    for name, path in (("dictionary_learning", root), ("dictionary_learning.trainers", root / "trainers")):
        if name not in sys.modules:
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            sys.modules[name] = module
    from dictionary_learning.trainers.top_k import TopKTrainer

    return TopKTrainer


def run_baseline(store: ActivationStore, hook: str, args, lr: float, seed: int) -> dict:
    TopKTrainer = load_dictionary_learning_topk()
    d_in = store.dim(hook)
    d_sae = d_in * args.expansion
    # dictionary_learning's own training loop scales inputs to E||x||^2 = d_in; do the same here
    sample = store.sample(hook, 16384, "train", args.eval_fraction, args.seed)
    scale = math.sqrt(d_in / float(sample.pow(2).sum(-1).mean()))
    trainer = TopKTrainer(
        steps=args.steps,
        activation_dim=d_in,
        dict_size=d_sae,
        k=args.k,
        layer=0,
        lm_name="bench",
        lr=lr,
        warmup_steps=0,
        decay_start=int(args.steps * 0.8),
        seed=seed,
        device="cpu",
    )
    stream = store.iter_batches(
        hook, args.batch_size, "train", args.eval_fraction, args.shuffle_buffer, seed, loop=True
    )
    it = iter(stream)
    t0 = time.perf_counter()
    for step in range(args.steps):
        trainer.update(step, next(it) * scale)
    elapsed = time.perf_counter() - t0
    ae = trainer.ae.eval()
    m = RunningMetrics(d_sae)
    with torch.no_grad():
        for x in store.iter_batches(hook, 4096, "eval", args.eval_fraction, shuffle_buffer=0, drop_last=False):
            f = ae.encode(x * scale)
            m.update(x, ae.decode(f) / scale, f)
    out = m.result()
    out["tokens_per_s"] = args.steps * args.batch_size / elapsed
    return out


def main() -> int:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--activations", help="activation store (default: synthetic planted activations)")
    p.add_argument("--hook", help="hook in the store (default: the first)")
    p.add_argument("--d", type=positive_int, default=256, help="synthetic: activation width")
    p.add_argument("--features", type=positive_int, default=2048, help="synthetic: planted features")
    p.add_argument("--k-true", type=positive_int, default=16, help="synthetic: active planted features per row")
    p.add_argument("--rows", type=positive_int, default=100_000, help="synthetic: rows")
    p.add_argument("--k", type=positive_int, default=32)
    p.add_argument("--expansion", type=positive_int, default=8)
    p.add_argument("--steps", type=positive_int, default=300)
    p.add_argument("--batch-size", type=positive_int, default=2048)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--seed", type=seed_int, default=0, help="initialisation (and batch order) seed of the first repeat")
    p.add_argument("--data-seed", type=seed_int, default=1000, help="synthetic data seed (independent of --seed)")
    p.add_argument("--repeats", type=positive_int, default=3, help="runs of each trainer, alternating which goes first")
    p.add_argument("--eval-fraction", type=number, default=0.1)
    p.add_argument("--shuffle-buffer", type=integer, default=1 << 16)
    p.add_argument("--threads", type=thread_count, default=1)
    args = p.parse_args()
    load_dictionary_learning_topk()  # the baseline's package, before any work (it was said after ours had trained)
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory(prefix="sae_bench_") as tmp:
        if args.activations:
            store = open_store(args.activations, "--activations")
            hook = args.hook or store.hooks[0]
        else:
            planted_store(
                Path(tmp) / "acts",
                n=args.rows,
                d=args.d,
                n_features=args.features,
                k_true=args.k_true,
                seed=args.data_seed,
                offset=0.0,
                noise=0.05,
                dtype="float16",
                shard_rows=32768,
            )
            store, hook = ActivationStore(Path(tmp) / "acts"), "synthetic"
        d_in = store.dim(hook)
        d_sae = d_in * args.expansion
        lr = args.lr or 2e-4 / math.sqrt(d_sae / 16384)
        print(
            f"activations: {store.root if args.activations else 'synthetic planted'} hook={hook} "
            f"rows={store.rows(hook)} d_in={d_in}; SAE TopK k={args.k} d_sae={d_sae}; steps={args.steps} "
            f"batch={args.batch_size} lr={lr:.2e} threads={args.threads}"
        )
        runs: dict[str, list[dict]] = {"ours": [], "theirs": []}
        for rep in range(args.repeats):
            seed = args.seed + rep
            cfg = TrainConfig(
                k=args.k,
                expansion=args.expansion,
                arch="topk",
                steps=args.steps,
                lr=lr,
                batch_size=args.batch_size,
                seed=seed,
                eval_fraction=args.eval_fraction,
                shuffle_buffer=args.shuffle_buffer,
                checkpoint_every=0,
                normalize="scale",
            )
            order = ("ours", "theirs") if rep % 2 == 0 else ("theirs", "ours")
            for who in order:
                if who == "ours":
                    m = train_hook(store, hook, Path(tmp) / f"ours_{rep}", cfg)
                else:
                    m = run_baseline(store, hook, args, lr, seed)
                runs[who].append(m | {"seed": seed, "position": order.index(who) + 1})

    names = {"ours": "musicsae (sae.train)", "theirs": "dictionary_learning 0.1.0 TopK"}
    print(f"{'trainer':<34}{'seed':>5}{'ran':>5}{'tokens/s':>12}{'FVU':>10}{'L0':>8}{'dead':>8}")
    for who in ("ours", "theirs"):
        for m in runs[who]:
            print(
                f"{names[who]:<34}{m['seed']:>5}{m['position']:>5}{m['tokens_per_s']:>12.0f}{m['fvu']:>10.4f}"
                f"{m['l0']:>8.1f}{m['dead_fraction']:>8.3f}"
            )
    med = {who: {key: statistics.median(m[key] for m in runs[who]) for key in ("tokens_per_s", "fvu")} for who in runs}
    spread = {who: (min(m["fvu"] for m in runs[who]), max(m["fvu"] for m in runs[who])) for who in runs}
    print(
        f"medians over {args.repeats} runs each (order alternating, independent inits, {args.steps} steps each): "
        f"tokens/s ours {med['ours']['tokens_per_s']:.0f} vs theirs {med['theirs']['tokens_per_s']:.0f} "
        f"(ratio {med['ours']['tokens_per_s'] / med['theirs']['tokens_per_s']:.2f}x); held-out FVU ours "
        f"{med['ours']['fvu']:.4f} [{spread['ours'][0]:.4f}, {spread['ours'][1]:.4f}] vs theirs "
        f"{med['theirs']['fvu']:.4f} [{spread['theirs'][0]:.4f}, {spread['theirs'][1]:.4f}] (median [min, max])"
    )
    return 0


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
