"""`musicsae collect rave|musicgen`: activations of RAVE or MusicGen layers into an activation store."""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

from training.cli.args import (
    add_device,
    add_musicgen_model,
    add_threads,
    comma_names,
    guidance_coef,
    integer,
    number,
    positive_float,
    seed_int,
)
from training.cli.launch import add_nproc
from training.cli.quiet import description_column, output_console, progress_bar, spinner


def register(subparsers: argparse._SubParsersAction) -> None:
    register_rave(subparsers)
    register_musicgen(subparsers)


def register_rave(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "rave",
        help="collect RAVE latents / encoder and decoder activations from audio files",
        description="Run every audio file of --audio through a streaming RAVE export and store its deterministic "
        "latents (posterior mean) and, with --layers, encoder and decoder layer outputs (pooled per latent frame) "
        "in the activation store --out. Under torchrun each rank takes its share of the files.",
    )
    p.add_argument("--model", required=True, help="streaming RAVE .ts export")
    p.add_argument("--audio", required=True, help="folder of audio files (searched recursively) or one file")
    p.add_argument("--out", required=True, help="activation store directory (appended to; re-runs resume)")
    p.add_argument(
        "--layers",
        default="latent",
        help="comma-separated hooks: latent, encoder.net.N, decoder.net.N (default: latent); 'list' prints them "
        "with their width",
    )
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="on-disk dtype")
    p.add_argument("--chunk-seconds", type=number, default=10.0, help="audio per forward call (default 10)")
    add_device(p, "RAVE")
    add_nproc(p, "each collecting its share of the files (cuda: each its own GPU)")
    add_threads(p, None, "torch CPU threads (default: torch's own, one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_rave, launched=ranks_stored_rows)


def _empty(out: Path) -> bool:
    """`out` is a store folder holding no row (no shard written) that no collect is writing into: a run refused
    beside another (or failing) removed the store the other was filling, losing its rows (hunt 206)."""
    from sae.atomic import held

    return (out.is_dir() and not any(out.rglob("*.safetensors"))
            and not any(held(lock) for lock in out.glob("*/.writer_*.lock")))  # fmt: skip


@contextlib.contextmanager
def no_empty_store(out: str | Path) -> Iterator[None]:
    """A store folder this run made is removed again when the run fails before storing a row, so a failed first
    run leaves nothing behind; a store holding rows is kept (the next run resumes it). Under a launcher no rank
    removes it: the others may still be writing there (it was deleted under rank 0's first shard); the launcher
    does, once every rank ended (`ranks_stored_rows`)."""
    from sae.ranks import this_rank

    out = Path(out)
    fresh = not out.exists() and this_rank()[1] == 1
    try:
        yield
    except BaseException:
        if fresh and _empty(out):
            shutil.rmtree(out, ignore_errors=True)
        raise


def ranks_stored_rows(args: argparse.Namespace) -> Callable[[int], int]:
    """Around `--nproc N` (called by the launcher before the ranks start; the function it returns after they all
    ended, with their exit code): a store folder this launch made in which no rank stored a row is removed, and
    where every rank ended well (each rank's share was unusable; a rank alone cannot tell) that is one line, as
    one process says it."""
    from sae.errors import UserError

    out = Path(args.out)
    fresh = not out.exists() and not out.is_symlink()

    def finish(code: int) -> int:
        if not (fresh and _empty(out)):
            return code
        shutil.rmtree(out, ignore_errors=True)
        if code:
            return code
        source = f"--prompts {args.prompts}" if getattr(args, "prompts", None) else f"--audio {args.audio}"
        raise UserError(f"{source}: no rank stored a row (every rank's share was unusable; their notes above say why)")

    return finish


def run_rave(args: argparse.Namespace) -> int:
    import torch

    from realtime.audio_files import list_audio
    from sae.errors import UserError
    from sae.paths import check_not_inside, check_output_dir
    from training.rave.collect import RaveCollectConfig, collect_rave

    if args.threads:
        torch.set_num_threads(args.threads)
    if not 0 < args.chunk_seconds < math.inf:
        raise UserError(f"--chunk-seconds {args.chunk_seconds}: expected a positive number of seconds")
    check_output_dir(args.out)
    check_not_inside(args.out, [(args.audio, "--audio")], "the store would sit among the clips; collect elsewhere")
    console = output_console(stderr=True)
    if args.layers.strip() == "list":
        from realtime.rave import RaveModel
        from realtime.rave_split import hook_shape, split_hooks

        model = RaveModel.load(args.model, args.device)
        for hook in split_hooks(model):
            width, steps = hook_shape(model, hook)
            print(f"{hook}\t{width}\t{steps}")
        return 0
    layers = comma_names(args.layers)
    cfg = RaveCollectConfig(
        model=args.model,
        audio=args.audio,
        out=args.out,
        layers=layers,
        dtype=args.dtype,
        chunk_seconds=args.chunk_seconds,
        device=args.device,
    )
    for line in _linked(list_audio(args.audio, "--audio folder"), args.audio):  # before the (long) collection
        console.print(f"note: {line}", highlight=False)
    with no_empty_store(args.out), progress_bar(console=console, hide=args.quiet) as progress:
        task = progress.add_task("collecting", total=None)
        report = collect_rave(cfg, lambda i, n: progress.update(task, completed=i, total=n))
    for line in report.notes.lines():
        console.print(f"note: {line}", highlight=False)
    rows = ", ".join(f"{h}: {n} rows" for h, n in report.rows.items()) or "no new rows"
    rank = f" (rank {report.rank} of {report.world_size})" if report.world_size > 1 else ""
    console.print(
        f"collected {report.collected} of {report.files} file(s){rank} into {args.out} in {report.seconds:.1f} s; "
        f"{rows}" + (f"; {report.resumed} already complete" if report.resumed else ""),
        highlight=False,
    )
    return 0


def register_musicgen(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "musicgen",
        help="record MusicGen layer activations (from prompts, or from audio teacher-forced)",
        description="Record the residual stream after MusicGen transformer layers, one row per audio frame "
        "(conditional rows only), with provenance, into the activation store OUT/<layer name>/. From prompts: "
        "generate and record. From audio: encode with the model's codec and run the LM teacher-forced (much "
        "faster). Re-running the same command resumes: complete sources are skipped.",
    )
    add_musicgen_model(parser)
    parser.add_argument("--layers", default="all", help="'all' or comma-separated layer indices (default all)")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--prompts",
        help="prompt file: .txt (one per line; a line starting with # is a comment), .csv (prompt column) or "
        ".yaml list",
    )
    src.add_argument("--audio", help="folder of audio files (wav/flac/ogg/mp3), searched recursively")
    parser.add_argument("--out", required=True, help="activation store directory")
    parser.add_argument(
        "--duration",
        type=positive_float,
        help="seconds generated per prompt (default: the LM's training segment when the model folder's "
        "training.json names it, as the demo MusicGen's does; else 10)",
    )
    parser.add_argument("--seed", type=seed_int, help="generation seed (default 0)")
    parser.add_argument(
        "--batch-size",
        type=integer,
        default=4,
        help="prompts per batch, or with --audio chunks per batch, across files (stored in order: a file is marked "
        "complete when the next one's rows come; default 4)",
    )
    parser.add_argument("--cfg-coef", type=guidance_coef, help="classifier-free guidance (default 3)")
    parser.add_argument(
        "--chunk",
        type=positive_float,
        help="seconds of audio per teacher-forced chunk (default: the LM's training segment when training.json "
        "names it; else 10)",
    )
    parser.add_argument(
        "--description", default=None, help="text condition for --audio (default: none, the unconditional branch)"
    )
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"], help="store dtype")
    add_device(parser, "MusicGen")
    add_nproc(parser, "each collecting its share of the prompts or files (cuda: each its own GPU)")
    add_threads(parser)
    parser.set_defaults(func=run_musicgen, launched=ranks_stored_rows)


