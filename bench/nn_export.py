"""Benchmark: CPU time per nn~ buffer of the exported model (`musicsae export nn`) against the plain RAVE export,
on one thread, at buffers 512 … 4096, and the first call's cost.

The exported file is made here from the model and a seeded SAE (hook width → 8 × width, k 8) on `--hook` (RAVE's
latent by default, or an inner layer: the file then runs the model in two parts around it) with two concepts of
four features each. Each buffer is one `forward` call the way nn~ makes it (under inference mode, [1, C, B]).
Three cases: the plain RAVE export's own `forward` (the baseline, measured in the same run), the exported
model with no edit, and with both concepts switching every buffer (SAE encode, per-frame ramp and edit every
time: the worst case). CPU time (`time.process_time`), median of the calls after a warm-up; the first call
of a freshly loaded file is timed separately (TorchScript optimises on its first calls). Figures are printed,
never asserted.

    .venv/bin/python bench/nn_export.py                 # the demo model
    .venv/bin/python bench/nn_export.py --model m.ts --buffers 512,2048 --calls 100
    .venv/bin/python bench/nn_export.py --hook decoder.net.4 --buffers 2048
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

from realtime.rave import RaveModel  # noqa: E402
from realtime.rave_split import hook_shape  # noqa: E402
from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef  # noqa: E402
from sae.io import save_sae  # noqa: E402
from sae.model import SAEConfig, SparseAutoencoder  # noqa: E402
from training.cli.args import Parser, comma_list, positive_int  # noqa: E402
from training.rave.nn_export import NnExportConfig, export_nn  # noqa: E402

PROG = "bench/nn_export.py"
DEMO = ROOT / "training" / "assets" / "demo_rave.ts"


def make_export(model_path: Path, model: RaveModel, tmp: Path, hook: str = "latent") -> Path:
    width = hook_shape(model, hook)[0]
    torch.manual_seed(0)
    sae = SparseAutoencoder(SAEConfig(d_in=width, d_sae=8 * width, k=8, hook_name=hook))
    save_sae(sae, tmp / "sae")
    ref = ModelRef.of_file(model_path)
    bank = ConceptBank(tmp / "concepts.yaml")
    for name, first in (("a", 0), ("b", 4)):
        feats = [ConceptFeature(first + i, 1.0, 1.0) for i in range(4)]
        bank.add(Concept(name, ref, hook, "sae", feats, ConceptDefault("none", 1.0)))
    bank.save()
    out = tmp / "steered.ts"
    export_nn(NnExportConfig(model_path, bank.path, out), say=lambda _: None)
    return out


def fresh(path: Path) -> torch.jit.ScriptModule:
    m = torch.jit.load(str(path))
    for name, buf in m.named_buffers():
        if name.endswith((".cache", ".pad")):
            buf.zero_()
    return m


def time_calls(module, x: torch.Tensor, calls: int, switch: bool) -> tuple[tuple[float, float], float]:
    """((first call, second call), median of the next `calls` after 5 warm-up calls), CPU seconds per call.
    TorchScript profiles on the first call and optimises on the second: both are late buffers in nn~."""
    times = []
    with torch.inference_mode():
        for i in range(calls + 6):
            if switch:
                module.set_a("on" if i % 2 else "off", 2.0)
                module.set_b("scale" if i % 2 else "none", 0.5)
            t0 = time.process_time()
            module.forward(x)
            times.append(time.process_time() - t0)
    return (times[0], times[1]), statistics.median(times[6:])


def main() -> None:
    parser = Parser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEMO, help="streaming RAVE .ts (default: the demo model)")
    parser.add_argument(
        "--buffers",
        type=comma_list(positive_int, "comma-separated positive integers, e.g. 512,2048"),
        default=(512, 1024, 2048, 4096),
        help="nn~ buffer sizes (powers of two from the model's ratio up, as nn~ runs them; others are skipped)",
    )
    parser.add_argument("--calls", type=positive_int, default=40, help="timed calls per case")
    parser.add_argument("--hook", default="latent", help="where the SAE sits: latent, encoder.net.N, decoder.net.N")
    args = parser.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = RaveModel.load(args.model)
        t0 = time.perf_counter()
        steered = make_export(args.model, model, Path(tmp), args.hook)
        sr = model.sr
        print(
            f"model {args.model.name}, {sr} Hz, SAE on {args.hook}; export in {time.perf_counter() - t0:.1f} s; "
            "1 thread, CPU time"
        )
        head = ("buffer", "budget ms", "plain ms", "export ms", "edits ms", "ratio", "edits ratio", "RTF edits")
        print(" ".join(f"{h:>9}" for h in head), f"{'1st/2nd plain ms':>16} {'1st/2nd export ms':>17}")
        for b in args.buffers:
            if b < model.ratio or b & (b - 1):  # nn~ never runs one: it takes the next power of two, at least the ratio
                print(f"skipping buffer {b}: nn~ runs powers of two from the ratio {model.ratio} up")
                continue
            x = 0.1 * torch.randn(1, model.channels, b, generator=torch.Generator().manual_seed(b))
            first_plain, plain = time_calls(fresh(args.model), x, args.calls, False)
            first_export, still = time_calls(fresh(steered), x, args.calls, False)
            _, edits = time_calls(fresh(steered), x, args.calls, True)
            budget = b / sr
            row = (1e3 * budget, 1e3 * plain, 1e3 * still, 1e3 * edits, still / plain, edits / plain, edits / budget)
            firsts = " ".join(
                f"{f'{1e3 * a:.0f}/{1e3 * b:.0f}':>{w}}" for (a, b), w in ((first_plain, 16), (first_export, 17))
            )
            print(f"{b:>9}", " ".join(f"{v:>9.2f}" for v in row), firsts)


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
