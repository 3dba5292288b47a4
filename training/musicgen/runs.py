"""Run folders of the demo MusicGen's trainings: identity, resumable state, progress and log.

    RUN/run.json        what the run is (kind, sizes, data identity, seed): written once; a resume with
                        other sizes or data is refused, naming every field that differs
    RUN/state.pt        model + optimizer + step + CPU/wall seconds so far (written atomically)
    RUN/progress.json   step, CPU hours, wall hours, last losses (rewritten at each checkpoint)
    RUN/log.jsonl       one line of losses every few steps

`train_loop` is the loop both trainings share (resume, step, log, evaluate, checkpoint, wall budget);
`add_loop_args` their common command-line options. `sole_run` holds a run folder for one training at a time (its
`.lock`) and clears the temporary files a killed one left.

CPU time is the process's (all threads), so CPU hours are comparable between machines and thread counts.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, Protocol

import torch

from sae.atomic import atomic_torch_save, atomic_write_text, remove_folder_leftovers, sole_writer
from sae.errors import UserError, differences
from sae.io import read_torch
from sae.jsonfile import trim_log
from sae.streams import RandomStreams
from training.cli.args import add_device, positive_float, positive_int, seed_int
from training.cli.main import HeldStop

RUN_FILE = "run.json"
STATE_FILE = "state.pt"
PROGRESS_FILE = "progress.json"
LOG_FILE = "log.jsonl"
MAX_SKIPPED = 20  # non-finite losses in a row that end a training as diverged
RAVE_STATE_FILE = "train_state.pt"  # what marks a demo RAVE run folder (training.rave.demo_model)


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2) + "\n")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: missing") from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None


def read_identity(run_dir: Path) -> dict:
    """A run folder's run.json, a JSON object."""
    path = run_dir / RUN_FILE
    ident = read_json(path)
    if not isinstance(ident, dict):
        raise UserError(f"{path}: expected a JSON object (the run's identity)")
    return ident


def check_run_folder(run_dir: Path, kind: str) -> None:
    """`--run` is new or a `kind` run folder: a file, a demo RAVE run or a run of the other kind is refused before
    anything is written there."""
    if run_dir.exists() and not run_dir.is_dir():
        raise UserError(f"--run {run_dir}: exists and is a file; expected a run folder")
    if (run_dir / RAVE_STATE_FILE).exists():
        raise UserError(f"--run {run_dir}: it holds a demo RAVE run ({RAVE_STATE_FILE}), not a '{kind}' run; "
                        "use a new --run folder")  # fmt: skip
    old = read_identity(run_dir).get("kind") if (run_dir / RUN_FILE).exists() else kind
    if old != kind:
        raise UserError(f"--run {run_dir}: it holds a '{old}' run, not a '{kind}' run; use a new --run folder")


@contextlib.contextmanager
def sole_run(run_dir: Path, kind: str) -> Iterator[None]:
    """Hold `run_dir` (checked by `check_run_folder`) for this training alone: a second training started on it
    meanwhile is refused in one line (the two would overwrite each other's checkpoints); the temporary files of
    a training killed mid-write are removed."""
    check_run_folder(run_dir, kind)
    with sole_writer(run_dir, f"{kind} training", flag="--run"):
        remove_folder_leftovers(run_dir)
        yield


def training_now(run_dir: Path) -> bool:
    """Whether a training holds `run_dir` now (`sole_run`'s lock): its checkpoints are a snapshot of a run going
    on, not a run that stopped."""
    try:  # read only: packaging reads the run, which may be another user's or on a read-only mount
        fd = os.open(run_dir / ".lock", os.O_RDONLY)
    except OSError:  # no lock (never trained here since locks came), or unreadable: no training known to hold it
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # `sole_writer` holds it exclusively
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


OPTIONAL_IDENTITY = ("training",)
"""Keys of a run's identity that runs started before they were recorded lack: such a run resumes unchecked on them
(`training`: the optimiser's settings, recorded since 3 December; before, a resume that forgot `--lr 5e-4` trained
on at the default rate without a word)."""


