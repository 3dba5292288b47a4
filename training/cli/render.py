"""`musicsae render rave|musicgen`: offline renders with concept edits from a bank."""

from __future__ import annotations

import argparse
from pathlib import Path

from training.cli.args import (
    EDIT_ROWS_DEFAULT,
    add_device,
    add_edit_rows,
    add_musicgen_model,
    add_threads,
    gate_levels,
    guidance_coef,
    nonneg_int,
    offline_block,
    positive_float,
    seed_int,
)
from training.cli.quiet import description_column, output_console, progress_bar, spinner


def register(subparsers: argparse._SubParsersAction) -> None:
    register_rave(subparsers)
    register_musicgen(subparsers)


def register_rave(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rave",
        help="render an audio file through RAVE with concept edits",
        description="Stream --in block by block through the RAVE model, editing the latents in SAE space "
        "(error term kept), and write --out aligned with the input. Without --set the render is the plain "
        "model (no edit): a render edits only what --set names, not the bank's defaults, which live and the nn~ "
        "export start with (the render names them in a note).",
    )
    p.add_argument("--in", dest="inp", required=True, metavar="FILE", help="input audio file")
    p.add_argument("--out", required=True, metavar="FILE", help="output audio file (format from the suffix)")
    p.add_argument("--model", required=True, help="streaming RAVE .ts export")
    p.add_argument("--bank", help="concept bank YAML")
    p.add_argument("--sae", help="SAE directory (default: the one the bank's concepts were found with)")
    p.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=MODE",
        help="concept edit: NAME=off, NAME=on[:STRENGTH], NAME=clamp[:STRENGTH], NAME=scale:GAIN, NAME=none "
        "(repeatable)",
    )
    p.add_argument(
        "--block",
        type=offline_block,
        default=None,
        help="samples per model call, a multiple of the ratio (default about 16384)",
    )
    p.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="seed of the decoder's noise fill (default 0, as live's; the fill is drawn per call, so a live take is "
        "matched at live's block: --block B)",
    )
    p.add_argument(
        "--gate-db",
        type=gate_levels,
        metavar="LO,HI",
        help="edits act on frames louder than LO dBFS, fully above HI (default: --gate-db=-60,-45)",
    )
    p.add_argument("--no-gate", action="store_true", help="edits act on every frame, silence included")
    p.add_argument("--no-align", action="store_true", help="keep the model's own delay in the output")
    add_device(p, "RAVE and the SAE")
    add_threads(p)
    p.set_defaults(func=run_rave)


def run_rave(args: argparse.Namespace) -> int:
    import torch

    from realtime.render_rave import gated_sets, parse_sets, render_file
    from sae.errors import UserError
    from sae.paths import check_audio_out
    from sae.steering import Gate

    check_audio_out(args.out)
    sets = parse_sets(args.sets)
    if args.no_gate and args.gate_db is not None:  # the levels of a gate that is off: ignored without a word
        raise UserError("--gate-db: sets the gate's levels, and --no-gate turns the gate off; drop one")
    if not gated_sets(sets) and (args.gate_db is not None or args.no_gate):  # the render would ignore it
        flag = "--gate-db" if args.gate_db is not None else "--no-gate"
        raise UserError(f"{flag}: the gate is where edits act, and no --set edits a concept")
    gate = Gate(*(args.gate_db or (-60.0, -45.0)), enabled=not args.no_gate)
    torch.set_num_threads(args.threads)
    console = output_console(stderr=True)
    with progress_bar(console=console) as progress:
        task = progress.add_task("rendering", total=None)
        report = render_file(
            args.inp,
            args.out,
            args.model,
            args.bank,
            args.sets,
            args.sae,
            args.block,
            args.seed,
            not args.no_align,
            lambda i, n: progress.update(task, completed=i, total=n),
            gate=gate,
            device=args.device,
        )
    for line in report.notes:
        console.print(f"note: {line}", highlight=False)
    edits = ", ".join(args.sets) or "no edit"
    console.print(
        f"wrote {args.out}: {report.seconds_audio:.2f} s of audio ({edits}), rendered in {report.seconds_wall:.2f} s "
        f"(RTF {report.rtf:.2f}) after {report.seconds_startup:.1f} s of start-up and writing; "
        + (
            "the model's delay kept (--no-align)"
            if args.no_align
            else f"the model's delay ({report.delay} samples) removed"
        ),
        highlight=False,
    )
    return 0


