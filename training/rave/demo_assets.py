"""The demo concepts shipped beside the demo model, so `musicsae live` with no arguments has concepts to switch.

    python -m training.rave.demo_assets                   # → training/assets/demo_concepts.yaml + demo_sae/
    python -m training.rave.demo_assets --model other.ts  # for another model (rerun when the demo model changes)

Steps (the RAVE demo's own recipe, `training/demo.py`, without renders and judge): seeded concept clips
(FluidSynth, espeak-ng) → the model's deterministic latents → a TopK SAE (one thread, seeded) → "guitar"
and "drums" found from the train-split folders → `OUT/demo_sae/` (cfg.json + safetensors, a few KB) and
`OUT/demo_concepts.yaml` whose concepts point at it. Work files go to `--work` (removed unless
`--keep-work`). Deterministic for a given model: the same model gives the same bank and SAE bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from sae.errors import UserError
from sae.paths import check_output_dir
from training.cli.args import Parser, positive_int

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@dataclass
class AssetsConfig:
    """Args:
    model: the RAVE `.ts` the concepts are found on.
    out: folder for `demo_concepts.yaml` and `demo_sae/`.
    work: scratch folder (data, activation store, SAE run).
    n, duration, seed: generated clips.
    concepts: concepts to find.
    sae_steps, k, expansion: the SAE.
    """

    model: Path = ASSETS / "demo_rave.ts"
    out: Path = ASSETS
    work: Path = Path("runs/demo_assets")
    n: int = 200
    duration: float = 4.0
    seed: int = 0
    concepts: tuple[str, ...] = ("guitar", "drums")
    sae_steps: int = 600
    k: int = 8
    expansion: int = 8
    jobs: int = 2


WORK_MARK = ".demo_assets_work"


def claim_work(work: Path) -> Path:
    """The scratch folder, marked as ours: absent, empty, or an earlier run's. Anything else is refused, since the
    folder is removed at the end."""
    if work.exists() and not work.is_dir():
        raise UserError(f"--work {work}: exists and is a file; expected a scratch folder")
    if work.is_dir() and any(work.iterdir()) and not (work / WORK_MARK).is_file():
        raise UserError(f"--work {work}: holds files demo_assets did not write (it removes the folder when done); "
                        "choose another --work")  # fmt: skip
    work.mkdir(parents=True, exist_ok=True)
    (work / WORK_MARK).touch()
    return work


def check_out(out: Path, work: Path, keep_work: bool) -> None:
    """`--out` is a folder that can be written, and not inside `--work` when that is removed at the end (the assets
    would go with it): checked before the clips are made, not after."""
    check_output_dir(out)
    if not keep_work and out.resolve().is_relative_to(work.resolve()):
        raise UserError(f"--out {out}: inside --work {work}, which is removed when done; "
                        "choose another --out (or pass --keep-work)")  # fmt: skip


def remove_work(work: Path) -> None:
    """Remove the scratch folder, only when this tool made it (it carries the mark)."""
    if (work / WORK_MARK).is_file():
        shutil.rmtree(work)


def make_assets(cfg: AssetsConfig, say=print) -> dict[str, str]:
    """Run the steps; returns {file: sha256} of what was written to `cfg.out`."""
    import torch

    from realtime.rave import RaveModel
    from sae.bank import ConceptBank
    from sae.store import ActivationStore
    from sae.train import train_hook
    from training.data.concept_clips import DataConfig, make_dataset
    from training.rave.alone import alone_folder
    from training.rave.collect import RaveCollectConfig, collect_rave
    from training.rave.concepts import FindConfig, find_concept
    from training.rave.sae_recipe import latent_sae_config

    if not Path(cfg.model).is_file():
        raise UserError(f"--model {cfg.model}: no such file")
    torch.set_num_threads(1)  # one thread: the same bytes on every machine
    model = RaveModel.load(cfg.model)
    work = claim_work(Path(cfg.work))
    for sub in ("store", "sae", "concepts.yaml"):
        target = work / sub
        if target.is_dir():
            shutil.rmtree(target)
        elif target.exists():
            target.unlink()
    t0 = time.perf_counter()
    say(f"[1/4] {cfg.n} concept clips → {work / 'data'}")
    make_dataset(work / "data", DataConfig(n=cfg.n, seed=cfg.seed, duration=cfg.duration, sample_rate=model.sr),
                 jobs=cfg.jobs, concepts=cfg.concepts)  # fmt: skip
    say(f"[2/4] latents of {model.path.name}")
    collect_rave(RaveCollectConfig(str(cfg.model), str(work / "data" / "clips"), str(work / "store")))
    say("[3/4] SAE")
    torch.manual_seed(cfg.seed)
    tcfg = latent_sae_config(model.latent_size, cfg.k, cfg.expansion, cfg.sae_steps, cfg.seed)
    train_hook(ActivationStore(work / "store"), "latent", work / "sae", tcfg)
    say("[4/4] concepts: " + ", ".join(cfg.concepts))
    latents: dict = {}
    found = []
    for name in cfg.concepts:
        folder = work / "data" / "concepts" / name
        try:
            find = FindConfig(name, str(folder / "with"), str(folder / "without"), str(cfg.model),
                              str(work / "sae"), str(work / "concepts.yaml"), seed=cfg.seed,
                              alone_dir=alone_folder(folder / "alone"))  # fmt: skip
            find_concept(find, latents)
            found.append(name)
        except UserError as exc:
            say(f"    {name}: not found ({exc})")
    if not found:
        raise UserError(f"demo assets: no concept was found on {model.path.name}")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    sae_out = out / "demo_sae"
    tmp = out / ".demo_sae.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name in ("cfg.json", "sae_weights.safetensors"):
        shutil.copyfile(work / "sae" / name, tmp / name)
    if sae_out.exists():
        shutil.rmtree(sae_out)
    tmp.rename(sae_out)
    bank = ConceptBank.load(work / "concepts.yaml")
    shipped = ConceptBank(out / "demo_concepts.yaml")
    for concept in bank:
        concept.sae = shipped.relative_sae(sae_out)
        shipped.add(concept)
    shipped.save()
    files = [out / "demo_concepts.yaml", sae_out / "cfg.json", sae_out / "sae_weights.safetensors"]
    digests = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    for name, concept in shipped.concepts.items():
        say(f"    {name}: features {[f.index for f in concept.features]}, AUROC sae {concept.auroc_text('sae_probe')}")
    say(f"wrote {', '.join(digests)} in {out} ({time.perf_counter() - t0:.0f} s)")
    return digests


def main(argv: list[str] | None = None) -> int:
    p = Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=AssetsConfig.model)
    p.add_argument("--out", type=Path, default=AssetsConfig.out)
    p.add_argument("--work", type=Path, default=AssetsConfig.work)
    p.add_argument("--keep-work", action="store_true")
    p.add_argument("--jobs", type=positive_int, default=2, help="clip rendering processes")
    args = p.parse_args(argv)
    cfg = AssetsConfig(model=args.model, out=args.out, work=args.work, jobs=args.jobs)
    from training.cli.main import guarded

    def run() -> None:
        check_out(args.out, args.work, args.keep_work)
        try:
            for name, digest in make_assets(cfg).items():
                print(f"{digest}  {name}")
        finally:
            if not args.keep_work:
                remove_work(Path(args.work))

    return guarded("demo_assets", run)


if __name__ == "__main__":
    raise SystemExit(main())
