"""Cross-check with the real SAELens: its saved SAEs load here, ours load there, and both compute the same.

SAELens (sae-lens 6.54.12, about 95 packages, 1.9 GB) is too heavy for the project's venv, so it lives in
a venv of its own (`.cache/saelens`, made on the first run, or `--venv`). Both ways, on seeded data:

1. SAELens -> musicsae: SAELens trains a TopK and a BatchTopK SAE with its default training settings
   (TopK: `rescale_acts_by_decoder_norm: true`, decoder initialised at norm 0.1) for a few steps and saves
   them as its training runner does (`save_inference_model`: TopK keeps `rescale_acts_by_decoder_norm`,
   BatchTopK becomes `jumprelu` with a per-latent threshold), plus the TopK training checkpoint
   (`save_model`, unfolded decoder norms). `sae.io.load_sae` reads each; features and reconstructions are
   compared with what SAELens itself computes from the same files.
2. musicsae -> SAELens: `sae.io.save_sae` writes a TopK and a BatchTopK SAE; `SAE.load_from_disk` reads them.

Prints the largest differences and whether the active features agree; never asserts (a bench). With
`--write-fixture DIR` it also stores the SAELens-saved folders and their outputs (a few KB) for the fast
test `tests/sae/test_saelens_layout.py`, which checks the same thing without the package.

    python bench/saelens_roundtrip.py [--venv .cache/saelens] [--write-fixture tests/data/saelens]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sae.errors import UserError  # noqa: E402
from sae.io import load_sae, save_sae  # noqa: E402
from sae.model import SAEConfig, SparseAutoencoder  # noqa: E402
from training.cli.args import Parser  # noqa: E402

PROG = "bench/saelens_roundtrip.py"

SAE_LENS = "sae-lens==6.54.12"
D_IN, D_SAE, K, ROWS = 8, 32, 4, 64
FIXTURE_FILES = ("inputs.safetensors", "versions.json")  # and the SAELens-saved saelens_* folders

# Runs inside the SAELens venv. argv: mode ("train" or "encode"), folder.
SAELENS_SIDE = r"""
import json, sys
from pathlib import Path
import torch
from safetensors.torch import load_file, save_file
import sae_lens
from sae_lens import SAE
from sae_lens.saes.batchtopk_sae import BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig
from sae_lens.saes.sae import TrainStepInput
from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

mode, root = sys.argv[1], Path(sys.argv[2])
x = load_file(str(root / "inputs.safetensors"))["x"]

def outputs(folder):
    sae = SAE.load_from_disk(str(folder))
    with torch.no_grad():
        f = sae.encode(x)
        save_file({"f": f.contiguous(), "x_hat": sae.decode(f).contiguous()}, str(folder / "expected.safetensors"))

if mode == "train":
    torch.manual_seed(0)
    data = torch.randn(4096, x.shape[1]) @ torch.randn(x.shape[1], x.shape[1]) + 0.5
    kinds = {
        "topk": (TopKTrainingSAE, TopKTrainingSAEConfig),
        "batchtopk": (BatchTopKTrainingSAE, BatchTopKTrainingSAEConfig),
    }
    for name, (cls, cfg_cls) in kinds.items():
        sae = cls(cfg_cls(d_in=x.shape[1], d_sae=int(sys.argv[3]), k=int(sys.argv[4])))  # SAELens defaults otherwise
        opt = torch.optim.Adam(sae.parameters(), lr=1e-3)
        for step in range(200):
            batch = data[torch.randint(0, len(data), (256,))]
            out = sae.training_forward_pass(TrainStepInput(batch, {}, None, step, False))
            opt.zero_grad(); out.loss.backward(); opt.step()
        sae.save_inference_model(str(root / f"saelens_{name}"))
        outputs(root / f"saelens_{name}")
        if name == "topk":
            sae.save_model(str(root / "saelens_topk_checkpoint"))
            outputs(root / "saelens_topk_checkpoint")
    print(json.dumps({"sae_lens": sae_lens.__version__, "torch": torch.__version__}))
else:
    for folder in sorted(root.glob("musicsae_*")):
        outputs(folder)