def register_musicgen(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "musicgen",
        help="generate with MusicGen while steering concepts from a bank",
        description="Generate audio from a prompt (or a YAML/CSV batch of prompts) with concept edits applied at "
        "each concept's layer on every step (the conditional guidance rows by default, see --edit-rows; SAE error "
        "kept). --set NAME=MODE[@START-STOP], MODE one of off, on, on:S, clamp:S, scale:G, none; START/STOP in "
        "seconds.",
    )
    add_musicgen_model(parser)
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--prompt", help="text prompt")
    what.add_argument("--batch", help="YAML list / CSV of jobs: prompt, and optional name, seed, duration, set")
    parser.add_argument(
        "--duration",
        type=positive_float,
        default=None,
        help="seconds (default: the LM's training segment when the model folder's training.json names it, as the "
        "demo MusicGen's does; else 10)",
    )
    parser.add_argument("--bank", help="concept bank YAML (needed with --set)")
    parser.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="NAME=MODE[@START-STOP]",
        help="concept edit, repeatable (e.g. --set guitar=off --set piano=on:2@2-6)",
    )
    parser.add_argument("--seed", type=seed_int, default=0, help="sampling seed (default 0)")
    parser.add_argument("--out", help="output audio file for --prompt (.wav, .flac, .ogg or .aiff)")
    parser.add_argument("--out-dir", help="output folder for --batch")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="also write the unedited render from the same seed (NAME.plain.wav) of each edited job, e.g. for the "
        "judge",
    )
    parser.add_argument("--cfg-coef", type=guidance_coef, default=3.0, help="classifier-free guidance (default 3)")
    parser.add_argument(
        "--top-k", type=nonneg_int, default=250, help="top-k sampling (default 250; 0: sample from every token)"
    )
    add_edit_rows(parser)
    add_device(parser, "MusicGen and the SAEs")
    add_threads(parser)
    parser.set_defaults(func=run_musicgen)


