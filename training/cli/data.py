"""`musicsae data make`: seeded concept-labelled clips (FluidSynth + espeak-ng), no downloads."""

from __future__ import annotations

import argparse

from training.cli.args import comma_names, integer, job_count, number, seed_int
from training.cli.quiet import output_console, print_table, progress_bar
from training.data.concept_clips import DEFAULT_FONTS, FONTS, VOICINGS


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="generate concept-labelled audio clips",
        description="Generate concept-labelled audio clips without downloads.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND", required=True)
    make = sub.add_parser(
        "make",
        help="render seeded MIDI / speech clips with labels and concept folders",
        description="Render seeded clips (FluidSynth GM instruments from several soundfonts, espeak-ng voices) into "
        "OUT/clips, write OUT/manifest.csv + .jsonl (with the font of every clip), and link "
        "OUT/concepts/<c>/with|without (train split), OUT/heldout/<c>/with|without (test split: every 5th clip) "
        "and, with --holdout-font, OUT/heldout_font/<c>/with|without (that font's clips); each beside an alone "
        "folder of the clips where c plays alone (a solo, or a voice with no instrument). Every with and without "
        "folder holds the same number of clips from each font. A soundfont that is missing or fails to load is "
        "named and skipped.",
    )
    make.add_argument("--out", required=True, help="output directory")
    make.add_argument("--n", type=integer, default=100, help="number of clips (default 100)")
    make.add_argument("--seed", type=seed_int, default=0, help="base seed (default 0)")
    make.add_argument("--duration", type=number, default=4.0, help="clip length in seconds (default 4)")
    make.add_argument("--sr", type=integer, default=44100, help="sample rate in Hz (default 44100)")
    make.add_argument("--p-solo", type=number, default=0.3, help="fraction of solo clips (default 0.3)")
    make.add_argument("--p-voice", type=number, default=0.15, help="fraction of voice clips (default 0.15)")
    fonts = make.add_mutually_exclusive_group()  # both given: --soundfonts was dropped without a word
    fonts.add_argument(
        "--soundfonts",
        default=",".join(DEFAULT_FONTS),
        help=f"comma-separated soundfonts: names ({', '.join(FONTS)}) or .sf2/.sf3 paths "
        f"(default: {','.join(DEFAULT_FONTS)})",
    )
    fonts.add_argument("--soundfont", default=None, help="one .sf2 file instead of --soundfonts")
    make.add_argument(
        "--holdout-font", default=None, help="a soundfont of the set whose clips are held out (split holdout_font)"
    )
    make.add_argument("--jobs", type=job_count, default=1, help="rendering processes (default 1)")
    make.add_argument(
        "--concepts", default="all", help="comma-separated concepts to make with/without folders for, 'all' or 'none'"
    )
    make.add_argument("--copy", action="store_true", help="copy wavs into concept folders instead of symlinking")
    make.add_argument(
        "--voicing",
        choices=VOICINGS,
        default="off_key",
        help="off_key (default): guitars and strings a major third and a fifth above the key the manifest names, as "
        "the clips the shipped demo models were trained on; in_key: every part in the clip's key",
    )
    make.set_defaults(func=run_make)


def run_make(args: argparse.Namespace) -> int:
    from pathlib import Path

    from rich.table import Table

    from sae.errors import UserError
    from sae.paths import check_output_dir
    from training.data.concept_clips import CONCEPTS, NO_FONT, DataConfig, make_dataset

    if not (0 <= args.p_solo <= 1 and 0 <= args.p_voice <= 1 and args.p_solo + args.p_voice <= 1):
        raise UserError(f"--p-solo {args.p_solo} --p-voice {args.p_voice}: expected fractions summing to at most 1")
    check_output_dir(args.out)
    concepts = {"all": list(CONCEPTS), "none": []}.get(args.concepts)
    if concepts is None:
        concepts = list(comma_names(args.concepts))
        if not concepts:  # `none` says it; an empty list made no concept folders without a word
            raise UserError(f"--concepts {args.concepts!r}: expected comma-separated concepts, 'all' or 'none'")
    voiced = [c for c in concepts if c in CONCEPTS and c.startswith("voice")]  # a typo is named as unknown later
    unvoiced = ""  # --p-voice 0 makes no voice clip: a voice folder would stay empty on its with side
    if voiced and args.p_voice == 0:
        if args.concepts != "all":
            raise UserError(
                f"--concepts {','.join(voiced)}: no clip has a voice with --p-voice 0; expected --p-voice above 0"
            )
        concepts = [c for c in concepts if c not in voiced]
        unvoiced = f"note: --p-voice 0 makes no voice clip, so no folders for {', '.join(voiced)}"
    if args.copy and not concepts:
        raise UserError("--copy: copies clips into concept folders, and --concepts none makes none")
    cfg = DataConfig(
        n=args.n,
        seed=args.seed,
        duration=args.duration,
        sample_rate=args.sr,
        p_solo=args.p_solo,
        p_voice=args.p_voice,
        soundfonts=comma_names(args.soundfonts),
        holdout_font=args.holdout_font,
        soundfont=args.soundfont,
        voicing=args.voicing,
    )
    console = output_console(stderr=True)
    if unvoiced:
        console.print(unvoiced, markup=False, highlight=False)
    with progress_bar(console=console) as progress:
        task = progress.add_task("rendering clips", total=cfg.n)
        rows = make_dataset(
            Path(args.out),
            cfg,
            jobs=args.jobs,
            concepts=concepts,
            copy=args.copy,
            progress=lambda k: progress.update(task, completed=k),
            note=lambda line: console.print(line, markup=False, highlight=False),
        )
    fonts = sorted({r["font"] for r in rows} - {NO_FONT})
    held = f", {cfg.holdout_font} held out" if cfg.holdout_font else ""
    table = Table(
        title=f"{len(rows)} clips in {args.out} ({cfg.duration:g} s, {cfg.sample_rate} Hz; fonts {', '.join(fonts)}"
        f"{held})" + ("; folders balanced across fonts" if concepts else "")
    )
    tops = [("concepts", "train"), ("heldout", "test")] + ([("heldout_font", "held-out font")] if held else [])
    table.add_column("concept")
    for _, label in tops:
        table.add_column(f"{label} with", justify="right")
        table.add_column(f"{label} without", justify="right")
    bare = []  # concepts whose held-out folders stayed empty on a side while test clips were made
    for name in concepts:
        folders = [Path(args.out) / top / name / side for top, _ in tops for side in ("with", "without")]
        cnt = [len(list(folder.iterdir())) if folder.is_dir() else 0 for folder in folders]  # none held out: none
        table.add_row(name, *map(str, cnt))
        if 0 in cnt[2:4]:
            bare.append(name)
    if concepts:
        print_table(output_console(), table)
    else:
        output_console().print(table.title)
    tests = sum(r["split"] == "test" for r in rows)
    if bare and tests:  # a table of zeros said nothing of why (hunt 176)
        console.print(
            f"note: the held-out folders of {', '.join(bare)} hold no clip on a side: they keep, per font, as many "
            f"clips with the concept as without, and the {tests} test clip(s) gave no font clips on both sides; "
            "raise --n",
            markup=False,
            highlight=False,
        )
    return 0