def open_run(run_dir: Path, identity: dict, derived: tuple[str, ...] = ()) -> bool:
    """Create `run_dir` for `identity`, or check a resumed one matches it (but for the `OPTIONAL_IDENTITY` keys an
    older run lacks). Returns True when resuming.

    A run that never reached its first checkpoint (a start that failed, a Ctrl-C in its first steps) has nothing to
    resume: it is started again, its log and progress dropped (the steps it logged are trained again), and with new
    settings its `derived` files (made from the old identity) removed. A checkpoint without its run.json is
    refused: the run's settings are not known to check or to take.
    """
    check_run_folder(run_dir, identity.get("kind"))
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / RUN_FILE
    started = (run_dir / STATE_FILE).exists()
    if started and not path.exists():  # a new identity written here would train the checkpoint over from step 0
        raise UserError(f"--run {run_dir}: {RUN_FILE} is missing beside its checkpoint {STATE_FILE}; restore it, "
                        "or use a new --run folder")  # fmt: skip
    if not started:
        if path.exists() and read_identity(run_dir) != identity:
            for name in (RUN_FILE, *derived):
                (run_dir / name).unlink(missing_ok=True)
        for name in (PROGRESS_FILE, LOG_FILE):  # a killed start's lines were logged twice after the rerun's
            (run_dir / name).unlink(missing_ok=True)
    if not path.exists():
        write_json(path, identity)
        return False
    old = read_identity(run_dir)
    new = {k: v for k, v in identity.items() if k in old or k not in OPTIONAL_IDENTITY}
    diff = differences(old, new, "at the start")
    if diff:
        raise UserError(
            f"--run {run_dir}: it was started with other settings ({diff}); "
            "resume with the same data, sizes and training options, or use a new --run folder"
        )
    return started


def require(run_dir: Path, *names: str, hint: str = "", kind: str | None = None) -> dict:
    """A finished run's identity (run.json), of `kind` when given; one line naming the first missing file, or the
    kind of run the folder holds instead."""
    if run_dir.is_file():
        raise UserError(f"{run_dir}: a file, expected a run folder{hint}")
    if not run_dir.is_dir():
        raise UserError(f"{run_dir}: no such run folder{hint}")
    if not (run_dir / RUN_FILE).is_file():
        raise UserError(f"{run_dir}: {RUN_FILE} is missing{hint}")
    ident = read_identity(run_dir)  # the kind first: a run of the other kind lacks this kind's files
    if kind is not None and ident.get("kind") != kind:
        raise UserError(f"{run_dir}: not a '{kind}' run: it holds a '{ident.get('kind')}' run{hint}")
    for name in names:
        if not (run_dir / name).is_file():
            raise UserError(f"{run_dir}: {name} is missing{hint}")
    return ident


class Clock:
    """Process CPU seconds and wall seconds, carried over from earlier calls of a resumed run."""

    def __init__(self, cpu: float = 0.0, wall: float = 0.0):
        self.cpu0, self.wall0 = cpu, wall
        self.t_cpu, self.t_wall = time.process_time(), time.monotonic()  # never stepped by NTP (hunt 216)

    @property
    def cpu(self) -> float:
        return self.cpu0 + time.process_time() - self.t_cpu

    @property
    def wall(self) -> float:
        return self.wall0 + time.monotonic() - self.t_wall


class Start(NamedTuple):
    """Where a training starts: its step, its clock, and the random streams its checkpoint saved (None: a new run, or
    a checkpoint from before they were saved)."""

    step: int
    clock: Clock
    rng: dict | None = None


