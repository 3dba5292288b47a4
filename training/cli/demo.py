"""`musicsae demo`: the whole RAVE path on generated data, with the outside judge and a report."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from training.cli.args import (
    add_device,
    add_threads,
    comma_names,
    job_count,
    nonneg_int,
    on_strengths,
    positive_float,
    positive_int,
    seed_int,
)
from training.cli.quiet import output_console, print_table
from training.demo import DemoConfig


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo",
        help="end-to-end RAVE demo: data, collect, SAE, concepts, renders, outside judge, report",
        description="Generate concept clips, collect the demo RAVE model's latents, train an SAE, find 'guitar' and "
        "a second concept, render a clip with guitar off and on, judge the edits on held-out clips with an "
        "audio-only classifier, and write OUT/report.md.",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--model", help="RAVE .ts (default: training/assets/demo_rave.ts, else a tiny untrained one)")
    p.add_argument(
        "--n",
        type=positive_int,
        help="generated clips (default 480, a third in the held-out font; with --musicgen 120)",
    )
    p.add_argument(
        "--duration", type=positive_float, help="clip length in seconds (default 4; with --musicgen the LM's segment)"
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument("--concepts", default="guitar,drums", help="concepts to find; the first is rendered")
    p.add_argument(
        "--sae-steps", type=positive_int, help="SAE training steps (default 1500; with --musicgen 400 per layer)"
    )
    p.add_argument("--k", type=positive_int, default=8, help="SAE active latents per frame (default 8)")
    p.add_argument("--expansion", type=positive_int, default=8, help="SAE width / input width (default 8)")
    p.add_argument(
        "--sae-draws",
        type=positive_int,
        help="SAEs trained with seeds SEED, SEED+1, ...; the one whose `off` edits do best on validation clips "
        "(in-font test clips no reported figure rests on) is kept (default 3; 1: no choice; not with --musicgen)",
    )
    p.add_argument(
        "--strength",
        type=on_strengths,
        help="strengths of `on` the judge sweeps (default 1,2,4,8; with --musicgen 0.25,0.5); the `on` render uses "
        "the best",
    )
    p.add_argument("--jobs", type=job_count, default=2, help="data rendering processes (default 2)")
    p.add_argument(
        "--judge-clips",
        type=nonneg_int,
        help="held-out clips per side and concept each judge figure is on (default 12; the clips without get as many "
        "more to choose the strength of on; 0: all; not with --musicgen)",
    )
    p.add_argument(
        "--holdout-font",
        help="soundfont kept out of training and concept finding, judged apart (default fluidr3; 'none': no "
        "hold-out; not with --musicgen)",
    )
    p.add_argument(
        "--holdout-clips",
        type=nonneg_int,
        help="the same for the held-out font's clips (default 12; 0: all; not with --musicgen)",
    )
    add_device(p, "RAVE, SAE training, concept search, the judge's renders")
    add_threads(p, 2)
    p.add_argument(
        "--musicgen",
        action="store_true",
        help="the MusicGen path instead, on the demo MusicGen (training/assets/demo_musicgen, or --model): SAEs on "
        "every layer, concepts per layer, the first concept steered per layer and judged, renders, dashboard",
    )
    p.set_defaults(func=run)


RAVE_ONLY = ("judge_clips", "holdout_font", "holdout_clips", "sae_draws")  # options the MusicGen demo has no use for
MARK = ".musicsae-demo"
"""Written into OUT when a demo starts there: a folder holding anything else, without it (or an earlier version's
finished `demo.json`), is not the demo's, and a run would remove and rewrite its `store/`, `sae/`, `concepts.yaml`."""
LAST_RUN = ("report.md", "demo.json", "renders", "judge", "nn", "site")
"""What a run writes last: removed once its data is made, before its store and SAEs replace the last run's, so a run
that stops or fails after that leaves no report of the one before it (describing a data set and SAEs it replaced),
nor renders and judgements of an SAE that is gone; a run refused before (a model path, a font name) leaves them."""
OTHER_PATH = {
    "rave": ("experiment",),  # the MusicGen demo's store, SAEs and banks
    "musicgen": ("store", "sae", "sae_draws", "sae_clips", "concepts.yaml", "tiny_rave.ts"),  # the RAVE demo's
}
"""What the other demo wrote into OUT: removed with `LAST_RUN` (a RAVE bank beside a MusicGen report, a MusicGen
experiment beside a RAVE one)."""


def run(args: argparse.Namespace) -> int:
    """Both demos hold OUT's lock: each redoes its steps from scratch (removing the last run's store and SAEs), so
    a second one into the same folder at once would delete what the first is writing. A first run that fails
    before its data is made leaves no folder behind."""
    from sae.atomic import sole_writer
    from sae.paths import check_output_dir

    check_output_dir(args.out)
    out = Path(args.out)
    check_demo_out(out)
    fresh = not out.exists()
    try:
        with sole_writer(args.out, "demo"):
            return _run(args)
    except BaseException:
        if fresh and out.is_dir() and {p.name for p in out.iterdir()} <= {MARK, ".lock"}:
            shutil.rmtree(out, ignore_errors=True)
        raise