def run_musicgen(args: argparse.Namespace) -> int:
    import contextlib
    import time

    import torch

    torch.set_num_threads(args.threads)
    from rich.progress import BarColumn, TextColumn, TimeRemainingColumn

    from realtime.audio_files import clipping_note, write_audio
    from realtime.musicgen import duration_note, load_musicgen, trained_seconds
    from realtime.musicgen.render import (
        BankSteering,
        generation_steps,
        parse_set,
        render,
        step_progress,
        window_holds_a_step,
    )
    from sae.atomic import remove_leftovers, sole_writer
    from sae.bank import ConceptBank
    from sae.errors import UserError
    from sae.paths import check_audio_out, check_not_source, check_output_dir, check_output_file
    from sae.steering import check_sets
    from training.musicgen.jobs import RenderJob, read_jobs

    trained = trained_seconds(args.model)
    if args.duration is None:  # positions past the LM's training segment were never trained
        args.duration = trained if trained is not None else 10.0
    if args.prompt is not None:
        if args.out_dir:
            raise UserError("--out-dir: applies to --batch only; with --prompt, --out names the file")
        if not args.prompt.strip():
            raise UserError("--prompt: expected a non-empty text")
        if not args.out:
            raise UserError("--out: expected an output audio file with --prompt")
        jobs = [
            RenderJob(
                prompt=args.prompt, out=Path(args.out), seed=args.seed, duration=args.duration, sets=list(args.sets)
            )
        ]
    else:
        if args.out:
            raise UserError("--out: applies to --prompt only; with --batch, --out-dir and each job's name say where")
        if not args.out_dir:
            raise UserError("--out-dir: expected an output folder with --batch")
        check_output_dir(args.out_dir, "--out-dir")
        jobs = read_jobs(args.batch, Path(args.out_dir), args.seed, args.duration, list(args.sets))
    for job in jobs:
        if not 0 < job.duration < float("inf"):
            raise UserError(f"job {job.out.name}: duration {job.duration}: expected positive seconds")
        check_audio_out(job.out, "--out" if args.prompt is not None else f"job {job.out.name}:")
        if args.plain and job.sets:  # a folder there failed after the edited render, naming a temporary file
            check_audio_out(_plain(job.out), "--plain")
    record = Path(args.out_dir) / "render.json" if args.batch else _record_of(jobs[0].out)
    where = f"--out-dir {args.out_dir}: its record" if args.batch else f"--out {args.out}:"
    check_output_file(record, (".json",), where)  # what made each file, written last
    if args.batch:  # a JSON job list is YAML too: the record would replace it
        check_not_source(record, args.batch, where, "--batch", "keep the job list outside --out-dir")
    if args.plain:  # a job's NAME.plain.wav that is another job's file: overwritten by it, and listed twice
        names = {job.out.name.casefold() for job in jobs}  # one file where case is not told apart
        for job in jobs:
            if job.sets and _plain(job.out).name.casefold() in names:
                raise UserError(
                    f"job {job.out.name}: --plain writes {_plain(job.out).name}, another job's file; rename one of them"
                )

    @contextlib.contextmanager
    def naming(job: RenderJob):  # a batch job's problem names the job, not a --set never given
        try:
            yield
        except UserError as exc:
            if args.prompt is not None:
                raise
            raise UserError(f"--batch {args.batch} job {job.out.name}: {str(exc).removeprefix('--')}") from None

    parsed: dict[tuple[str, ...], list] = {}
    first: dict[tuple[str, ...], RenderJob] = {}  # the first job of each set list, named where one is refused
    for job in jobs:
        first.setdefault(tuple(job.sets), job)
        with naming(job):
            parsed[tuple(job.sets)] = [parse_set(s) for s in job.sets]

    def every_set():  # (job, how an error names the set, the set as given, parsed)
        for job in jobs:
            where = "--set" if args.prompt is not None else f"job {job.out.name}: set"
            for raw, s in zip(job.sets, parsed[tuple(job.sets)], strict=True):
                yield job, where, raw, s

    for job, where, raw, s in every_set():  # an edit scheduled after the render ends would edit nothing
        if s.start >= job.duration:
            raise UserError(
                f"{where} {raw!r}: starts at {s.start:g} s, after the {job.duration:g} s render ends "
                "(nothing would be edited)"
            )
    for key, sets in parsed.items():
        with naming(first[key]):
            check_sets((s.name, s.mode) for s in sets)
    if any(parsed.values()) and not args.bank:
        with naming(next(first[k] for k, v in parsed.items() if v)):
            raise UserError("--set needs --bank (the concept bank YAML)")
    if not any(parsed.values()):  # options of an edit, given with no edit: the render would ignore them
        given = [o for o, on in (("--bank", args.bank), ("--plain", args.plain), ("--edit-rows", args.edit_rows)) if on]
        if given:
            where = "no --set" if args.prompt is not None else "no --set and no job with a set"
            raise UserError(f"{given[0]}: applies to concept edits, and there is {where} (the render is plain)")
    args.edit_rows = args.edit_rows or EDIT_ROWS_DEFAULT
    bank = ConceptBank.load(args.bank) if args.bank else None

    held = contextlib.ExitStack()  # a second batch render into the same folder is refused, not interleaved
    if args.batch:
        held.enter_context(sole_writer(args.out_dir, "MusicGen render", flag="--out-dir"))
    with held:
        console = output_console(stderr=True)
        with spinner(console, f"loading {args.model}"):
            mg = load_musicgen(args.model, args.backend, args.device)
        # check every edit against the model (model identity, layer, SAE width) before generating anything
        steerings = {}
        for k, sets in parsed.items():
            with naming(first[k]):
                steerings[k] = BankSteering(mg, bank, sets, args.edit_rows) if sets else None

        def duration_of(j: RenderJob) -> str:  # what a refusal of a job's duration names
            return (
                f"--duration {j.duration:g}"
                if args.prompt is not None
                else f"job {j.out.name}: duration {j.duration:g}"
            )

        for j in jobs:  # every job's duration before the first renders (whole frames: 30.01 s renders 30 s)
            mg.check_request([j.prompt], j.duration, duration_of(j))
        for job, where, raw, s in every_set():  # a window between two steps edits nothing, as one past the end
            if not window_holds_a_step(s, mg.frame_rate, generation_steps(mg, job.duration)):
                raise UserError(
                    f"{where} {raw!r}: no generation step falls in its window (steps are {1 / mg.frame_rate:g} s "
                    "apart; nothing would be edited); widen it"
                )

        if note := duration_note(mg.name, trained, max(mg.rendered_seconds(job.duration) for job in jobs)):
            past = [j.out.name for j in jobs if duration_note(mg.name, trained, mg.rendered_seconds(j.duration))]
            named = f" (jobs {', '.join(past[:5])}{', ...' if len(past) > 5 else ''})" if args.batch else ""
            console.print(f"note: {note}{named}", highlight=False)

        # progress in what the user waits for: generation steps, and the seconds of audio they amount to
        columns = (
            description_column(),
            BarColumn(bar_width=24),
            TextColumn("{task.completed}/{task.total} steps"),
            TextColumn("{task.fields[audio]:.1f}/{task.fields[duration]:g} s of audio"),
            TimeRemainingColumn(),
        )
        renders = [(job, steerings[tuple(job.sets)], job.out) for job in jobs]
        if args.plain:  # a job with no edit is plain already: a copy of it would be rendered again
            renders += [(job, None, _plain(job.out)) for job in jobs if job.sets]
        for path in [out for _, _, out in renders] + [record] if args.batch else []:  # under the folder's lock
            remove_leftovers(path)  # the temporary files of a render killed while writing this one
        t0 = time.perf_counter()
        with progress_bar(*columns, console=console) as progress:
            for i, (job, steering, out) in enumerate(renders):
                steps = generation_steps(mg, job.duration)
                task = progress.add_task(out.name, total=steps, audio=0.0, duration=job.duration)

                def on_step(n: int, task=task, steps=steps, job=job) -> None:
                    done = min(n, steps)
                    progress.update(task, completed=done, audio=min(job.duration, done / mg.frame_rate))

                with step_progress(mg, on_step):
                    gen = render(mg, [job.prompt], job.duration, job.seed, steering, args.cfg_coef, args.top_k)
                progress.update(task, completed=steps, audio=job.duration)
                audio = gen.wav[0].T.float().cpu().numpy()
                write_audio(out, audio, mg.sample_rate)
                # after each file: a run stopped later leaves no file its record describes as it was before
                _write_record(args, mg, renders[: i + 1], record)
                if note := clipping_note(out.name, audio):
                    console.print(f"note: {note}", highlight=False)
        for line in mg.__dict__.get("prompt_notes", []):  # unknown words of a lookup-table model's prompts
            console.print(f"note: {line}", highlight=False)
        where = jobs[0].out if len(jobs) == 1 else args.out_dir
        edits = sorted({s for job in jobs for s in job.sets})
        seconds = sum(mg.rendered_seconds(job.duration) for job, _, _ in renders)
        console.print(
            f"rendered {len(renders)} file(s), {seconds:g} s of audio, to {where}"
            + (f" with {', '.join(edits)}" if edits else "")
            + f" in {time.perf_counter() - t0:.1f} s (after loading the model); what made each file: {record}",
            highlight=False,
        )
        return 0


