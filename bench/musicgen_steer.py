"""Benchmark: MusicGen generation time with and without an active concept edit (same model, prompt, seed).

The edit goes through the real render path (bank → `BankSteering` → layer hook → SAE encode + sparse
decode on every step, on the rows the bank's `edit_rows` names: by default the conditional half of CFG's
batch, as `render` does). The baseline is plain generation measured in the same run,
interleaved with the edited runs; the goal is ≤ 5 % overhead. Prints figures, asserts nothing.
Both process CPU time (the figure to read on a shared machine: other processes do not inflate it) and
wall time are reported.

    .venv/bin/python bench/musicgen_steer.py                       # musicgen-small-shaped random LM
    .venv/bin/python bench/musicgen_steer.py --size tiny           # quick check
    .venv/bin/python bench/musicgen_steer.py --model DIR_OR_HUB_ID # a real checkpoint
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.musicgen import load_musicgen  # noqa: E402
from realtime.musicgen.audiocraft_backend import AudiocraftMusicGen  # noqa: E402
from realtime.musicgen.render import BankSteering, generation_steps, parse_set, render  # noqa: E402
from sae.bank import Concept, ConceptBank, ConceptFeature, ModelRef  # noqa: E402
from sae.io import save_sae  # noqa: E402
from sae.model import SAEConfig, SparseAutoencoder  # noqa: E402
from training.cli.args import Parser, nonneg_int, positive_float, positive_int, seed_int, thread_count  # noqa: E402
from training.musicgen.tiny_model import TinyMusicGenConfig, build_audiocraft  # noqa: E402

PROG = "bench/musicgen_steer.py"

SIZES = {  # random LMs shaped like the released ones (text conditioner: LUT, not T5; per-step cost is the LM)
    "tiny": TinyMusicGenConfig(dim=32, num_heads=4, num_layers=4, card=256),
    "small": TinyMusicGenConfig(dim=1024, num_heads=16, num_layers=24, card=2048),
}


def build_model(args):
    if args.model:
        return load_musicgen(args.model, args.backend)
    from audiocraft.models import MusicGen

    lm, codec, _, _ = build_audiocraft(SIZES[args.size])
    return AudiocraftMusicGen.wrap(MusicGen(f"random-{args.size}", codec, lm, max_duration=30), f"random-{args.size}")


def main() -> int:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="hub id or folder (default: a random model of --size)")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--size", choices=sorted(SIZES), default="small")
    parser.add_argument("--layer", type=nonneg_int, default=None, help="edited layer (default: the middle one)")
    parser.add_argument("--expansion", type=positive_int, default=8, help="SAE d_sae / d_in (default 8)")
    parser.add_argument("--k", type=positive_int, default=32, help="SAE k (default 32)")
    parser.add_argument("--features", type=positive_int, default=4, help="features in the edited concept (default 4)")
    parser.add_argument("--duration", type=positive_float, default=0.3, help="seconds generated per run (default 0.3)")
    parser.add_argument("--batch", type=positive_int, default=1, help="prompts per generation (default 1)")
    parser.add_argument("--repeats", type=positive_int, default=3, help="timed runs per variant (default 3)")
    parser.add_argument("--threads", type=thread_count, default=1)
    parser.add_argument("--seed", type=seed_int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)

    t0 = time.perf_counter()
    mg = build_model(args)
    layer = mg.num_layers // 2 if args.layer is None else args.layer
    print(
        f"model {mg.name} ({mg.backend}): {mg.num_layers} layers, dim {mg.dim}, {mg.n_q} codebooks, "
        f"loaded in {time.perf_counter() - t0:.1f} s; threads {args.threads}"
    )

    with tempfile.TemporaryDirectory() as tmp:
        torch.manual_seed(args.seed)
        sae = SparseAutoencoder(
            SAEConfig(d_in=mg.dim, d_sae=mg.dim * args.expansion, k=args.k, hook_name=mg.hook_name(layer))
        )
        save_sae(sae, Path(tmp) / "sae")
        bank = ConceptBank(Path(tmp) / "bank.yaml")
        ref = mg.model_ref()
        feats = [ConceptFeature(i, 1.0, 4.0) for i in range(args.features)]
        for name in ("x", "y"):
            bank.add(Concept(name, ModelRef(ref["name"], ref["sha256"]), mg.hook_name(layer), "sae", feats))
        bank.save()
        variants = {
            "plain": None,
            "on:2": BankSteering(mg, bank, [parse_set("x=on:2")]),
            "on:2 + off (2 concepts)": BankSteering(mg, bank, [parse_set("x=on:2"), parse_set("y=off")]),
        }
        prompts = ["lofi piano with soft drums"] * args.batch
        render(mg, prompts, min(args.duration, 0.1), args.seed)  # warm-up
        cpu: dict[str, list[float]] = {k: [] for k in variants}
        wall: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.repeats):
            for name, steering in variants.items():  # interleaved: drift hits every variant alike
                c, t = time.process_time(), time.perf_counter()
                render(mg, prompts, args.duration, args.seed, steering)
                cpu[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - t)

        # the edit alone, on one step's hidden state [2B, 1, D] (CPU time, many calls: robust to other load), on the
        # rows render edits (`layer_fns(batch)`: without the batch it edited both halves, twice render's rows)
        fn = variants["on:2"].layer_fns(args.batch)[layer]
        hidden = torch.randn(2 * args.batch, 1, mg.dim)
        for _ in range(5):
            fn(hidden, 0)
        calls = 200
        c = time.process_time()
        for _ in range(calls):
            fn(hidden, 0)
        edit_cpu = (time.process_time() - c) / calls

    steps = generation_steps(mg, args.duration)  # frames + the delay pattern's (a stereo model's too)
    base_cpu, base_wall = statistics.median(cpu["plain"]), statistics.median(wall["plain"])
    print(
        f"{steps} steps per run ({args.duration:g} s audio, batch {args.batch}, CFG doubles it), "
        f"edit on layer {layer}, SAE {mg.dim}x{mg.dim * args.expansion} k={args.k}, median of {args.repeats}"
    )
    print(f"{'variant':<26}{'cpu s':>9}{'cpu vs plain':>14}{'wall s':>9}{'wall vs plain':>15}{'steps/s':>9}")
    for name in variants:
        c, w = statistics.median(cpu[name]), statistics.median(wall[name])
        print(
            f"{name:<26}{c:>9.3f}{(c / base_cpu - 1) * 100:>+13.1f}%{w:>9.3f}{(w / base_wall - 1) * 100:>+14.1f}%"
            f"{steps / w:>9.2f}"
        )
    step_cpu = base_cpu / steps
    rows = args.batch if variants["on:2"].edit_rows == "cond" else 2 * args.batch
    print(
        f"edit alone ({rows} of {2 * args.batch} rows, as render edits them): {edit_cpu * 1e3:.2f} ms CPU per step "
        f"vs {step_cpu * 1e3:.1f} ms per plain step = {edit_cpu / step_cpu * 100:.1f} % overhead per edited layer"
    )
    return 0


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
