"""`musicsae eval steering|hooks|musicgen|fidelity`: an outside audio judge measures concept edits on held-out renders,
and how much of each concept a RAVE model's plain reconstructions keep."""

from __future__ import annotations

import argparse

from training.cli.args import (
    EDIT_ROWS_DEFAULT,
    add_device,
    add_edit_rows,
    add_musicgen_model,
    add_threads,
    clamp_strengths,
    comma_names,
    integer,
    nonneg_float,
    nonneg_int,
    on_strength,
    on_strengths,
    positive_float,
    positive_int,
    seed_int,
)
from training.cli.quiet import output_console, print_table, spinner


def names_of(text: str | None, flag: str) -> tuple[str, ...]:
    """Comma-separated names (`--concepts`, `--watch`, `--oracle`), blanks dropped; None (not given): none. Given
    with no name (`--concepts ,`) is refused: read as not given, it judged every concept of the bank."""
    names = comma_names(text)
    if text is not None and not names:
        from sae.errors import UserError

        raise UserError(f"{flag} {text!r}: expected comma-separated names")
    return names


def watch_of(args: argparse.Namespace) -> tuple[str, ...]:
    """`--watch`'s names, refused at once when the manifest has no such label (not after the renders)."""
    from training.judge import watched

    names = names_of(args.watch, "--watch")
    watched(names, ())
    return names