def save_state(run_dir: Path, state: dict, clock: Clock, extra: dict | None = None) -> None:
    """state.pt (atomically) and progress.json."""
    state = {**state, "cpu_seconds": clock.cpu, "wall_seconds": clock.wall}
    atomic_torch_save(state, run_dir / STATE_FILE)
    progress = {
        "step": state["step"],
        "target": state.get("target"),
        "cpu_hours": round(clock.cpu / 3600, 3),
        "wall_hours": round(clock.wall / 3600, 3),
        "threads": torch.get_num_threads(),
        **(extra or {}),
    }
    write_json(run_dir / PROGRESS_FILE, progress)


def load_state(run_dir: Path, device: str) -> dict:
    return read_torch(run_dir / STATE_FILE, device)


def log(run_dir: Path, record: dict) -> None:
    with (run_dir / LOG_FILE).open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


class LoopConfig(Protocol):
    """What `train_loop` needs of a training config (both trainings' configs have these fields)."""

    run: Path
    steps: int
    minutes: float | None
    lr: float
    checkpoint_every: int
    eval_every: int
    log_every: int
    device: str


def resume(cfg: LoopConfig, model, opt, resuming: bool, say: Callable[[str], None], schedule: bool = False) -> Start:
    """Where to start: the run's last checkpoint loaded into `model` and `opt` when resuming, with its streams. With
    `schedule` (a learning rate that follows `cfg.steps`), an unfinished run resumed with other `--steps` is refused:
    the steps left would train at other rates than the uninterrupted run's."""
    if not resuming:
        return Start(0, Clock())
    state = load_state(cfg.run, cfg.device)
    path = cfg.run / STATE_FILE
    keys = ("model", "opt", "step", "cpu_seconds", "wall_seconds")
    if not isinstance(state, dict) or any(k not in state for k in keys):
        raise UserError(f"{path}: not a checkpoint of this training (expected {', '.join(keys)}); "
                        "restore it or start a new --run")  # fmt: skip
    try:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
    except (RuntimeError, ValueError, KeyError) as exc:
        why = " ".join(str(exc).split()) or type(exc).__name__
        raise UserError(f"{path}: its weights do not fit this run's model ({why[:200]})") from None
    target = state.get("target")
    if schedule and target not in (None, cfg.steps):
        if state["step"] < target:
            raise UserError(f"--steps {cfg.steps}: {cfg.run} is at step {state['step']} of the {target} its learning-"
                            f"rate schedule spans; resume it with --steps {target} (or without --steps), and extend "
                            "it once it has got there")  # fmt: skip
        say(f"note: the learning-rate schedule of {cfg.run} now spans {cfg.steps} steps (it spanned {target})")
    trim_log(cfg.run / LOG_FILE, state["step"])
    say(f"resuming {cfg.run} at step {state['step']}")
    return Start(state["step"], Clock(state["cpu_seconds"], state["wall_seconds"]), state.get("rng"))