def _record_of(out: Path) -> Path:
    """Where a --prompt render's record goes: OUT.render.json beside OUT, suffix kept (x.wav → x.wav.render.json),
    so that x.wav and x.ogg keep a record each."""
    return out.with_name(out.name + ".render.json")


def _plain(out: Path) -> Path:
    """Where --plain writes the unedited render of `out`: NAME.plain.wav."""
    return out.with_suffix(".plain" + out.suffix)


def _write_record(args: argparse.Namespace, mg, renders: list, dest: Path) -> None:
    """`dest` (a batch's OUT_DIR/render.json, a prompt's `_record_of`): what made each file (prompt, the description
    a lookup-table model played it as, seed, seconds, edits) and the settings they share (model, bank, guidance,
    top-k, edit rows)."""
    import json

    from realtime.musicgen.descriptions import canonical_prompts
    from sae.atomic import atomic_write_text

    files = []
    for job, steering, out in renders:
        played = canonical_prompts(mg.vocab, [job.prompt])[0][0]
        files.append(
            {
                "file": out.name,
                "prompt": job.prompt,
                **({"played_as": played} if played != job.prompt else {}),
                "seed": job.seed,
                **mg.duration_record(job.duration),  # whole frames, not the seconds asked
                "sets": list(job.sets) if steering is not None else [],
            }
        )
    shared = {
        "model": mg.model_ref(),
        "bank": str(Path(args.bank).resolve()) if args.bank else None,
        "cfg_coef": args.cfg_coef,
        "top_k": args.top_k,
        "edit_rows": args.edit_rows,
    }
    files += _earlier_files(dest, shared, {f["file"] for f in files})
    atomic_write_text(dest, json.dumps({**shared, "files": files}, indent=1) + "\n")


def _earlier_files(dest: Path, shared: dict, written: set[str]) -> list[dict]:
    """The entries of an earlier record at `dest` (an earlier batch into the same folder) for files still there and
    not written again: the new record replaced them, and those files lost what made them. An entry made with other
    shared settings carries its own (`settings`)."""
    import json

    try:
        old = json.loads(dest.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # none, or not a record: nothing to carry over
        return []
    if not isinstance(old, dict) or not isinstance(old.get("files"), list):
        return []
    theirs = {k: old.get(k) for k in shared}
    kept = []
    for entry in old["files"]:
        name = entry.get("file") if isinstance(entry, dict) else None
        if not isinstance(name, str) or name in written or not (dest.parent / name).is_file():
            continue
        kept.append(entry if theirs == shared or "settings" in entry else {**entry, "settings": theirs})
    return kept