# (option, its field, the only source it shapes): generation from --prompts, teacher forcing of --audio
SOURCE_ONLY = (
    ("--duration", "duration", "--prompts"),
    ("--seed", "seed", "--prompts"),
    ("--cfg-coef", "cfg_coef", "--prompts"),
    ("--chunk", "chunk", "--audio"),
    ("--description", "description", "--audio"),
)


def run_musicgen(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)

    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from realtime.audio_files import list_audio, source_name
    from realtime.musicgen import duration_note, load_musicgen, parse_layers, trained_seconds
    from sae.errors import UserError
    from sae.paths import check_not_inside, check_output_dir
    from sae.ranks import rank_device, split_by_rank, this_rank
    from training.musicgen.collect import CollectConfig, Collector, my_prompts, prompt_sources, read_prompts

    source = "--prompts" if args.prompts else "--audio"
    trained = trained_seconds(args.model)  # positions past the LM's training segment were never trained
    for flag, field, where in SOURCE_ONLY:  # an option of the other source would be ignored: refuse it
        if where != source and getattr(args, field) is not None:
            raise UserError(f"{flag}: applies to {where} only, not {source}")
        if getattr(args, field) is None:
            seconds = field in ("duration", "chunk") and where == source and trained is not None
            setattr(args, field, trained if seconds else getattr(CollectConfig, field))
    if args.batch_size < 1:
        raise UserError(f"--batch-size {args.batch_size}: expected at least 1")
    check_not_inside(args.out, [(args.audio, "--audio")], "the store would sit among the clips; collect elsewhere")
    # validate everything that does not need the model before loading it, and the rest before writing
    prompts = read_prompts(args.prompts) if args.prompts else None
    files = list_audio(args.audio, "--audio folder") if args.audio else None
    out = check_output_dir(args.out)
    console = output_console(stderr=True)
    with spinner(console, f"loading {args.model}"):
        mg = load_musicgen(args.model, args.backend, rank_device(args.device))
    layers = parse_layers(args.layers, mg.num_layers)
    for line in _linked(files, args.audio):  # said before the (long) collection, not after it
        console.print(f"note: {line}", highlight=False)
    flag, seconds_asked = ("--duration", args.duration) if prompts is not None else ("--chunk", args.chunk)
    if not math.isfinite(seconds_asked * mg.frame_rate):  # 1e308 s: an OverflowError traceback (hunt 172)
        raise UserError(f"{flag} {seconds_asked:g}: expected a number of seconds this model can count in frames")
    if mg.frames(seconds_asked) < 1:
        raise UserError(f"{flag} {seconds_asked:g}: shorter than one frame ({1 / mg.frame_rate:g} s)")
    if prompts is not None:
        reach = mg.rendered_seconds(args.duration)  # whole frames: 2.019 s is 2 s
    else:  # the chunk as collect cuts it (rounded to frames: 0.215 s ran 11 frames past a 0.2 s segment, unsaid)
        reach = min(max(1, round(args.chunk * mg.frame_rate)) / mg.frame_rate, _longest(files))
    if note := duration_note(mg.name, trained, reach):
        console.print(f"note: {note}", highlight=False)
    cfg = CollectConfig(
        out=out,
        layers=layers,
        duration=args.duration,
        seed=args.seed,
        batch_size=args.batch_size,
        cfg_coef=args.cfg_coef,
        chunk=args.chunk,
        description=args.description,
        dtype=args.dtype,
    )
    with no_empty_store(out):
        collector = Collector(mg, cfg)
        done = collector.done()
        if prompts is not None:  # this rank's share (every one in one process)
            sources = prompt_sources(prompts)
            share = [sources[i] for i in my_prompts(len(prompts), args.batch_size)]
            what = "prompts"
        else:
            share = [source_name(p, Path(args.audio)) for p in split_by_rank(files)[0]]
            what = "files"
        mine, todo = len(share), sum(s not in done for s in share)
        columns = (
            description_column(),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[frames]} frames"),
            TimeRemainingColumn(),
        )
        frames = 0
        try:
            with progress_bar(*columns, console=console, transient=False) as progress:
                task = progress.add_task(f"{mg.name}: {what}", total=todo, frames=0)

                def step(n_sources: int, n_frames: int) -> None:
                    nonlocal frames
                    frames += n_frames
                    progress.update(task, advance=n_sources, frames=frames)

                if prompts is not None:
                    collector.from_prompts(prompts, step)
                else:
                    collector.from_audio(args.audio, step)
        except BaseException:
            collector.abort()
            raise
        collector.close()
    for line in [*collector.notes.lines(), *mg.__dict__.get("prompt_notes", [])]:
        console.print(f"note: {line}", highlight=False)
    skipped = mine - todo
    rank, world = this_rank()
    per_layer = [collector.stored.get(i, 0) for i in layers]
    # a layer added to a store stores what the others already hold: "stored 0 frames x 2 layers" of 40 new rows
    by_layer = ", ".join(f"{n} in layer {i}" for i, n in zip(layers, per_layer, strict=True))
    amount = f"{per_layer[0]} frames x {len(layers)} layers" if len(set(per_layer)) == 1 else f"frames {by_layer}"
    console.print(
        f"stored {amount} of {mg.name} ({mg.backend}) in {out}"
        + (f" (rank {rank} of {world})" if world > 1 else "")
        + (f"; {skipped} {what} already complete" if skipped else "")
    )
    return 0