def train_loop(
    cfg: LoopConfig,
    model,
    opt,
    start: Start | tuple[int, Clock],
    train_step: Callable[[int], dict[str, Any] | None],
    evaluate: Callable[[], dict[str, Any]],
    summary: Callable[[int, dict], str],
    extra: dict[str, Any],
    say: Callable[[str], None],
    streams: RandomStreams | None = None,
) -> int:
    """Steps from `start` until `cfg.steps` (or `cfg.minutes` of wall time in this call); returns the last step.

    `train_step(step)` does one optimiser step and returns its loss terms (tensors or numbers), or None when the
    loss was not finite (logged, step not counted). Every `log_every` steps the terms go to the log; every
    `eval_every` steps (and at the last) `evaluate()` adds held-out figures, logged and said (`summary`); every
    `checkpoint_every` steps and at the end, model + optimizer + step (and `steps`, the target, and the state of
    `streams`) are saved with `extra` in progress.json.
    """
    step, clock = start[0], start[1]
    t_end = None if cfg.minutes is None else time.monotonic() + 60 * cfg.minutes
    last: dict[str, Any] = {}

    saved = start[0]

    def checkpoint() -> None:
        nonlocal saved
        state = {"model": model.state_dict(), "opt": opt.state_dict(), "step": step, "target": cfg.steps}
        if streams is not None:
            state["rng"] = streams.state()
        save_state(cfg.run, state, clock, {"last": last, **extra})
        saved = step

    skipped = 0
    if step >= cfg.steps:
        say(f"note: {cfg.run} is at step {step}, which --steps {cfg.steps} does not pass: nothing to train")
    with HeldStop() as held:  # a Ctrl-C or SIGTERM ends the step in progress, checkpoints there, then stops
        while step < cfg.steps and (t_end is None or time.monotonic() < t_end):
            if held.due():
                checkpoint()
                held.stop()
            terms = train_step(step)
            if terms is None:
                log(cfg.run, {"step": step + 1, "skipped": "non-finite loss"})  # the step tried: a resume from
                # a checkpoint at `step` drops it, and draws the same batch again
                skipped += 1
                if skipped == MAX_SKIPPED:
                    kept = f"the checkpoint of step {saved} is kept" if saved else "no checkpoint was written"
                    raise UserError(f"the loss was not finite for {MAX_SKIPPED} steps in a row at step {step} "
                                    f"(--lr {cfg.lr:g}): the training diverged; lower --lr ({kept})")  # fmt: skip
                continue
            skipped = 0
            step += 1
            if step % cfg.log_every == 0:
                last = {k: round(float(v), 5) if not isinstance(v, int) else v for k, v in terms.items()}
                log(cfg.run, {"step": step, "cpu_s": round(clock.cpu, 1), **last})
            if step % cfg.eval_every == 0 or step == cfg.steps:
                last.update(evaluate())
                log(cfg.run, {"step": step, "cpu_s": round(clock.cpu, 1), "eval": last})
                say(summary(step, last))
            if step % cfg.checkpoint_every == 0:
                checkpoint()
    if step > start[0]:  # a call that trained nothing keeps the run's progress record (its last losses)
        checkpoint()
    say(f"{cfg.run.name} at step {step} ({clock.cpu / 3600:.2f} CPU hours in all)")
    return step


def unfinished(what: str, step: int, target: int | None) -> str | None:
    """A note when a checkpoint stopped short of the --steps its training was asked for (interrupted, or out of
    --minutes); None when it got there, or when its checkpoint predates the target being recorded."""
    if target is None or step >= target:
        return None
    return (f"note: {what} stopped at step {step} of its --steps {target} (interrupted or out of --minutes): "
            "packaged as it is; resume it to finish")  # fmt: skip


def add_loop_args(parser: argparse.ArgumentParser, batch: int, lr: float) -> None:
    """The options both trainings share."""
    parser.add_argument("--data", action="append", required=True, help="a `musicsae data make` folder (repeatable)")
    parser.add_argument("--run", type=Path, required=True, help="run folder (resumed when it exists)")
    parser.add_argument("--steps", type=positive_int, default=10000, help="total steps to reach")
    parser.add_argument("--minutes", type=positive_float, default=None, help="wall-clock budget of this call")
    parser.add_argument("--batch", type=positive_int, default=batch)
    parser.add_argument("--lr", type=positive_float, default=lr)
    parser.add_argument("--seed", type=seed_int, default=0)
    parser.add_argument("--checkpoint-every", type=positive_int, default=250)
    parser.add_argument("--eval-every", type=positive_int, default=250)
    add_device(parser, "training")


def given_options(parser: argparse.ArgumentParser, argv: list[str] | None) -> set[str]:
    """The destinations `argv` sets itself (the others took their defaults)."""
    defaults = [(action, action.default) for action in parser._actions]
    try:
        for action, _ in defaults:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_args(argv)))
    finally:
        for action, default in defaults:
            action.default = default