def add_watch(p: argparse.ArgumentParser) -> None:
    """The judges' `--watch`: concepts judged for the drift only (`names_of` splits it)."""
    p.add_argument(
        "--watch",
        default=None,
        help="manifest concepts judged for the drift only, not steered, e.g. bass,strings,brass (a concept judged "
        "with no other has no drift measured, and its drift goal is not met)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    register_steering(subparsers)
    register_hooks(subparsers)
    register_musicgen(subparsers)
    register_fidelity(subparsers)


def register_fidelity(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "fidelity",
        help="how much of each concept a RAVE model's plain reconstructions keep (outside judge, held-out font)",
        description="Render the held-out-font clips and the test split of --data through each --model with no edit, "
        "and compare with the originals: per concept, how often the outside judge (harmonic/percussive log-mel + "
        "logistic regression, cross-fitted so it never judges a clip it trained on) hears it in the reconstructions "
        "vs the originals, "
        "among clips with and without it (goal: within 10 points, met only when the 95 % interval is); the "
        "multi-scale spectral distance and the loudness error. Every figure has its clip count and interval. "
        "Writes OUT/fidelity.json and OUT/fidelity.md.",
    )
    p.add_argument("--data", required=True, help="folder written by `musicsae data make` (best with --holdout-font)")
    p.add_argument("--model", required=True, action="append", help="streaming RAVE .ts (repeat to compare models)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--concepts", default="guitar,piano,drums,bass,strings,brass", help="manifest concepts to judge")
    p.add_argument(
        "--oracle",
        default=None,
        help="concepts to also edit ideally (re-rendered from MIDI without / with their part), judged clean and "
        "through the model: the ceiling of steering (e.g. guitar,drums,piano)",
    )
    p.add_argument(
        "--oracle-clips", type=nonneg_int, help="ideal edits per side and set, with --oracle (default 40; 0: all)"
    )
    p.add_argument("--max-clips", type=nonneg_int, default=0, help="clips per set (0: all)")
    p.add_argument("--seed", type=seed_int, default=0)
    add_threads(p)
    add_device(p, "the RAVE models")
    p.set_defaults(func=run_fidelity)


def run_fidelity(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch
    from rich.markdown import Markdown

    from sae.errors import UserError
    from sae.paths import check_not_inside, check_output_dir
    from training.rave.fidelity import FidelityConfig, evaluate_fidelity, markdown, save

    if args.oracle_clips is not None and not args.oracle:  # it was taken and used nowhere (hunt 141)
        raise UserError("--oracle-clips: the ideal edits of the --oracle concepts; pass --oracle too")
    check_output_dir(args.out)
    check_not_inside(args.out, [(args.data, "--data")], "write the results elsewhere")
    torch.set_num_threads(args.threads)
    cfg = FidelityConfig(
        args.data,
        tuple(args.model),
        names_of(args.concepts, "--concepts"),
        max_clips=args.max_clips,
        seed=args.seed,
        oracle=names_of(args.oracle, "--oracle"),
        oracle_clips=40 if args.oracle_clips is None else args.oracle_clips,
        device=args.device,
    )
    console = output_console()
    with spinner(console, "measuring fidelity") as say:
        result = evaluate_fidelity(cfg, say)
    save(result, Path(args.out))
    console.print(Markdown(markdown(result)))
    for line in result["notes"]:
        console.print(f"note: {line}", highlight=False)
    console.print(f"wrote {args.out}/fidelity.json and fidelity.md ({result['seconds']:.0f} s)", highlight=False)
    return 0


def register_hooks(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "hooks",
        help="latent SAE vs inner-layer SAEs vs the raw-latent baseline, judged side by side",
        description="For each --hooks entry: collect the activations of the data's train and test clips, train an "
        "SAE, find every concept, and judge off / on / clamp on the held-out clips (the held-out soundfont when the "
        "data has one) beside the raw-latent difference-of-means baseline; writes OUT/comparison.json and "
        "OUT/report.md (AUROC score intervals, Newcombe's paired intervals for drop and rise, a paired bootstrap "
        "for drift, the best hook and why; a win counts where the edit's drift intervals lie within 10 points). "
        "Stages already done are skipped, so a stopped run resumes.",
    )
    p.add_argument("--data", required=True, help="folder written by `musicsae data make` (manifest + clips)")
    p.add_argument("--model", required=True, help="streaming RAVE .ts export")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--hooks", default="latent,decoder.net.1", help="comma-separated hooks (default latent,decoder.net.1)"
    )
    p.add_argument("--concepts", default="guitar,drums,piano", help="manifest concepts (default guitar,drums,piano)")
    add_watch(p)
    p.add_argument("--store", help="an activation store already holding every hook (default: collect into OUT)")
    p.add_argument("--split", choices=["test", "holdout_font"], help="judged clips (default: holdout_font if any)")
    p.add_argument(
        "--validation-split",
        choices=["test", "holdout_font", "none"],
        help="clips the hook is chosen on (default: test when the judged split is holdout_font; none: the judged "
        "clips themselves)",
    )
    p.add_argument("--sae-steps", type=positive_int, default=1500, help="SAE steps per hook (default 1500)")
    p.add_argument("--strength", type=on_strengths, default=(2.0, 8.0), help="on strengths (default 2,8)")
    p.add_argument(
        "--clamp", type=clamp_strengths, default=(2.0, 4.0), help="clamp strengths, each <= 10 (default 2,4)"
    )
    p.add_argument(
        "--max-clips",
        type=nonneg_int,
        default=12,
        help="held-out clips per side each figure is on (default 12; the clips without get as many more to "
        "choose the strengths on; 0: all)",
    )
    p.add_argument(
        "--steer-threshold",
        type=nonneg_float,
        default=0.02,
        help="share of a concept a feature must carry (default 0.02)",
    )
    p.add_argument(
        "--spare",
        action="store_true",
        help="each concept's edits leave alone the steering features of the concepts found before it (order of "
        "--concepts; `concept find --spare`)",
    )
    p.add_argument(
        "--no-alone",
        dest="alone",
        action="store_false",
        help="no detectors of a concept playing alone (default: each concept with a DATA/concepts/<c>/alone folder "
        "gets one at each hook, `concept find --alone`, and the baseline's off the same silence)",
    )
    p.add_argument("--seed", type=seed_int, default=0)
    add_threads(p)
    add_device(p, "RAVE and the SAEs")
    p.set_defaults(func=run_hooks)


def run_hooks(args: argparse.Namespace) -> int:
    import torch

    from sae.atomic import sole_writer
    from sae.errors import UserError
    from sae.paths import check_not_inside, check_output_dir
    from sae.store import open_store
    from training.rave.hooks import HookCompareConfig, run_hook_compare

    check_output_dir(args.out)
    check_not_inside(args.out, [(args.data, "--data"), (args.store, "--store")], "write the results elsewhere")
    hooks = comma_names(args.hooks)
    if not hooks:
        raise UserError("--hooks: expected at least one hook, e.g. latent,decoder.net.1")
    watch = watch_of(args)
    if args.store is not None:  # every hook checked now: one missing failed after the others' whole work
        have = open_store(args.store, "--store").hooks
        missing = [h for h in hooks if h not in have]
        if missing:
            raise UserError(
                f"--store {args.store}: no hook {missing[0]!r} (it holds {', '.join(have)}); collect it there "
                f"(musicsae collect rave --layers {missing[0]}), or leave --store out to collect every hook"
            )
    torch.set_num_threads(args.threads)
    cfg = HookCompareConfig(
        args.data,
        args.model,
        args.out,
        hooks,
        names_of(args.concepts, "--concepts"),
        args.store,
        args.split,
        args.sae_steps,
        tuple(args.strength),
        tuple(args.clamp),
        args.max_clips,
        args.steer_threshold,
        args.seed,
        args.validation_split,
        args.device,
        args.spare,
        args.alone,
        watch,
    )
    with sole_writer(args.out, "eval hooks"):  # a second one there is refused; this one clears what killed ones left
        summary = run_hook_compare(cfg, lambda s: print(s, flush=True))
    print(f"pick: {summary['reason']}")
    print(f"wrote {args.out}/comparison.json and report.md ({summary['seconds']:.0f} s)")
    return 0


def register_steering(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "steering",
        help="measure concept edits with an audio-only judge (harmonic/percussive log-mel + logistic regression)",
        description="Train one detector per concept on clean train clips of --data and a degraded copy of each "
        "(log-mel statistics of the harmonic and percussive parts, never SAE or RAVE latents), render the held-out "
        "clips through --model with no edit / off / on at each strength, and "
        "report each concept's detection and the drift of every other concept, for the SAE edits and, side by "
        "side, for the same edits along the raw-latent difference of means. Writes OUT/judge.json and "
        "OUT/judge.png.",
    )
    p.add_argument("--data", required=True, help="folder written by `musicsae data make` (manifest + clips)")
    p.add_argument("--model", required=True, help="streaming RAVE .ts export")
    p.add_argument("--bank", required=True, help="concept bank YAML")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--concepts",
        default=None,
        help="comma-separated bank concepts (default: the bank's concepts on --model that the manifest labels)",
    )
    p.add_argument(
        "--strength",
        type=on_strengths,
        default=(1.0, 2.0, 4.0, 8.0, 16.0),
        help="strengths of `on` to sweep, comma-separated (default 1,2,4,8,16)",
    )
    p.add_argument(
        "--clamp",
        type=clamp_strengths,
        default=(),
        metavar="STRENGTHS",
        help="also sweep clamp:S at these strengths (each <= 10), comma-separated (default: none)",
    )
    add_watch(p)
    p.add_argument("--no-gate", action="store_true", help="edits and the baseline act on silent frames too")
    p.add_argument(
        "--split",
        default="test",
        choices=["test", "holdout_font"],
        help="held-out clips to judge: the test split (default) or a held-out font's clips",
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the difference-of-means steering baseline")
    p.add_argument(
        "--max-clips",
        type=nonneg_int,
        default=0,
        help="held-out clips per side and concept each figure is on (the clips without get as many more to "
        "choose the strength of on; 0: all)",
    )
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument(
        "--listen",
        type=nonneg_int,
        default=2,
        help="held-out clips per side and concept written as listening examples to OUT/listen (original, "
        "through the model, concept off, concept on) for the dashboard's concept pages (default 2; 0: none)",
    )
    add_device(p, "RAVE and the SAE")
    add_threads(p)
    p.set_defaults(func=run_steering)


def run_steering(args: argparse.Namespace) -> int:
    import torch

    from sae.paths import check_not_inside, check_output_dir
    from training.judge import check_listen_folder, rich_table
    from training.rave.judge import EvalConfig, evaluate_steering
    from training.rave.split_figures import figures_line

    check_output_dir(args.out)
    check_not_inside(args.out, [(args.data, "--data")], "write the results elsewhere")
    if args.listen:
        check_listen_folder(args.out)
    torch.set_num_threads(args.threads)
    console = output_console()
    cfg = EvalConfig(
        args.data,
        args.model,
        args.bank,
        args.out,
        names_of(args.concepts, "--concepts"),
        args.strength,
        args.max_clips,
        seed=args.seed,
        baseline=not args.no_baseline,
        clamp_strengths=tuple(args.clamp),
        gate=not args.no_gate,
        split=args.split,
        device=args.device,
        watch=watch_of(args),
    )
    with spinner(console, "judging") as say:
        result = evaluate_steering(cfg, say)
    print_table(console, rich_table(result))
    console.print(figures_line(result["sae_figures"], args.split), highlight=False)
    for line in result["notes"]:
        console.print(f"note: {line}", highlight=False)
    console.print(f"wrote {args.out}/judge.json and judge.png ({result['seconds']:.0f} s)", highlight=False)
    from training.judge import drop_earlier_examples

    # an earlier judge's examples would be shown under this one's calls: gone before new ones are rendered, so an
    # interrupted rendering leaves none rather than the old ones beside the new judge.json
    dropped = drop_earlier_examples(args.out)
    if args.listen:
        from training.rave.listen import write_examples

        with spinner(console, "rendering listening examples"):
            path = write_examples(result, args.data, args.model, args.bank, args.out, args.listen, args.seed)
        console.print(f"wrote listening examples to {path.parent} (the dashboard's concept pages)", highlight=False)
    elif dropped:
        console.print(f"note: removed the listening examples of an earlier judge in {args.out}/listen")
    return 0


DEFAULT_PROMPTS = ("a calm song with guitar, piano and drums", "upbeat pop with bass, strings and brass")


def register_musicgen(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "musicgen",
        help="measure MusicGen concept edits with the audio-only judge (same prompts and seeds, edit vs none)",
        description="Train the outside judge (harmonic/percussive log-mel + logistic regression per concept) on the "
        "clean train clips of --data and a degraded copy of each, render each prompt with each seed without edit, "
        "with the concept off, and with it on, and report "
        "the judge's detection and the drift of the other concepts. Writes OUT/judge.json and OUT/judge.png.",
    )
    p.add_argument("--data", required=True, help="folder written by `musicsae data make` (manifest + clips)")
    add_musicgen_model(p)
    p.add_argument("--bank", required=True, help="concept bank YAML (MusicGen concepts of this model)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--prompts",
        help="prompt file (.txt, one per line, # starts a comment line; .csv; .yaml; default: two "
        "mixed-instrument prompts)",
    )
    p.add_argument("--renders", type=integer, default=2, help="seeds per prompt (default 2)")
    p.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        help="seconds per render (default: the LM's training segment where the model records it, else 4)",
    )
    p.add_argument(
        "--concepts",
        default=None,
        help="comma-separated bank concepts (default: the bank's concepts on --model that the manifest labels)",
    )
    p.add_argument(
        "--strength",
        type=on_strength,
        default=None,
        help="strength of `on` (default 0.5 on the conditional rows, the default --edit-rows, where guidance "
        "multiplies it: what the MusicGen experiment chose on validation; 1 with --edit-rows both)",
    )
    add_watch(p)
    p.add_argument("--seed", type=seed_int, default=0)
    add_edit_rows(p)
    add_device(p, "MusicGen and the SAEs")
    add_threads(p)
    p.set_defaults(func=run_musicgen)


