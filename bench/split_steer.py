"""Benchmark: CPU time per block of SAE steering at an inner RAVE layer, against plain RAVE in the same run.

For each hook the model runs in two parts around it (`realtime.rave_split.RaveSplit`): the hook's output is
pooled per latent frame, an SAE of that width (random weights, the defaults for the width: k = d_in / 4,
d_sae = 8 d_in) encodes the rows, an edit that moves a few features (off + on) is applied with the error
term kept, and the change is spread back before the rest of the model runs. The baseline is plain RAVE
(`decode(encode_mean(x))`) on the same blocks. Timings are printed (median ms per block, ratio to plain,
real-time factor), never asserted.

    .venv/bin/python bench/split_steer.py                                   # the demo model if present
    .venv/bin/python bench/split_steer.py --model m.ts --hooks latent,decoder.net.1 --block 2048 --blocks 40
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.rave import RaveModel  # noqa: E402
from realtime.rave_split import RaveSplit  # noqa: E402
from sae.model import SAEConfig, SparseAutoencoder, default_d_sae, default_k  # noqa: E402
from sae.steering import Edit, apply_edit, energy_gate  # noqa: E402
from training.cli.args import Parser, positive_int, thread_count  # noqa: E402

PROG = "bench/split_steer.py"
DEMO = ROOT / "training" / "assets" / "demo_rave.ts"
WARM_UP = 2  # blocks timed but left out of the median (TorchScript optimises on its first calls)


def timed(fn, xs: list[torch.Tensor]) -> float:
    """Median milliseconds of fn over the blocks (the first `WARM_UP` are warm-up)."""
    times = []
    for i, x in enumerate(xs):
        t0 = time.perf_counter()
        fn(x)
        if i >= WARM_UP:
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def timed_blocks(text: str) -> int:
    """`--blocks`: more than the warm-up blocks (`--blocks 2` left no block to time: a StatisticsError)."""
    n = positive_int(text)
    if n <= WARM_UP:
        raise argparse.ArgumentTypeError(f"{text!r}: expected an integer > {WARM_UP} (the first {WARM_UP} are warm-up)")
    return n


def main() -> None:
    p = Parser(prog=PROG, description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=None)
    p.add_argument("--hooks", default="latent,encoder.net.20,decoder.net.1,decoder.net.5,decoder.net.10")
    p.add_argument("--block", type=positive_int, default=2048)
    p.add_argument("--blocks", type=timed_blocks, default=30)
    p.add_argument("--threads", type=thread_count, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or (DEMO if DEMO.exists() else None)
        if path is None:
            from training.rave.tiny_model import build_tiny_rave

            path = build_tiny_rave(Path(tmp) / "tiny.ts")
        model = RaveModel.load(path)
        g = torch.Generator().manual_seed(1)  # input audio: a stream apart from the SAEs' (seed 0)
        xs = [0.2 * torch.randn(1, model.channels, args.block, generator=g) for _ in range(args.blocks)]
        plain = model.new_stream()
        base_ms = timed(lambda x: plain.decode(plain.encode_mean(x)), xs)
        budget = 1000 * args.block / model.sr
        print(f"{path.name}: block {args.block} ({budget:.1f} ms), {args.threads} thread(s)")
        print(f"{'plain RAVE':>16}: {base_ms:7.2f} ms  ratio 1.00  RTF {base_ms / budget:.3f}")
        for hook in [h.strip() for h in args.hooks.split(",") if h.strip()]:
            split = RaveSplit(model.new_stream(), hook)
            d_in = split.width
            torch.manual_seed(0)
            sae = SparseAutoencoder(SAEConfig(d_in, default_d_sae(d_in), default_k(d_in), hook_name=hook)).eval()
            gain, add = torch.ones(sae.cfg.d_sae), torch.zeros(sae.cfg.d_sae)
            gain[:4], add[4:8] = 0.0, 1.0
            edit = Edit.from_dense(gain, add)

            def step(x: torch.Tensor, split=split, sae=sae, edit=edit) -> torch.Tensor:
                gate = energy_gate(x, model.ratio, channels=True)  # as the engine's gate hears a block
                return split(x, lambda rows: apply_edit(rows, sae, edit, gate=gate))

            ms = timed(step, xs)
            print(
                f"{hook:>16}: {ms:7.2f} ms  ratio {ms / base_ms:.2f}  RTF {ms / budget:.3f}  "
                f"(width {d_in} x {split.steps} steps/frame, SAE {d_in} -> {sae.cfg.d_sae}, k {sae.cfg.k})"
            )


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