def _longest(files: list) -> float:
    """The longest of the audio files in seconds, from their headers (inf when one cannot be read so). Only regular
    files are opened (a FIFO named pipe.wav blocked the run for good), by bytes (a name that is not UTF-8 was a
    UnicodeEncodeError traceback) and with the C libraries' own lines hushed (libmpg123's Xing warning), as the
    reader (`realtime.audio_files`) does."""
    import soundfile as sf

    from realtime.audio_files import c_stderr_hushed

    longest = 0.0
    for f in files:
        try:
            if not stat.S_ISREG(os.stat(f).st_mode):
                continue  # the reader skips it, naming it
            with c_stderr_hushed():
                longest = max(longest, sf.info(os.fsencode(f)).duration)
        except Exception:  # what a header cannot say: the reader says why
            return float("inf")
    return longest


def _same_file(a: object, b: object) -> bool:
    """Whether two paths are one file (a link, symbolic or hard), not two files of the same bytes."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _linked(files: list | None, root: str | None) -> list[str]:
    """A note when some listed audio files are links to audio listed already under another name (a `data make`
    folder's concepts/<c>/with|without links to clips/), or byte-for-byte copies of it (`x copy.wav`: hunt 169):
    their rows are stored once per name, and `sae train` may hold out one as it trains on the other."""
    if not files:
        return []
    from pathlib import Path

    from sae.bank import file_sha256

    first: dict[object, Path] = {}
    again: list[tuple[Path, Path, bool]] = []  # (file, the one listed before it, a copy rather than a link)
    copies = 0
    sizes: dict[int, int] = {}
    for f in files:
        with contextlib.suppress(OSError):
            size = os.stat(f).st_size
            sizes[size] = sizes.get(size, 0) + 1
    for f in files:
        real = Path(os.path.realpath(f))  # Path.resolve raised RuntimeError on a link loop (the reader notes it)
        key: object = real
        if real not in first:
            with contextlib.suppress(OSError):  # the bytes only where another regular file has the same size
                if sizes.get(os.stat(f).st_size, 0) > 1 and os.path.isfile(f):  # (a FIFO's read blocks for good)
                    key = file_sha256(f)
                    copies += key in first
        if key in first:
            again.append((f, first[key], key != real and not _same_file(f, first[key])))
        else:
            first[key] = f
            first.setdefault(real, f)
    if not again:
        return []
    f, orig = (p.relative_to(root).as_posix() for p in again[0][:2])
    what = "links to or copies of" if copies else "links to"
    same = "hold the same bytes" if again[0][2] else "are one file"
    return [
        f"{len(again)} of the {len(files)} audio files are {what} audio listed already (e.g. {f} and {orig} {same}): "
        "their rows are stored again under each name (sae train may hold one name out as it trains on another: its "
        "held-out figures would be partly training figures); point --audio at a folder that holds each clip once "
        "(a data make folder's clips/)"
    ]
