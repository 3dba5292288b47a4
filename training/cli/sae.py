"""`musicsae sae train|eval|export`: train SAEs on an activation store, measure them, export TorchScript.

musicsae sae train --activations runs/acts --out runs/sae --layers all --steps 3000   (k, d_sae scale with d_in)
torchrun --nproc_per_node=2 -m training.cli sae train ...      (DDP: each rank reads its own blocks)
musicsae sae eval --sae runs/sae/latent --activations runs/acts
musicsae sae export --sae runs/sae/latent --out runs/sae/latent/sae.ts
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from training.cli.args import (
    add_device,
    add_threads,
    eval_rows,
    fraction,
    nonneg_int,
    positive_float,
    positive_int,
    seed_int,
)
from training.cli.launch import add_nproc
from training.cli.quiet import description_column, output_console, print_table, progress_bar
from training.cli.tables import hook_legend, short_hook

if TYPE_CHECKING:
    from rich.console import Console

    from sae.train import DistInfo, Stopped
    from training.cli.main import HeldStop


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train one TopK/BatchTopK SAE per hook of an activation store",
        description="Train one SAE per hook; writes OUT/<hook>/ (SAELens layout, "
        "metrics.json, plots, checkpoint.pt). Runs under torchrun as DDP.",
    )
    p.add_argument("--activations", required=True, help="activation store directory")
    p.add_argument("--out", required=True, help="output directory (one subdirectory per hook)")
    p.add_argument(
        "--layers",
        default="all",
        help="'all' or comma-separated hook names or layer indices (-1: the last of a store's numbered layers, as "
        "collect musicgen writes them; default: all)",
    )
    p.add_argument("--k", type=positive_int, default=None, help="active latents per row (default: d_in / 4, 1 .. 32)")
    p.add_argument(
        "--expansion", type=positive_int, default=None, help="d_sae / d_in (default: d_sae = 8 x d_in, at least 64)"
    )
    p.add_argument("--arch", choices=["topk", "batchtopk"], default="topk")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--steps", type=positive_int, help="optimiser steps (default 2000)")
    length.add_argument("--tokens", type=positive_int, help="training rows in total (steps = tokens / batch size)")
    p.add_argument("--lr", type=positive_float, help="Adam learning rate (default 2e-4 / sqrt(d_sae / 16384))")
    p.add_argument("--batch-size", type=positive_int, default=4096, help="rows per step over all ranks")
    p.add_argument("--seed", type=seed_int, default=0)
    p.add_argument(
        "--eval-fraction", type=fraction, default=0.05, help="share of the sources held out, whole (default 0.05)"
    )
    add_device(p, "training (under torchrun, cuda means each rank's own GPU)")
    add_nproc(p, "each training its share of every batch")
    p.add_argument("--checkpoint-every", type=nonneg_int, default=500, help="steps between checkpoints")
    p.add_argument("--resume", action="store_true", help="continue from OUT/<hook>/checkpoint.pt")
    p.add_argument(
        "--normalize",
        choices=["auto", "scale", "center_scale", "none"],
        default="auto",
        help="input normalisation, folded into the saved weights (default auto)",
    )
    p.add_argument("--dead-tokens", type=positive_int, help="rows without firing before AuxK revives a latent")
    p.add_argument(
        "--decoder-init",
        choices=["random", "data"],
        default="random",
        help="decoder rows start as random directions (default) or at sample rows (fewer dead features on narrow "
        "inputs such as RAVE latents)",
    )
    p.add_argument("--shuffle-buffer", type=nonneg_int, default=1 << 18, help="rows shuffled together")
    add_threads(p, None, "torch CPU threads (default: torch's own, one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)

    e = subparsers.add_parser(
        "eval",
        help="metrics of a trained SAE on a store's held-out activations",
        description="Score a trained SAE on a store's activations (by default the sources held out from its "
        "training): explained variance, FVU, L0 and dead features, printed as JSON (or written with --out).",
    )
    e.add_argument("--sae", required=True, help="SAE directory (cfg.json + sae_weights.safetensors)")
    e.add_argument("--activations", required=True, help="activation store directory")
    e.add_argument(
        "--hook", help="hook to evaluate on (default: the SAE's hook_name; only for an SAE whose cfg.json names none)"
    )
    e.add_argument(
        "--split",
        choices=["eval", "train", "all"],
        default="eval",
        help="rows to score: the held-out ones (default), the training ones or all",
    )
    e.add_argument("--eval-fraction", type=fraction, help="share of the sources held out (default: training's)")
    e.add_argument(
        "--max-rows", type=eval_rows, default=1_000_000, help="rows scored at most, 100 or more (default 1000000)"
    )
    e.add_argument("--out", help="write the metrics JSON here")
    add_device(e, "the SAE")
    e.set_defaults(func=run_eval)

    x = subparsers.add_parser(
        "export",
        help="export an SAE as TorchScript (encode/decode) for torch.jit.load outside musicsae (live, render and "
        "export nn take the SAE folder itself)",
        description="Write an SAE as one TorchScript file with `encode` and `decode` methods, for torch.jit.load "
        "outside musicsae. live, render and export nn take the SAE folder itself.",
    )
    x.add_argument("--sae", required=True, help="SAE directory")
    x.add_argument("--out", required=True, help="output .ts file")
    x.set_defaults(func=run_export)


def _hooks(store, layers: str) -> list[str]:
    from sae.errors import UserError

    if layers == "all":
        return store.hooks

    from realtime.musicgen.base import layer_index

    def index(s: str) -> bool:
        return (i := layer_index(s)) is not None and i >= 0

    numbered = [x for x in store.hooks if index(x.rpartition(".")[2])]
    stacks = {x.rpartition(".")[0] for x in numbered}
    in_order = sorted(numbered, key=lambda x: int(x.rpartition(".")[2]))

    def named(h: str) -> str:  # a bare layer index (as collect musicgen takes) names the one hook ending in .<i>
        if h in store.hooks:
            return h
        i = layer_index(h)  # as collect musicgen reads it
        if i is not None and i < 0 and len(stacks) == 1 and len(numbered) < len(store.hooks):
            others = ", ".join(x for x in store.hooks if x not in numbered)
            raise UserError(  # a RAVE store's latent sits past encoder.net.<i>: -1 is not its deepest hook
                f"--layers {h}: counts from the end of one numbered stack of hooks, but this store also has "
                f"{others}; expected a hook name (hooks: {', '.join(store.hooks)})"
            )
        if i is not None and i < 0 and len(stacks) == 1 and -i <= len(in_order):
            return in_order[i]  # -1: the store's last layer
        ends = [x for x in store.hooks if i is not None and i >= 0 and x.endswith(f".{h}")]
        return ends[0] if len(ends) == 1 else h

    wanted = list(dict.fromkeys(named(h.strip()) for h in layers.split(",") if h.strip()))  # each hook once
    missing = [h for h in wanted if h not in store.hooks]
    if not wanted or missing:
        raise UserError(
            f"--layers {layers!r}: no hook {', '.join(missing) or '(none given)'} in the store "
            f"(hooks: {', '.join(store.hooks)})"
        )
    return wanted


def run_train(args: argparse.Namespace) -> int:

    import torch
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    from sae.io import WEIGHTS_FILE
    from sae.model import sparsity_warning
    from sae.paths import check_not_inside, check_output_dir
    from sae.store import open_store
    from sae.train import (
        CHECKPOINT,
        METRICS,
        Stopped,
        TrainConfig,
        check_dims,
        check_hook,
        check_start,
        dims_for,
        init_distributed,
        leave_distributed,
        no_interval_note,
        split_note,
        train_hook,
        unmeasured,
    )
    from training.cli.main import HeldStop

    if args.threads:
        torch.set_num_threads(args.threads)
    check_output_dir(args.out)
    check_not_inside(args.out, [(args.activations, "--activations")], "its SAEs would land among the shards")
    store = open_store(args.activations, "--activations")
    hooks = _hooks(store, args.layers)
    for hook in hooks:  # before any training, not after the hooks before an empty one
        store.require_rows(hook)
    cfg = TrainConfig(
        k=args.k,
        expansion=args.expansion,
        arch=args.arch,
        steps=args.steps if args.steps or args.tokens else 2000,
        tokens=args.tokens,
        lr=args.lr,
        batch_size=args.batch_size,
        seed=args.seed,
        eval_fraction=args.eval_fraction,
        shuffle_buffer=args.shuffle_buffer,
        checkpoint_every=args.checkpoint_every,
        device=args.device,
        normalize=args.normalize,
        dead_tokens=args.dead_tokens,
        decoder_init=args.decoder_init,
    )
    cfg.validate()
    for hook in hooks:  # every hook's sizes and folder before the first trains
        check_dims(cfg, hook, store.dim(hook))
        check_output_dir(Path(args.out) / hook, f"{hook}'s folder")
    # under --resume, a hook trained to the end whose checkpoint was removed (they are 3x the weights) is left as it
    # is: it was refused, and the advice to use another --out would train it again (hunt 203)
    finished = [
        h
        for h in hooks
        if args.resume
        and not (Path(args.out) / h / CHECKPOINT).exists()
        and all((Path(args.out) / h / f).exists() for f in (WEIGHTS_FILE, METRICS))
    ]
    # no checkpoint and no SAE (one there is refused by train_hook, naming it)
    fresh = [
        h
        for h in hooks
        if args.resume and not any((Path(args.out) / h / f).exists() for f in (CHECKPOINT, WEIGHTS_FILE))
    ]
    if fresh and len(fresh) == len(hooks):  # a mistyped --out would start over in silence
        from sae.errors import UserError

        raise UserError(f"--resume: {args.out} holds no run to resume (no {CHECKPOINT} of "
                        f"{', '.join(hooks)}); leave --resume out to start one")  # fmt: skip
    info = init_distributed(args.device)
    console = output_console(stderr=True)
    for hook in finished if info.main else ():
        console.print(f"note: {hook}: trained to the end in {args.out} ({METRICS}); left as it is", highlight=False)
    hooks = [h for h in hooks if h not in finished]
    if not hooks:  # every hook was trained to the end: nothing to resume
        if info.enabled:
            leave_distributed()
        return 0
    for hook in hooks:  # a run or an SAE of a later hook that this one may not write: refused before any training
        check_hook(store, hook, cfg, info.world_size)
        check_start(Path(args.out) / hook, args.resume, (store, hook, cfg, info.world_size))
    for hook in fresh if info.main else ():
        note = f"note: {hook}: no {CHECKPOINT} to resume in {args.out}; it trains from the start"
        console.print(note, highlight=False)
    results = {}
    # a Ctrl-C or SIGTERM ends the step in progress and checkpoints it; one that comes while a hook's SAE is
    # evaluated and saved stops the next hook at its first step
    with HeldStop() as held:
        for hook in hooks:
            out = Path(args.out) / hook
            show = info.main and not args.quiet
            warning = sparsity_warning(dims_for(cfg, store.dim(hook))[1], store.dim(hook))
            if warning and info.main:
                console.print(f"warning: {hook}: {warning}", style="yellow", highlight=False)
            if (note := split_note(store, hook, cfg.eval_fraction)) and info.main:
                console.print(f"note: {note}", highlight=False)
            with progress_bar(
                description_column(),
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn(BAR_FIELDS),
                TimeRemainingColumn(),
                console=console,
                hide=not show,
                transient=False,
            ) as progress:
                fields = {"fvu": float("nan"), "l0": 0.0, "dead": 0.0}
                task = progress.add_task(short_hook(hook), total=cfg.total_steps(), **fields)

                def on_step(step: int, total: int, stats: dict, task=task, progress=progress) -> None:
                    progress.update(task, completed=step, fvu=stats["fvu"], l0=stats["l0"], dead=stats["dead"])

                try:
                    metrics = train_hook(
                        store, hook, out, cfg, resume=args.resume, on_step=on_step if show else None, info=info,
                        stop=held.due,
                    )  # fmt: skip
                except Stopped as stopped:
                    _stop(stopped, held, info, console)
            if info.main:
                results[hook] = metrics
                if metrics.get("skipped_nonfinite_rows"):
                    skipped = metrics["skipped_nonfinite_rows"]
                    console.print(f"{hook}: skipped {skipped} rows with NaN/inf", style="yellow", highlight=False)
                if note := unmeasured(metrics, metrics["split"]):
                    console.print(f"warning: {hook}: {note}", style="yellow", highlight=False)
                if note := no_interval_note(metrics, hook):
                    console.print(f"note: {note}", highlight=False)
        if held.due() and not info.enabled:  # it came while the last SAE was evaluated and saved: said, not dropped
            print_table(output_console(), train_table(results, args.out))
            console.print("every SAE is trained and saved; stopping as asked", highlight=False)
            held.stop()
    if info.main:
        print_table(output_console(), train_table(results, args.out))
    if info.enabled:
        leave_distributed()  # a torchrun worker exits here, skipping interpreter shutdown (see its docstring)
    return 0


BAR_FIELDS = "train batch: FVU {task.fields[fvu]:.3f} L0 {task.fields[l0]:.1f} dead {task.fields[dead]:.0%}"


def _stop(stopped: Stopped, held: HeldStop, info: DistInfo, console: Console) -> NoReturn:
    """Say where a training stopped by a signal is kept, then stop as it asked (exit 130 / 143); a torchrun worker
    leaves without interpreter shutdown (`sae.train.leave_distributed`)."""
    import signal

    from sae.train import leave_distributed
    from training.cli.main import STOPPED

    if info.main:
        console.print(f"{stopped.checkpoint.parent.name}: step {stopped.step} is checkpointed in "
                      f"{stopped.checkpoint}; the same command with --resume goes on", highlight=False)  # fmt: skip
    if info.enabled:  # one line from rank 0, which may have stopped because another rank got the signal
        word, code = STOPPED.get(held.signum, STOPPED[signal.SIGINT])
        if info.main:
            print(f"musicsae: {word if held.signum is not None else 'stopped (another rank got the signal)'}",
                  file=sys.stderr)  # fmt: skip
        leave_distributed(code)
    held.stop()


def train_table(results: dict[str, dict], out: str):
    """The end-of-training table: held-out metrics, labelled apart from the training-batch ones of the bar."""
    from rich.table import Table

    rows = {(m.get("rows"), m.get("held_out_sources")) for m in results.values()}
    split = {m.get("split", "eval") for m in results.values()}
    held = "see metrics.json"
    if len(rows) == 1 and len(split) == 1:
        n, sources = rows.pop()
        whole = f"{sources} whole source{'s' if sources != 1 else ''}, " if sources else ""
        held = f"{next(iter(split))} split, {whole}{n} rows"
    where = "the training rows" if split == {"train"} else "the held-out rows"  # --eval-fraction 0: none held out
    held += "; none held out" if split == {"train"} else ""
    dead_tokens = {m.get("dead_tokens") for m in results.values()}
    caption = (
        "FVU"
        + (
            f" (95 % interval: {'the' if split == {'train'} else 'held-out'} sources resampled whole)"
            if any(m.get("fvu_interval") for m in results.values())
            else ""
        )
        + f", L0 and never fired: on {where} ({held}). "
        f"Dead in training: no firing in the last "
        f"{dead_tokens.pop() if len(dead_tokens) == 1 else 'dead_tokens'} training rows (AuxK revives those). "
        "Passes: the steps' batches over the training rows (well above 1: the SAE may fit its rows, not the data)."
    )
    legend = hook_legend(results)
    table = Table(title=f"SAEs in {out}", caption=caption + (f" {legend}." if legend else ""), caption_justify="left")
    for col in ("hook\nk / d_sae", "FVU", "L0", "never\nfired", "dead in\ntraining", "passes", "rows/s"):
        # on a narrow terminal a figure folds onto a second line: cut, "2.…" and "[0.601, 0.6…" (hunt 217)
        table.add_column(col, justify="left" if col.startswith("hook") else "right", overflow="fold")
    for hook, m in results.items():
        table.add_row(
            f"{short_hook(hook)}\n{m['k']} / {m['d_sae']}",
            f"{m['fvu']:.4f}" + (f"\n[{iv[0]:.3f}, {iv[1]:.3f}]" if (iv := m.get("fvu_interval")) else ""),
            f"{m['l0']:.1f}",
            f"{m['dead_fraction']:.1%}",
            f"{m['train_dead_fraction']:.1%}",
            f"{m['passes']:.1f}",
            f"{m['tokens_per_s']:.0f}",
        )
    return table


def _other_data_note(sae_dir: Path, store, hook: str) -> str | None:
    """A note when the store is not the one the SAE was trained on, as it was then (its metrics.json `data`): the
    held-out sources depend on every source a store holds, so rows it trained on may now be held out."""
    from sae.jsonfile import read_json_object
    from sae.train import data_identity

    path = sae_dir / "metrics.json"
    if not path.is_file():
        return None
    then = read_json_object(path, "metrics").get("data")
    if not isinstance(then, dict) or then.get("hook") != hook or "digest" not in then:
        return None
    now = data_identity(store, hook)
    if now["digest"] == then["digest"]:
        return None
    return (f"note: {store.root} is not the store SAE {sae_dir} was trained on, as it was then ({then.get('rows')} "
            f"rows of {hook!r} then, {now['rows']} now): the held-out sources may not be the ones its training "
            "held out, so some of these rows may have been trained on")  # fmt: skip


def _rows_shared(a: list[tuple[int, int, int]], b: list[tuple[int, int, int]]) -> bool:
    """Whether units (shard, start, stop) of `a` and of `b` hold a row in common."""
    spans: dict[int, list[tuple[int, int]]] = {}
    for shard, start, stop in b:
        spans.setdefault(shard, []).append((start, stop))
    return any(start < hi and lo < stop for shard, start, stop in a for lo, hi in spans.get(shard, []))


def run_eval(args: argparse.Namespace) -> int:
    from sae.describe import check_same_model
    from sae.errors import UserError
    from sae.io import load_sae, read_sae_cfg
    from sae.jsonfile import is_number, strict_json
    from sae.metrics import evaluate_split
    from sae.paths import check_not_inside, check_output_file
    from sae.store import open_store
    from sae.train import no_interval_note, split_note, unmeasured

    if args.split == "all" and args.eval_fraction is not None:  # it was taken and changed nothing (hunt 141)
        raise UserError("--eval-fraction: picks the held-out rows, and --split all scores every row; drop one")
    if args.out:
        check_output_file(args.out, (".json",))
        check_not_inside(
            args.out, [(args.sae, "--sae"), (args.activations, "--activations")], "write the figures elsewhere"
        )
    store = open_store(args.activations, "--activations")
    sae = load_sae(args.sae, device=args.device)
    check_same_model(store, sae, args.sae)
    if args.hook and sae.cfg.hook_name and args.hook != sae.cfg.hook_name:  # figures of activations it never saw
        raise UserError(  # (hunt 193; `concept find --hook` refuses the same)
            f"--hook {args.hook}: SAE {args.sae} was trained on hook {sae.cfg.hook_name!r}; leave --hook out"
        )
    hook = args.hook or sae.cfg.hook_name
    if not hook and len(store.hooks) == 1:  # an SAE that names no hook, on a store of one (as the dashboard reads it)
        hook = store.hooks[0]
    if not args.hook and hook not in store.hooks:
        named = f"hook_name {hook!r}, not in the store" if hook else "names no hook (cfg.json hook_name)"
        raise UserError(f"SAE {args.sae}: {named}; pass --hook (hooks: {', '.join(store.hooks)})")
    if store.dim(hook) != sae.cfg.d_in:
        raise UserError(f"hook {hook!r} holds dim {store.dim(hook)}, the SAE {args.sae} expects d_in={sae.cfg.d_in}")
    ours = read_sae_cfg(args.sae).get("musicsae") or {}
    if args.split == "eval" and ours.get("train_config") and "held_out_split" not in ours:
        print(
            f"note: SAE {args.sae} was trained before the held-out rows became whole sources: rows of some held-out "
            "clips were among its training rows, so these figures may flatter (train it again to measure it cleanly)",
            file=sys.stderr,
        )
    if args.split == "eval" and (note := _other_data_note(Path(args.sae), store, hook)):
        print(note, file=sys.stderr)
    frac = args.eval_fraction
    trained = (ours.get("train_config") or {}).get("eval_fraction")
    if frac is None:  # the split training held out (SAEs from elsewhere: 0.05)
        frac = 0.0 if trained == 0 else trained if isinstance(trained, float) and 0 < trained < 1 else 0.05
        if trained == 0 and args.split == "eval":  # 0.05 of its rows would be training rows called held out
            raise UserError(
                f"SAE {args.sae} was trained on every row (eval fraction 0): no rows are held out; pass --split train "
                "(figures on its training rows)"
            )
    if args.split == "eval" and frac == 0:
        raise UserError("--eval-fraction 0: holds out no rows; expected a fraction above 0 (or --split train)")
    # the rows it holds out against the rows training used (a larger fraction holds out more sources or more
    # blocks; a split by blocks takes rows of every source; trained on every row: all of them)
    if (
        args.split == "eval"
        and args.eval_fraction is not None
        and is_number(trained)
        and 0 <= trained < 1
        and _rows_shared(store.split_units(hook, "eval", frac), store.split_units(hook, "train", float(trained)))
    ):
        print(
            f"note: --eval-fraction {frac:g} holds out rows SAE {args.sae} was trained on (its training held out "
            f"{trained:g}): these figures are partly on training rows; leave --eval-fraction out to measure on its "
            "held-out rows",
            file=sys.stderr,
        )
    seed = (ours.get("train_config") or {}).get("seed")  # the interval's resamples, as training drew them
    metrics = evaluate_split(
        sae, store, hook, args.split, frac, args.max_rows, seed=seed if isinstance(seed, int) else 0
    )
    if not metrics["rows"]:
        raise UserError(f"--activations {args.activations}: no {args.split} rows of {hook} to measure; nothing written")
    metrics["skipped_nonfinite_rows"] = metrics.pop("nonfinite_rows")
    notes = []  # what `sae train` says of its figures, said here too (hunt 105: eval printed the bare JSON)
    if args.split == "eval" and (note := split_note(store, hook, frac)):
        notes.append(note)
    if metrics["skipped_nonfinite_rows"]:
        notes.append(f"{hook}: skipped {metrics['skipped_nonfinite_rows']} {args.split} rows with NaN/inf")
    if no_variance := unmeasured(metrics, args.split):
        notes.append(f"{hook}: {no_variance}")
    cut = args.max_rows if metrics["rows"] >= args.max_rows else None  # scoring stopped inside the first source
    if note := no_interval_note(metrics, hook, cut):
        notes.append(note)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    metrics["notes"] = notes
    # what the figures were measured on, so a written file says so without the command line
    metrics |= {"sae": str(args.sae), "activations": str(args.activations), "hook": hook, "split": args.split}
    metrics |= {"eval_fraction": frac, "max_rows": args.max_rows}
    text = strict_json(metrics)  # NaN (nothing finite to measure) is null: JSON has no NaN
    if args.out:
        from sae.atomic import atomic_write_text

        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(args.out, text)
    keys = ("hook", "split", "rows", "sources", "fvu", "fvu_interval", "explained_variance", "l0", "dead_fraction")
    short = {k: metrics[k] for k in keys if k in metrics}
    print(strict_json(short, indent=None), file=sys.stdout)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from realtime.rave import refuse_replacing_a_rave
    from sae.export import export_torchscript
    from sae.io import load_sae
    from sae.paths import check_output_file

    refuse_replacing_a_rave(check_output_file(args.out, (".ts",)))
    sae = load_sae(args.sae)
    path = export_torchscript(sae, args.out)
    d_sae, d_in = sae.W_dec.shape
    print(f"wrote {path}: TorchScript encode [N, {d_in}] -> [N, {d_sae}] and decode back (torch.jit.load)")
    return 0
