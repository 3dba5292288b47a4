"""`musicsae concept find|list|remove|musicgen`: find concepts from examples and manage the concept bank."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from training.cli.args import (
    add_device,
    add_musicgen_model,
    add_threads,
    comma_names,
    folds,
    integer,
    meter_seconds,
    number,
    positive_int,
)

if TYPE_CHECKING:
    from pathlib import Path

    from sae.probe import ProbeReport
from training.cli.quiet import output_console, print_table, progress_bar, spinner

BANK_SUFFIXES = (".yaml", ".yml")


def one_layer(text: str) -> int:
    """`concept musicgen --layer`: one layer index as `--layers` reads it (`realtime.musicgen.base.layer_index`: -1
    the last, never -0, ASCII digits); int() read -0 as the first layer and ٤ as 4 (hunt 154)."""
    from realtime.musicgen.base import layer_index

    if (i := layer_index(text)) is None:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a layer index (0, 1, ..., or -1 for the last)")
    return i


def register(subparsers: argparse._SubParsersAction) -> None:
    f = subparsers.add_parser(
        "find",
        help="find a concept's SAE features from clips with and without it",
        description="Pool SAE features per clip, fit a sparse probe, report held-out AUROC next to two baselines on "
        "the raw latents (difference of means, logistic probe), and write the concept into the bank.",
    )
    f.add_argument("name", help="concept name (ASCII letters, digits, _ - .)")
    f.add_argument("--with", dest="with_dir", required=True, help="folder of clips featuring the concept")
    f.add_argument("--without", dest="without_dir", required=True, help="folder of clips without it")
    f.add_argument(
        "--model",
        required=True,
        help="streaming RAVE .ts export (or a MusicGen folder / hub id: the SAE's hook names the layer)",
    )
    f.add_argument("--sae", required=True, help="SAE directory trained on one hook of that model")
    f.add_argument(
        "--hook",
        default=None,
        help="RAVE hook the SAE reads: latent, encoder.net.N, decoder.net.N (default: the SAE's own; another is "
        "refused)",
    )
    f.add_argument(
        "--steer-threshold",
        type=number,
        default=None,
        help="RAVE: share of the concept's mean difference at the hook a feature must carry to be steered (default "
        "0.02; 0: steer only the probe's features)",
    )
    f.add_argument(
        "--spare",
        default=None,
        help="RAVE: concepts of the bank (same SAE), comma-separated, whose steering features this concept's edits "
        "leave alone, e.g. `concept find drums --spare guitar` so drums=off does not move guitar through a shared "
        "feature",
    )
    f.add_argument(
        "--alone",
        dest="alone_dir",
        default=None,
        help="RAVE: a folder of clips of the concept alone (e.g. drum solos, at least 4): fits a detector so that "
        "`off` turns them into silence instead of another timbre",
    )
    f.add_argument(
        "--alone-memory",
        type=meter_seconds,
        default=None,
        help="RAVE: seconds of the features the --alone detector remembers (default 2)",
    )
    f.add_argument("--bank", required=True, help="concept bank YAML (created if missing)")
    f.add_argument(
        "--k",
        type=positive_int,
        default=None,
        help="at most this many features in the probe, those that raise it kept (default: chosen by cross-validation)",
    )
    add_min_examples(f)
    add_device(f, "the model and the SAE")
    f.add_argument("--folds", type=folds, default=5, help="cross-validation folds (default 5)")
    f.add_argument(
        "--groups",
        choices=["none", "subfolder", "prefix"],
        default="none",
        help="RAVE: clips cut from one source stay in one fold: 'subfolder' (the folder under --with/--without) or "
        "'prefix' (the file name up to its first _); default none (every clip its own source)",
    )
    f.add_argument(
        "--permutations",
        type=integer,
        default=None,
        help="RAVE: reruns on shuffled labels for the chance-level AUROC (default 50; 0: none)",
    )
    f.add_argument(
        "--default",
        dest="mode",
        choices=["none", "off", "on", "clamp", "scale"],
        default="none",
        help="RAVE: the concept's mode when a live session or an nn~ export starts (default none: no edit until "
        "switched, e.g. over OSC; renders edit only what their --set names)",
    )
    f.add_argument(
        "--strength",
        type=number,
        default=None,
        help="default strength (on, clamp; default 1: what --set NAME=on renders with) / gain (scale: required)",
    )
    f.add_argument("--no-replace", action="store_true", help="refuse if the bank already has this name")
    add_threads(f)
    f.set_defaults(func=run_find)

    ls = subparsers.add_parser(
        "list",
        help="show the concept bank as a table",
        description="Show a concept bank as a table: each concept's model, hook, SAE, features, default and "
        "held-out AUROC.",
    )
    ls.add_argument("--bank", required=True, help="concept bank YAML")
    ls.set_defaults(func=run_list)

    rm = subparsers.add_parser(
        "remove",
        help="remove a concept from the bank",
        description="Remove a concept from a concept bank (the file is rewritten atomically; other concepts stay).",
    )
    rm.add_argument("name")
    rm.add_argument("--bank", required=True, help="concept bank YAML")
    rm.set_defaults(func=run_remove)
    register_musicgen(subparsers)


def add_min_examples(parser: argparse.ArgumentParser) -> None:
    """`--min-examples`, shared by the RAVE and MusicGen concept finders (one rule: `sae.examples.check_examples`)."""
    from sae.examples import MIN_EXAMPLES, WARN_EXAMPLES

    parser.add_argument(
        "--min-examples",
        type=integer,
        default=MIN_EXAMPLES,
        help=f"usable clips needed per side (default and least {MIN_EXAMPLES}; a note below {WARN_EXAMPLES})",
    )


def run_find(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    import torch

    from sae.errors import UserError
    from sae.paths import check_output_file
    from sae.steering import ConceptControl
    from training.rave.concepts import FindConfig, find_concept

    if args.mode == "scale" and args.strength is None:  # stored as scale:1, which `render --set` refuses: no edit
        raise UserError("--default scale: expected --strength G, the gain (scale alone is gain 1: no edit)")
    args.strength = 1.0 if args.strength is None else args.strength
    # the default every consumer (live, renders, nn~ export) would refuse is refused before any work
    ConceptControl(args.mode, args.strength, args.strength if args.mode == "scale" else 1.0).validate(args.name)
    check_output_file(args.bank, BANK_SUFFIXES, "--bank")
    torch.set_num_threads(args.threads)
    console = output_console()
    model = Path(args.model)
    rave_only = {
        "--hook": args.hook is not None,
        "--steer-threshold": args.steer_threshold is not None,
        "--groups": args.groups != "none",
        "--permutations": args.permutations is not None,
        "--spare": args.spare is not None,
        "--alone": args.alone_dir is not None,
        "--alone-memory": args.alone_memory is not None,
        "--default": args.mode != "none",  # a mode live and nn~ start with: MusicGen has neither (renders use --set)
    }
    if not (model.is_file() or model.suffix.lower() == ".ts"):  # a MusicGen folder or hub id: its own finder (a
        # file is a RAVE export whatever its name: `demo.TS` was "a file, not MusicGen weights", as `collect` takes it)
        from training.musicgen.concepts import find_musicgen_concept

        given = [flag for flag, used in rave_only.items() if used]
        if given:
            raise UserError(f"{given[0]}: applies to RAVE models (a .ts file) only; {args.model} is a MusicGen "
                            "folder or hub id")  # fmt: skip

        with spinner(console, f"finding {args.name!r} in MusicGen"):
            t0 = time.perf_counter()
            res = find_musicgen_concept(
                args.name,
                args.with_dir,
                args.without_dir,
                args.model,
                args.sae,
                args.bank,
                args.k,
                args.folds,
                args.mode,
                args.strength,
                not args.no_replace,
                min_examples=args.min_examples,
                device=args.device,
            )
        _print_find(console, args.name, res.report, res.concept, res.notes, args.bank, time.perf_counter() - t0)
        return 0
    if args.alone_memory is not None and args.alone_dir is None:
        raise UserError("--alone-memory: the memory of the --alone detector; pass --alone DIR too")
    cfg = FindConfig(
        args.name,
        args.with_dir,
        args.without_dir,
        args.model,
        args.sae,
        args.bank,
        args.k,
        args.min_examples,
        args.folds,
        args.mode,
        args.strength,
        replace=not args.no_replace,
        hook=args.hook,
        steer_threshold=FindConfig.steer_threshold if args.steer_threshold is None else args.steer_threshold,
        groups=args.groups,
        permutations=FindConfig.permutations if args.permutations is None else args.permutations,
        spare=comma_names(args.spare),
        alone_dir=args.alone_dir,
        alone_memory=FindConfig.alone_memory if args.alone_memory is None else args.alone_memory,
        device=args.device,
    )
    with spinner(console, f"finding {args.name!r}"):
        res = find_concept(cfg)
    _print_find(console, args.name, res.report, res.concept, res.notes, res.bank_path, res.seconds)
    return 0


def _print_find(console, name: str, rep, concept, notes: list[str], bank_path, seconds: float) -> None:
    from rich.table import Table

    groups = f", {rep.groups} sources" if getattr(rep, "groups", None) else ""
    table = Table(
        title=f"{name}: held-out AUROC ({rep.folds}-fold, {rep.n_with} with / {rep.n_without} without{groups})"
    )
    table.add_column("probe")
    table.add_column("AUROC [95 % interval]", justify="right")
    intervals = getattr(rep, "intervals", {}) or {}
    for key, label in (
        ("sae_probe", f"SAE sparse probe ({len(concept.features)} features)"),
        ("diff_means", "difference of means, raw activations"),
        ("logistic_raw", "logistic probe, raw activations"),
        ("diff_means_latent", "difference of means, raw latents"),
    ):
        if key in rep.auroc:
            iv = intervals.get(key)
            table.add_row(label, f"{rep.auroc[key]:.2f}" + (f" [{iv['lo']:.2f}, {iv['hi']:.2f}]" if iv else ""))
    if getattr(rep, "permutation", None):
        p = rep.permutation
        table.add_row(f"shuffled labels ({p['runs']} runs): mean / 95th pct", f"{p['mean']:.2f} / {p['p95']:.2f}")
    print_table(console, table)
    console.print(f"verdict: {getattr(rep, 'verdict', 'tied')}", highlight=False)
    feats = ", ".join(f"{f.index} (w {f.weight:.2f}, typ {f.typical:.3g})" for f in concept.features)
    console.print(f"features on {concept.hook}: {feats}", highlight=False)
    for line in [*([chance] if (chance := chance_note(rep, concept.hook)) else []), *notes]:
        console.print(f"note: {line}", highlight=False)
    console.print(f"wrote {name!r} to {bank_path} in {seconds:.1f} s", highlight=False)


def chance_note(rep, hook: str) -> str | None:
    """A note when the SAE probe's 95 % interval reaches 0.5: the figures do not show the concept readable at
    `hook` (the verdict only compares the SAE probe with the raw baselines)."""
    iv = (getattr(rep, "intervals", {}) or {}).get("sae_probe")
    if not iv or iv["lo"] > 0.5:
        return None
    where = "lies below" if iv["hi"] < 0.5 else "reaches"  # below: out of fold it ranks the clips without higher
    return (
        f"the SAE probe's 95 % interval [{iv['lo']:.2f}, {iv['hi']:.2f}] {where} chance (0.5): these clips do not "
        f"show the concept readable at {hook} (more clips per side, or another layer or SAE)"
    )


def run_list(args: argparse.Namespace) -> int:
    from sae.bank import ConceptBank

    bank = ConceptBank.load(args.bank)
    console = output_console()
    print_table(console, bank.rich_table())
    for line in bank.stale_spares():
        console.print(f"note: {line}", highlight=False)
    return 0


def run_remove(args: argparse.Namespace) -> int:
    from sae.bank import ConceptBank

    with ConceptBank.editing(args.bank, missing_ok=False) as bank:
        bank.remove(args.name)
    print(f"removed {args.name!r} from {bank.path}")
    for line in bank.stale_spares():
        print(f"note: {line}")
    return 0


def register_musicgen(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "musicgen",
        help="probe concepts in every MusicGen layer; add the best layer's features to a bank",
        description="For each concept (audio folders with/ and without/), teacher-force MusicGen on every clip, "
        "pool the SAE features of each layer per clip and report the held-out (out-of-fold) AUROC of the sparse "
        "SAE probe and of two raw-activation baselines, per layer. With --bank, store each concept from its best "
        "layer (or --layer) with the model and layer it belongs to.",
    )
    add_musicgen_model(parser)
    parser.add_argument("--saes", required=True, help="folder of SAEs, one <layer name>/ each (musicsae sae train)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--concepts", help="folder of <concept>/with|without folders")
    src.add_argument("--with", dest="with_dir", help="clips with the concept (use with --without and --name)")
    parser.add_argument("--without", dest="without_dir", help="clips without the concept")
    parser.add_argument("--name", help="concept name (with --with/--without)")
    parser.add_argument("--only", help="comma-separated concept names to keep (with --concepts)")
    parser.add_argument(
        "--layers",
        default=None,
        help="'all' or comma-separated layer indices (default: every layer --saes holds an SAE for)",
    )
    parser.add_argument("--layer", type=one_layer, help="store concepts from this layer instead of each one's best")
    parser.add_argument("--bank", help="concept bank YAML to add the concepts to (created if missing)")
    parser.add_argument("--no-replace", action="store_true", help="refuse if the bank already has one of the names")
    parser.add_argument(
        "--k",
        type=positive_int,
        default=None,
        help="at most this many features per concept (default: chosen by inner CV)",
    )
    parser.add_argument("--folds", type=folds, default=5, help="cross-validation folds (default 5)")
    add_min_examples(parser)
    parser.add_argument(
        "--description",
        default=None,
        help="text condition while teacher forcing (default: the one the SAEs' store was collected with, else none)",
    )
    parser.add_argument("--table-out", help="also write the per-layer table as JSON here")
    add_device(parser, "MusicGen and the SAEs")
    add_threads(parser)
    parser.set_defaults(func=run_musicgen)


def _other_format_saes(folder: Path, mg) -> str:
    """A hint where `folder` holds SAEs named for the other MusicGen format's layers (the transformers conversion of
    an audiocraft model, or back): SAEs serve the format they were collected on."""
    from realtime.musicgen.render import HOOK_PREFIXES

    for backend, prefix in HOOK_PREFIXES.items():
        if backend != mg.backend and any(folder.glob(f"{prefix}*/cfg.json")):
            return (f"; its SAEs are named for {backend}'s layers ({prefix}*): SAEs serve the format they were "
                    f"collected on, so collect and train again on this {mg.backend} folder, or use the {backend} "
                    "one")  # fmt: skip
    return ""


def run_musicgen(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    import dataclasses
    import json
    from collections.abc import Sequence
    from pathlib import Path

    from realtime.audio_files import AudioNotes
    from realtime.musicgen import load_musicgen, parse_layers
    from realtime.musicgen.base import layer_of
    from sae.atomic import atomic_write_text
    from sae.bank import ConceptBank, check_concept_name, inert_note
    from sae.errors import UserError
    from sae.io import load_sae, sae_weights_sha256
    from sae.paths import check_output_file
    from sae.probe import concept_clips, concept_intervals
    from training.musicgen.concepts import (
        clip_activations,
        collected_as,
        concept_files,
        example_files,
        probe_layer,
        split_halves,
    )

    # -- inputs, all checked before the model runs
    if args.with_dir:
        if not (args.without_dir and args.name):
            raise UserError("--with needs --without and --name")
        if args.only:
            raise UserError("--only picks concepts of --concepts; with --with the one concept is --name")
        if args.bank:  # a bank key; without --bank the name only labels the table
            check_concept_name(args.name, "--name")
        concepts = {args.name: example_files(args.with_dir, args.without_dir, args.min_examples)}
    else:
        ignored = [f for f, v in (("--without", args.without_dir), ("--name", args.name)) if v]
        if ignored:  # each concept is named after its folder: these were dropped without a word (hunt 78)
            raise UserError(f"{ignored[0]} goes with --with; --concepts names each concept after its folder")
        root = Path(args.concepts)
        if not root.is_dir():
            raise UserError(f"--concepts {root}: not a folder")
        names = sorted(p.name for p in root.iterdir() if (p / "with").is_dir())
        if args.only:
            wanted = list(comma_names(args.only))
            missing = [n for n in wanted if n not in names]
            if missing:
                raise UserError(f"--only {missing[0]}: no {root / missing[0]}/with folder")
            names = wanted
        if not names:
            raise UserError(f"--concepts {root}: no <concept>/with folders")
        for n in names if args.bank else ():  # before the model runs: a name the bank refuses stopped the command
            check_concept_name(n, f"--concepts {root}: folder name")  # after all the work
        concepts = {}
        for n in names:
            try:
                concepts[n] = concept_files(root / n, args.min_examples)
            except UserError as exc:  # one concept of the folder: name it, and how to leave it out
                keep = [m for m in names if m != n]
                out = f"; --only {','.join(keep)} leaves it out" if keep and "usable clip" in str(exc) else ""
                raise UserError(f"--concepts {root}: concept {n}: {exc}{out}") from None
    if args.bank:
        check_output_file(args.bank, BANK_SUFFIXES, "--bank")
    if args.table_out:  # not over an SAE's cfg.json or the model's training.json (hunt 181)
        from sae.paths import check_not_inside

        check_output_file(args.table_out, (".json",), "--table-out")
        model = args.model if Path(args.model).is_dir() else None  # a hub id holds no file of the user's
        sources = [(args.saes, "--saes"), (model, "--model")]
        check_not_inside(args.table_out, sources, "write the table elsewhere", "--table-out")
    bank = ConceptBank.load(args.bank, missing_ok=True) if args.bank else None
    if args.no_replace and not args.bank:
        raise UserError("--no-replace: applies to --bank, the bank the concepts are added to")
    if bank is not None and args.no_replace and (held := [n for n in concepts if n in bank]):
        raise UserError(f"concept {held[0]!r}: already in {bank.path} (--no-replace)")
    saes = Path(args.saes)  # checked before the model loads (a large one loads for minutes; hunt 138)
    if not saes.is_dir():
        raise UserError(f"--saes {saes}: " + ("not a folder" if saes.exists() else "no such folder"))
    if (saes / "cfg.json").is_file():
        raise UserError(f"--saes {saes}: one SAE (it holds cfg.json); expected the folder of SAEs that holds it, "
                        f"{Path(os.path.realpath(saes)).parent}")  # fmt: skip
    if args.layers is None:  # every SAE there is probed: made alike, before the model
        collected_as(sorted(p.parent for p in saes.glob("*/cfg.json")))
    console = output_console(stderr=True)
    with spinner(console, f"loading {args.model}"):
        mg = load_musicgen(args.model, args.backend, args.device)
    have = [i for i in range(mg.num_layers) if (saes / mg.hook_name(i)).is_dir()]
    other = "" if have else _other_format_saes(saes, mg)
    if args.layers is None:  # the layers `sae train` wrote an SAE for
        if not have:
            raise UserError(
                f"--saes {args.saes}: no SAE for any layer of {mg.name} (expected <layer name>/ folders such as "
                f"{mg.hook_name(0)}/, as musicsae sae train writes them){other}"
            )
        layers = have
    else:
        layers = parse_layers(args.layers, mg.num_layers)
        missing = [i for i in layers if i not in have]
        if missing:
            held = f"layer{'s' if len(have) > 1 else ''} {','.join(map(str, have))} only" if have else "no layer"
            raise UserError(
                f"--layers {args.layers}: no SAE for layer {missing[0]} ({mg.hook_name(missing[0])}) in --saes "
                f"{args.saes}; it holds SAEs for {held}{other}"
            )
    if args.layer is not None:  # -1: the model's last layer, as --layers reads it
        args.layer = layer_of(args.layer, mg.num_layers)
    if args.layer is not None and args.layer not in layers:
        why = f"the layers --saes {args.saes} holds an SAE for" if args.layers is None else "--layers"
        raise UserError(f"--layer {args.layer}: not among the layers probed ({','.join(map(str, layers))}: {why})")
    saes = {}
    for i in layers:
        sae_dir = Path(args.saes) / mg.hook_name(i)
        saes[i] = (load_sae(sae_dir, device=mg.device).eval(), sae_dir, sae_weights_sha256(sae_dir))
        mg.check_sae(sae_dir, saes[i][0].cfg.d_in, i)

    # the clips' rows made as the SAEs' were: the chunk and text condition their store was collected with
    made = collected_as([sae_dir for _, sae_dir, _ in saes.values()])
    description = args.description if args.description is not None else made.description if made else None
    if made and args.description is not None and args.description != made.description:
        console.print(
            f"note: --description {args.description!r}: the SAEs were trained on rows teacher-forced with "
            f"{made.description!r}; the probes see rows unlike them",
            highlight=False,
        )
    files = sorted({Path(os.path.realpath(f)) for w, o in concepts.values() for f in (*w, *o)})
    with progress_bar(console=console) as progress:
        task = progress.add_task(f"{mg.name}: teacher forcing clips", total=len(files))
        notes = AudioNotes()
        acts = clip_activations(
            mg,
            files,
            layers,
            chunk=made.chunk if made else None,
            description=description,
            progress=lambda n: progress.advance(task, n),
            notes=notes,
        )
        task = progress.add_task("probing", total=len(concepts) * len(layers))
        results, chosen_on, reported = {}, {}, {}
        half_notes: list[str] = []
        best: dict[str, int] = {}
        how: dict[str, str] = {}  # how each concept's layer was chosen
        for name, (with_files, without_files) in concepts.items():

            def probe(i: int, w: Sequence[Path], o: Sequence[Path], least: int = args.min_examples, name=name):
                sae, sae_dir, sae_sha = saes[i]
                ref = bank.relative_sae(sae_dir) if bank is not None else str(sae_dir)
                return probe_layer(name, mg, i, sae, ref, acts, w, o, args.k, args.folds, 0, least, sae_sha)

            # the layer is a setting: chosen on half the clips, its figures measured on the other half (the best
            # of L layers' AUROC on the clips it was chosen on put pure noise above chance, hunt 87)
            halves = split_halves(with_files, without_files, seed=0) if args.layer is None and len(layers) > 1 else None
            for i in layers:
                results[name, i] = probe(i, with_files, without_files)  # the table's, and the bank entry's fit
                if halves is not None:
                    chosen_on[name, i] = probe(i, *halves[0], least=0)  # the halves of clips checked whole
                progress.advance(task)
            # a layer whose entry steers the concept itself: a feature fires more with it than without. The entry
            # the bank stores is fit on every clip, so this asks it of that fit: a rule of what can be stored, not a
            # figure that chooses (hunt 199 asked for the choosing half's; its layer's entry could then be refused)
            usable = [i for i in layers if results[name, i].fires_more] or layers
            if args.layer is not None:
                best[name], how[name] = args.layer, "--layer"
            elif halves is None:
                best[name], how[name] = layers[0], "the one layer probed"
            else:
                best[name] = max(usable, key=lambda i, name=name: chosen_on[name, i].report.auroc["sae_probe"])
                how[name] = "chosen on half the clips, measured on the other half"
            reported[name] = results[name, best[name]] if halves is None else probe(best[name], *halves[1], least=0)
            if halves is not None:  # the counts rule on the clips the figures rest on: half of them
                half_notes += _count_rule_on_half(name, reported[name].report)

    rows, cells = [], {}
    found = []  # what goes into the bank, with its layer
    unfit: list[str] = []  # what does not, and why
    for name in concepts:
        for i in layers:
            rep = results[name, i].report
            cells[name, i] = f"{rep.auroc['sae_probe']:.2f}/{rep.best_baseline()[1]:.2f}"
            rows.append(
                {
                    "concept": name,
                    "layer": i,
                    "hook": mg.hook_name(i),
                    **rep.auroc,
                    "features": len(rep.probe.indices),
                    "n_with": rep.n_with,
                    "n_without": rep.n_without,
                    "folds": rep.folds,
                    "intervals": rep.intervals,  # 95 % intervals of each AUROC (`sae.stats.auroc_interval`)
                    "difference": rep.difference,  # SAE probe minus the best raw baseline, paired
                    "verdict": rep.verdict,
                }
                | ({"chosen_on": chosen_on[name, i].report.auroc["sae_probe"]} if (name, i) in chosen_on else {})
            )
        if bank is not None:
            pick, rep = best[name], reported[name].report
            if results[name, pick].fires_more:  # the entry fitted on every clip, with the figures reported
                concept = dataclasses.replace(
                    results[name, pick].concept,
                    auroc=dict(rep.auroc),
                    auroc_interval=concept_intervals(rep),
                    verdict=rep.verdict,
                    clips=concept_clips(rep),
                )
                found.append((concept, pick))
            else:
                unfit.append(f"{name} (layer {pick}): no feature of its SAE fires more with it than without")
    for table in layer_tables(mg.name, list(concepts), layers, cells, best):
        print_table(console, table)
    for name in concepts:
        rep = reported[name].report
        console.print(_best_layer_line(name, best[name], rep, how[name]), highlight=False)
        if chance := chance_note(rep, mg.hook_name(best[name])):
            console.print(f"note: {name}: {chance}", highlight=False)
    for line in notes.lines():
        console.print(f"note: {line}", highlight=False)
    for name in concepts:
        for line in results[name, layers[0]].notes:
            console.print(f"note: {line}", highlight=False)
    for line in half_notes:
        console.print(f"note: {line}", highlight=False)
    if args.table_out:
        out = Path(args.table_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        chosen = {
            name: {
                "layer": best[name],
                "how": how[name],
                **reported[name].report.auroc,
                "intervals": reported[name].report.intervals,
                "n_with": reported[name].report.n_with,
                "n_without": reported[name].report.n_without,
                "verdict": reported[name].report.verdict,
            }
            for name in concepts
        }
        atomic_write_text(out, json.dumps({"model": mg.model_ref(), "rows": rows, "chosen": chosen}, indent=1))
    if bank is not None:
        with ConceptBank.editing(bank.path) as now:  # as it is now: another command may have changed it meanwhile
            replaced = [now.add(concept, replace=not args.no_replace) for concept, _ in found]
            spares = now.stale_spares()
        for line in [r for r in replaced if r] + spares:
            console.print(f"note: {line}", highlight=False)
        for concept, _ in found:
            if inert := inert_note(concept):
                console.print(f"note: {inert}", highlight=False)
        for line in unfit:
            console.print(f"note: not added: {line}", highlight=False)
        if found:
            added = ", ".join(f"{c.name} (layer {pick})" for c, pick in found)
            console.print(f"added {added} to {bank.path}")
    return 0


def _count_rule_on_half(name: str, rep: ProbeReport) -> list[str]:
    """The counts rule applied to the half of the clips a concept's figures are measured on, where its layer was
    chosen on the other half: below `MIN_EXAMPLES` a side draws no verdict (`rep.verdict` set to tied: 6 clips a
    side read "baseline better"), below `WARN_EXAMPLES` its AUROC is loose; returns the notes saying so."""
    from sae.examples import MIN_EXAMPLES, WARN_EXAMPLES

    n = min(rep.n_with, rep.n_without)
    said = (f"{name}: measured on the half of the clips the layer was not chosen on ({rep.n_with} with, "
            f"{rep.n_without} without)")  # fmt: skip
    if n < MIN_EXAMPLES:
        rep.verdict = "tied"
        return [f"{said}: below {MIN_EXAMPLES} per side no verdict is drawn (tied); give more clips, or --layer"]
    return [f"{said}: with fewer than {WARN_EXAMPLES} per side its AUROC is loose"] if n < WARN_EXAMPLES else []


def _best_layer_line(name: str, layer: int, rep, how: str) -> str:
    """The concept's layer (`how` it was chosen) with its AUROCs, intervals, clips and verdict."""

    def auroc(key: str) -> str:
        iv = rep.intervals.get(key)
        return f"{rep.auroc[key]:.2f}" + (f" [{iv['lo']:.2f}, {iv['hi']:.2f}]" if iv else "")

    base = rep.best_baseline()[0]
    return (
        f"{name}: {'layer' if how == '--layer' else 'best layer'} {layer} ({how}), SAE probe "
        f"{auroc('sae_probe')} vs {base} {auroc(base)} (95 % intervals; {rep.n_with} with / {rep.n_without} without, "
        f"{rep.folds}-fold): verdict {rep.verdict}"
    )


def layer_tables(model: str, concepts: list[str], layers: list[int], cells: dict, best: dict[str, int]) -> list:
    """Held-out AUROC per layer, one row per layer and a column per concept (as many tables as 80 columns need)."""
    from rich.table import Table
    from rich.text import Text

    per_table = 5  # "0.93/0.88" cells: five concepts and the layer column fit 80 columns
    tables = []
    for start in range(0, len(concepts), per_table):
        names = concepts[start : start + per_table]
        table = Table(
            title=f"held-out AUROC per layer, {model}",
            caption="SAE probe / best raw baseline; bold: the concept's best layer",
            caption_justify="left",
        )
        table.add_column("layer", justify="right")
        for name in names:
            table.add_column(name, justify="right")
        for i in layers:
            row = [Text(cells[n, i], style="bold" if best[n] == i else "") for n in names]
            table.add_row(str(i), *row)
        tables.append(table)
    return tables