def recorded_target(run_dir: Path) -> int | None:
    """The --steps a run's last checkpoint was training to: progress.json's record, else state.pt's (runs before
    7 December, or a progress.json a kill left behind or damaged); None where neither records one (or state.pt is
    unreadable: `resume` refuses it)."""
    try:
        target = read_json(run_dir / PROGRESS_FILE).get("target")
    except (UserError, AttributeError):
        target = None
    if type(target) is not int:
        try:
            state = load_state(run_dir, "cpu")
        except UserError:  # a damaged state.pt is the resume's to name, in its own words
            state = None
        target = state.get("target") if isinstance(state, dict) else None
    return target if type(target) is int and target > 0 else None


def parse_resumable(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    kind: str,
    recorded: Callable[[dict], dict[str, Any]],
    say: Callable[[str], None] = print,
) -> argparse.Namespace:
    """A recipe's arguments where `--run` holds a `kind` run to resume: an option not given takes the run's
    recorded value (`recorded(identity)` maps option strings to values; `--steps` the target its last checkpoint
    recorded), so `--data --run` resume it; an option given is still checked against the run by `open_run`. Values
    are parsed as if typed, so a damaged record is refused by the option's own check."""
    args = parser.parse_args(argv)
    if not (args.run / STATE_FILE).is_file() or not (args.run / RUN_FILE).is_file():
        return args
    check_run_folder(args.run, kind)
    given = given_options(parser, argv)
    actions = {opt: action for action in parser._actions for opt in action.option_strings}
    dests = {opt: action.dest for opt, action in actions.items()}
    extra: list[str] = []
    target = recorded_target(args.run)
    for option, value in {**recorded(read_identity(args.run)), "--steps": target}.items():
        if value is not None and dests[option] not in given:
            text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            try:
                parser._get_value(actions[option], text)
            except (argparse.ArgumentError, TypeError, ValueError) as exc:
                why = getattr(exc, "message", exc)
                raise UserError(f"{args.run / RUN_FILE}: the recorded {option} {text!r} is not valid ({why}); "
                                f"give {option} or start a new --run") from None  # fmt: skip
            extra += [option, text]
    resumed = parser.parse_args([*(sys.argv[1:] if argv is None else argv), *extra])
    taken = [f"{o} {t}" for o, t in zip(extra[::2], extra[1::2], strict=True)
             if getattr(resumed, dests[o]) != getattr(args, dests[o])]  # fmt: skip
    if taken:
        files = f"{RUN_FILE}, {PROGRESS_FILE}" if any(t.startswith("--steps ") for t in taken) else RUN_FILE
        say(f"note: resuming {args.run} with its recorded {' '.join(taken)} ({files})")
    return resumed


def recorded_sections(ident: dict, *keys: str) -> list[dict]:
    """The identity's sub-records `keys` (an empty one for a missing or damaged record)."""
    return [ident.get(k) if isinstance(ident.get(k), dict) else {} for k in keys]


def main_resumable(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    kind: str,
    recorded: Callable[[dict], dict[str, Any]],
    train: Callable[[argparse.Namespace], object],
) -> int:
    """A recipe's `main`: `--help` and usage errors first, then `train` on the arguments `parse_resumable` completes,
    `guarded`."""
    from training.cli.main import resumable

    kept = resumable(parser.parse_args(argv).run / STATE_FILE)
    return guarded(parser.prog, lambda: train(parse_resumable(parser, argv, kind, recorded)), kept)


def loop_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The config fields `add_loop_args` fills."""
    keys = ("data", "run", "steps", "minutes", "batch", "lr", "seed", "checkpoint_every", "eval_every", "device")
    return {k: getattr(args, k) for k in keys}


def guarded(prog: str, fn: Callable[[], object], stopped: str | Callable[[], str]) -> int:
    """Run a recipe step as `musicsae` runs a command (`training.cli.main.guarded`): a `UserError` is one line on
    stderr and exit code 2; Ctrl-C and SIGTERM one line, exit 130 / 143, saying `stopped` (what is kept: a training
    recipe's `resumable`, "" for a step that keeps nothing)."""
    from training.cli.main import guarded as run_guarded

    def step() -> int:
        fn()
        return 0

    return run_guarded(prog, step, stopped)