def check_demo_out(out: Path) -> None:
    """OUT is new, empty, or a demo's (`MARK`); anything else is refused before a file is touched (the README's
    own session writes `data/`, `store/`, `sae/latent` and `concepts.yaml`, which `demo --out .` replaced)."""
    from sae.errors import UserError

    if not out.is_dir() or (out / MARK).is_file() or (out / "demo.json").is_file():
        return
    theirs = sorted(p.name for p in out.iterdir() if p.name != ".lock")  # a lock of a refused run is no one's file
    if theirs:
        raise UserError(f"--out {out}: holds files the demo did not write ({theirs[0]}); each run removes and rewrites "
                        "its data, store, SAEs and bank there: choose a new or empty folder")  # fmt: skip


def start_demo(out: Path) -> None:
    """Mark OUT as the demo's."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MARK).write_text("written by `musicsae demo`: each run removes and rewrites this folder's outputs\n")


def clear_last_run(out: Path, path: str) -> None:
    """Remove what the last run wrote last (`LAST_RUN`) and what the other demo wrote (`OTHER_PATH[path]`)."""
    for name in (*LAST_RUN, *OTHER_PATH[path]):
        target = out / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def _run(args: argparse.Namespace) -> int:
    import torch

    from sae.errors import UserError
    from sae.paths import check_output_dir
    from training.data.concept_clips import CONCEPTS, font_name
    from training.demo import run_demo
    from training.judge import rich_table

    concepts = comma_names(args.concepts)
    bad = [c for c in concepts if c not in CONCEPTS]
    if not concepts or bad:
        raise UserError(f"--concepts {args.concepts}: expected names from {', '.join(CONCEPTS)}")
    if args.n is None:
        args.n = 120 if args.musicgen else 480
    if args.n < 20:
        raise UserError(f"--n {args.n}: expected at least 20 clips (held-out clips are every 5th)")
    check_output_dir(args.out)
    out = Path(args.out)
    torch.set_num_threads(args.threads)
    console = output_console()
    if args.musicgen:
        from training.musicgen.demo import MusicGenDemoConfig, run_musicgen_demo

        given = [f"--{k.replace('_', '-')}" for k in RAVE_ONLY if getattr(args, k) is not None]
        if given:  # the MusicGen demo's judge renders prompts: it has no held-out clips or font to set
            raise UserError(f"{given[0]}: not an option of the MusicGen demo (--musicgen); drop it")
        d = MusicGenDemoConfig(args.out)
        mcfg = MusicGenDemoConfig(
            args.out, args.model, args.n, args.seed, args.duration, concept=concepts[0], probe=concepts,
            sae_steps=args.sae_steps or d.sae_steps, strengths=args.strength or d.strengths, k=args.k,
            expansion=args.expansion, jobs=args.jobs, device=args.device,
        )  # fmt: skip
        start_demo(out)
        summary = run_musicgen_demo(
            mcfg, lambda s: console.print(s, highlight=False, markup=False), lambda: clear_last_run(out, "musicgen")
        )
        console.print(f"report: {args.out}/report.md ({summary['total_s']:.0f} s in all)", highlight=False)
        return 0
    d = DemoConfig(args.out)
    font = args.holdout_font or d.holdout_font
    if font == "none" and args.holdout_clips is not None:  # it was taken, and nothing used it
        raise UserError("--holdout-clips: clips of the held-out font to judge, and --holdout-font none holds none out")
    cfg = DemoConfig(
        args.out,
        args.model,
        args.n,
        args.duration or d.duration,
        args.seed,
        concepts,
        args.sae_steps or d.sae_steps,
        args.k,
        args.expansion,
        args.strength or d.strengths,
        args.jobs,
        d.judge_clips if args.judge_clips is None else args.judge_clips,
        holdout_font=None if font == "none" else font_name(font),
        holdout_clips=d.holdout_clips if args.holdout_clips is None else args.holdout_clips,
        sae_draws=args.sae_draws or d.sae_draws,
        device=args.device,
    )
    start_demo(out)
    summary = run_demo(cfg, lambda s: console.print(s, highlight=False), lambda: clear_last_run(out, "rave"))
    print_table(console, rich_table(summary["judge_result"]))
    from training.rave.split_figures import figures_line

    for judged in (summary["judge_result"], summary["judge_holdout_font"]):
        if judged:  # the SAE's FVU and probe AUROC on the clips judged, in font and off it
            console.print(figures_line(judged["sae_figures"], judged["split"]), highlight=False)
    nn = summary["nn"]
    attrs = ", ".join(nn["attributes"].values())
    console.print(
        f"nn~ model for Max/MSP and Pure Data: {nn['file']} (attributes {attrs}, {', '.join(nn['controls'])}; "
        "examples/pd and examples/max load it)",
        highlight=False,
        markup=False,
    )
    console.print(f"report: {args.out}/report.md ({summary['total_s']:.0f} s in all)", highlight=False)
    return 0