"""


def step(what: str, cmd: list[str]) -> subprocess.CompletedProcess[str]:
    """Run `cmd`; a failure is one line naming `what` and the last line it wrote (pip's or SAELens' own)."""
    run = subprocess.run(cmd, capture_output=True, text=True)
    if run.returncode:
        said = (run.stderr.strip() or run.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(f"{what} failed (exit {run.returncode}): {said}")
    return run


def ensure_venv(venv: Path) -> Path:
    """The SAELens venv, made in a sibling folder and renamed into place once every package installed: an
    interrupted or failed install (no network) leaves no half-made venv that a later run would take as ready."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    if venv.is_symlink() or (venv.exists() and (not venv.is_dir() or any(venv.iterdir()))):
        raise UserError(f"--venv {venv}: holds no venv (no bin/python); remove it or name a new or empty folder")
    print(f"making {venv} with {SAE_LENS} (once; ~95 packages)", flush=True)
    venv.parent.mkdir(parents=True, exist_ok=True)
    part = venv.with_name(venv.name + ".part")
    shutil.rmtree(part, ignore_errors=True)
    try:
        step(f"making the venv {part}", [sys.executable, "-m", "venv", str(part)])
        pip = [str(part / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
        step("pip install torch==2.13.0 (SAELens' venv)", [*pip, "torch==2.13.0"])  # first: sae-lens keeps it
        step(f"pip install {SAE_LENS} (SAELens' venv)", [*pip, SAE_LENS])
    except BaseException:
        shutil.rmtree(part, ignore_errors=True)
        raise
    part.rename(venv)
    return python


def foreign_entries(folder: Path) -> list[str]:
    """What `folder` holds that `--write-fixture` did not write there (it is replaced whole)."""
    return sorted(
        e.name
        for e in folder.iterdir()
        if not (e.name in FIXTURE_FILES or (e.name.startswith("saelens_") and e.is_dir() and not e.is_symlink()))
    )


def check_fixture_folder(folder: Path) -> None:
    """`--write-fixture DIR` replaces DIR: only when it is absent, empty or holds nothing but a fixture (DIR was
    deleted with whatever it held, a user's measurements included)."""
    if not folder.exists() and not folder.is_symlink():
        return
    if folder.is_symlink() or not folder.is_dir():
        raise UserError(f"--write-fixture {folder}: not a folder; choose a new or empty folder")
    foreign = foreign_entries(folder)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise UserError(f"--write-fixture {folder}: holds files this did not write ({', '.join(foreign[:3])}{more}); "
                        "choose a new or empty folder, or one holding an earlier fixture")  # fmt: skip


def compare(ours: SparseAutoencoder, x: torch.Tensor, expected: dict[str, torch.Tensor]) -> dict[str, float]:
    with torch.no_grad():
        f = ours.encode(x)
        x_hat = ours.decode(f)
    same_active = bool(torch.equal(f != 0, expected["f"] != 0))
    return {
        "max_df": float((f - expected["f"]).abs().max()),
        "max_dx": float((x_hat - expected["x_hat"]).abs().max()),
        "same_active": same_active,
    }


def main() -> int:
    p = Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--venv", type=Path, default=ROOT / ".cache" / "saelens", help="venv with sae-lens (made if missing)"
    )
    p.add_argument("--write-fixture", type=Path, help="store SAELens-saved folders + outputs here (for the fast test)")
    args = p.parse_args()
    if args.write_fixture:
        check_fixture_folder(args.write_fixture)  # before the venv and the training
    torch.set_num_threads(1)
    python = ensure_venv(args.venv)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="saelens_rt_") as tmp:
        root = Path(tmp)
        x = torch.randn(ROWS, D_IN, generator=torch.Generator().manual_seed(7)) * 2 + 0.5
        save_file({"x": x}, str(root / "inputs.safetensors"))
        run = step("SAELens training", [str(python), "-c", SAELENS_SIDE, "train", str(root), str(D_SAE), str(K)])
        versions = json.loads(run.stdout.strip().splitlines()[-1])
        rows = []
        for folder in sorted(root.glob("saelens_*")):
            cfg = json.loads((folder / "cfg.json").read_text())
            ours = load_sae(folder)
            expected = load_file(str(folder / "expected.safetensors"))
            rows.append(
                (
                    (f"SAELens {folder.name[8:]} -> musicsae", cfg["architecture"], ours.cfg.arch),
                    compare(ours, x, expected),
                )
            )
        for arch in ("topk", "batchtopk"):
            torch.manual_seed(1)
            sae = SparseAutoencoder(SAEConfig(d_in=D_IN, d_sae=D_SAE, k=K, arch=arch))
            with torch.no_grad():
                sae.b_enc.normal_(0, 0.1)
                sae.threshold.fill_(0.3)
            save_sae(sae, root / f"musicsae_{arch}")
        step("SAELens loading musicsae's SAEs", [str(python), "-c", SAELENS_SIDE, "encode", str(root)])
        for arch in ("topk", "batchtopk"):
            folder = root / f"musicsae_{arch}"
            ours = load_sae(folder)
            cfg = json.loads((folder / "cfg.json").read_text())
            expected = load_file(str(folder / "expected.safetensors"))
            rows.append(((f"musicsae {arch} -> SAELens", cfg["architecture"], arch), compare(ours, x, expected)))
        if args.write_fixture:
            out = args.write_fixture
            check_fixture_folder(out)  # again: files may have come while SAELens trained
            if out.exists():
                shutil.rmtree(out)
            out.mkdir(parents=True)
            shutil.copy(root / "inputs.safetensors", out / "inputs.safetensors")
            for folder in root.glob("saelens_*"):
                shutil.copytree(folder, out / folder.name)
            (out / "versions.json").write_text(json.dumps(versions, indent=1) + "\n")
    print(
        f"sae-lens {versions['sae_lens']} (torch {versions['torch']}) beside musicsae; d_in {D_IN}, d_sae {D_SAE}, "
        f"k {K}, {ROWS} rows; {time.perf_counter() - t0:.1f} s"
    )
    print(f"{'direction':<42}{'saved as':>10}{'read as':>10}{'max |df|':>12}{'max |dx|':>12}{'same active':>13}")
    for (name, saved, read), m in rows:
        print(f"{name:<42}{saved:>10}{read:>10}{m['max_df']:>12.2e}{m['max_dx']:>12.2e}{m['same_active']!s:>13}")
    return 0


if __name__ == "__main__":
    from training.cli.main import guarded

    sys.exit(guarded(PROG, main))  # a UserError (a missing model, an unknown hook) is one line, exit 2