def run_musicgen(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from realtime.musicgen import trained_seconds
    from sae.errors import UserError
    from sae.paths import check_not_inside, check_output_dir
    from training.judge import check_listen_folder, rich_table
    from training.musicgen.judge import MusicGenEvalConfig, evaluate_musicgen, read_prompt_list

    if args.renders < 1:  # --duration is checked by its type (positive_float)
        raise UserError(f"--renders {args.renders}: expected at least 1")
    check_output_dir(args.out)
    check_not_inside(args.out, [(args.data, "--data")], "write the results elsewhere")
    check_listen_folder(args.out)  # its listening examples replace OUT/listen
    trained = trained_seconds(args.model)  # as render musicgen: positions past the LM's segment were never trained
    if args.duration is None:
        args.duration = trained if trained is not None else 4.0
    console = output_console()
    torch.set_num_threads(args.threads)
    cfg = MusicGenEvalConfig(
        args.data,
        args.model,
        args.bank,
        args.out,
        read_prompt_list(args.prompts, DEFAULT_PROMPTS),
        args.backend,
        args.renders,
        args.duration,
        names_of(args.concepts, "--concepts"),
        args.strength,
        args.seed,
        args.device,
        args.edit_rows or EDIT_ROWS_DEFAULT,
        watch=watch_of(args),
    )
    with spinner(console, "judging") as say:
        result = evaluate_musicgen(cfg, say, lambda line: console.print(line, highlight=False))
    print_table(console, rich_table(result))
    for line in result["notes"]:
        console.print(f"note: {line}", highlight=False)
    console.print(f"wrote {args.out}/judge.json and judge.png ({result['seconds']} s)", highlight=False)
    if result.get("listen"):
        listen = Path(args.out) / Path(result["listen"]).parent
        console.print(
            f"wrote listening examples to {listen} (plain | off | on per prompt and seed; the dashboard's concept "
            f"pages with --eval-dir {args.out})",
            highlight=False,
        )
    return 0
