"""Train one SAE per hook from an activation store: single process or DDP under torchrun.

Per hook the output directory holds `checkpoint.pt` (model, optimiser, schedule, data-stream position of
every rank: a run killed at any point resumes from its last checkpoint and ends bit-identical to an
uninterrupted run with the same seed and thread count), then the SAE (`cfg.json`,
`sae_weights.safetensors`, normalisation folded in), `metrics.json` and PNG plots.

Recipe (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"): TopK or BatchTopK, unit-norm decoder
rows with the parallel gradient component removed, encoder initialised as the decoder transpose, b_dec at
the geometric median, inputs normalised to E‖x‖² = d_in (and centred for offset-heavy inputs), AuxK loss on
latents dead for `dead_tokens` rows, Adam, linear LR decay over the last 20 % of steps.

Under torchrun each rank reads its own blocks of the store (`rank::world_size`), gradients are averaged by
DistributedDataParallel (gloo on CPU, nccl on GPUs), dead-latent counters and the BatchTopK threshold are
reduced across ranks so every rank holds the same model.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch import Tensor, nn

from sae.atomic import (
    atomic_torch_save,
    atomic_write_text,
    flush_standard_streams,
    remove_folder_leftovers,
    sole_writer,
)
from sae.controls import MAX_THREADS, plain_int
from sae.errors import UserError, differences
from sae.io import TRAINED_AUDIO, WEIGHTS_FILE, read_torch, save_sae
from sae.jsonfile import strict_json
from sae.metrics import batch_fvu, evaluate_split
from sae.model import (
    FAR_ROW,
    SAEConfig,
    SparseAutoencoder,
    default_d_sae,
    default_k,
    sparsity_warning,
    typical_norm,
)
from sae.ranks import rank_device
from sae.store import ActivationStore

CHECKPOINT = "checkpoint.pt"
CHECKPOINT_KEYS = ("step", "model", "optimizer", "scheduler", "streams", "history", "elapsed", "train_config",
                   "world_size")  # fmt: skip
METRICS = "metrics.json"
CALIBRATION_ROWS = 4096  # training rows the BatchTopK threshold is set on at the end (`calibrate_threshold`)
HELD_OUT_SPLIT = "whole sources"  # the held-out rule a checkpoint was started under (ActivationStore.split_units)


TRAIN_THREADS_ENV = "MUSICSAE_TRAIN_THREADS"


class Stopped(Exception):
    """A training asked to stop (`train_hook`'s `stop`) ended its step and checkpointed there."""

    def __init__(self, step: int, checkpoint: Path) -> None:
        super().__init__(f"stopped at step {step}; {checkpoint} holds it")
        self.step, self.checkpoint = step, checkpoint


def set_train_threads(given: int | None = None) -> int:
    """Set torch's threads for a training job: `given`, else $MUSICSAE_TRAIN_THREADS, else 1 (the machine is
    shared); either must be a positive integer. Returns the count."""
    where = f"--threads {given}"
    if given is None:
        env = os.environ.get(TRAIN_THREADS_ENV, "1")
        where = f"${TRAIN_THREADS_ENV} {env!r}"
        try:  # "²".isdigit() is true and int("²") a traceback; "٣" read as 3 (hunt 155)
            given = plain_int(env)
        except ValueError:
            given = 0
    if not 0 < given <= MAX_THREADS:
        raise UserError(f"{where}: expected a positive integer, at most {MAX_THREADS}")
    torch.set_num_threads(given)
    return given


@dataclass
class TrainConfig:
    """Args:
    k: active latents per row (None: `sae.model.default_k(d_in)`, a quarter of the width, at most 32).
    expansion: d_sae = expansion × d_in (None: `sae.model.default_d_sae(d_in)`, 8 × d_in, at least 64).
    arch: "topk" or "batchtopk".
    steps: optimiser steps (or give `tokens`).
    tokens: training rows in total; steps = tokens // batch_size.
    lr: Adam learning rate (default 2e-4 / sqrt(d_sae / 16384), the TopK scaling law).
    batch_size: rows per step, over all ranks.
    seed: model init and data order.
    eval_fraction: share of the store's sources held out, whole, for metrics (`ActivationStore.held_sources`).
    shuffle_buffer: rows shuffled together when streaming.
    checkpoint_every: steps between checkpoints (0: only at the end).
    device: "cpu", "cuda", "cuda:1", ...
    normalize: "auto", "scale", "center_scale" or "none".
    dead_tokens: rows without firing before a latent counts dead for AuxK (default min(1M, tokens / 10)).
    aux_coef: AuxK loss weight.
    decay_start: fraction of steps after which the LR decays linearly to 0.
    log_every: steps between logged training stats.
    eval_rows: at most this many held-out rows for metrics.
    init_rows: rows sampled for normalisation and the geometric median.
    decoder_init: "random" (unit Gaussian directions: the recipe's default; recovers planted dictionaries) or
        "data" (decoder rows start at sample rows: on a narrow, anisotropic input such as a 16-dim RAVE latent
        random directions point where no data is and a third of the features never fire).
    """

    k: int | None = None
    expansion: int | None = None
    arch: str = "topk"
    steps: int | None = None
    tokens: int | None = None
    lr: float | None = None
    batch_size: int = 4096
    seed: int = 0
    eval_fraction: float = 0.05
    shuffle_buffer: int = 1 << 18
    checkpoint_every: int = 500
    device: str = "cpu"
    normalize: str = "auto"
    dead_tokens: int | None = None
    aux_coef: float = 1.0 / 32.0
    decay_start: float = 0.8
    log_every: int = 10
    eval_rows: int = 1_000_000
    init_rows: int = 16384
    decoder_init: str = "random"

    def total_steps(self) -> int:
        if self.steps is not None and self.steps > 0:
            return int(self.steps)
        if self.tokens is not None and self.tokens >= self.batch_size:
            return int(self.tokens // self.batch_size)
        raise UserError("training length: expected --steps > 0 or --tokens >= --batch-size")

    def validate(self) -> None:
        if self.batch_size <= 0:
            raise UserError(f"batch size {self.batch_size}: expected a positive integer")
        if self.expansion is not None and self.expansion <= 0:
            raise UserError(f"expansion {self.expansion}: expected a positive integer")
        if self.k is not None and self.k <= 0:
            raise UserError(f"k {self.k}: expected a positive integer")
        if self.lr is not None and not (0 < self.lr < 1):
            raise UserError(f"learning rate {self.lr}: expected 0 < lr < 1")
        if not 0 <= self.eval_fraction < 1:
            raise UserError(f"eval fraction {self.eval_fraction}: expected a number in [0, 1)")
        if self.checkpoint_every < 0:
            raise UserError(f"checkpoint interval {self.checkpoint_every}: expected >= 0")
        if self.dead_tokens is not None and not 0 < self.dead_tokens <= MAX_DEAD_TOKENS:
            raise UserError(
                f"dead tokens {self.dead_tokens}: expected a positive integer, at most {MAX_DEAD_TOKENS:.0e}"
            )
        self.total_steps()


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


MAX_D_SAE = 1 << 22
"""The widest dictionary trained here (4M features; the largest published SAEs hold about 1M)."""
MAX_DEAD_TOKENS = 10**15
"""Past it the firing counters (int64) wrap and every feature reads as dead."""


def dims_for(cfg: TrainConfig, d_in: int) -> tuple[int, int]:
    """(d_sae, k) for inputs of width d_in: the config's, or the defaults that scale with d_in."""
    d_sae = d_in * cfg.expansion if cfg.expansion is not None else default_d_sae(d_in)
    k = cfg.k if cfg.k is not None else default_k(d_in)
    return d_sae, k


def default_lr(d_sae: int) -> float:
    """Adam's learning rate where none is given: the TopK scaling law, 2e-4 / sqrt(d_sae / 16384)."""
    return 2e-4 / math.sqrt(d_sae / 16384)


def default_dead_tokens(cfg: TrainConfig) -> int:
    """Rows without firing before a latent counts dead, where none is given: a tenth of the run, at most 1M."""
    return min(1_000_000, cfg.total_steps() * cfg.batch_size // 10)


def _resolved(config: dict[str, Any], d_in: int) -> dict[str, Any]:
    """A `TrainConfig`'s fields as training resolves them for width `d_in`: what None leaves to the data (k, the
    width as d_sae, lr, dead_tokens) filled in, and the run's length in steps however it was given (`--tokens 19200
    --batch-size 64` is `--steps 300`: hunt 203), so a resume that types out the defaults is the same run. A
    mapping that is no config of this version is given back as it is."""
    try:
        cfg = TrainConfig(**config)
        d_sae, k = dims_for(cfg, d_in)
        dead = cfg.dead_tokens if cfg.dead_tokens is not None else default_dead_tokens(cfg)
        steps = cfg.total_steps()
    except (TypeError, UserError):
        return config
    filled = {k_: v for k_, v in config.items() if k_ not in ("expansion", "tokens")}
    return {**filled, "k": k, "d_sae": d_sae, "lr": cfg.lr if cfg.lr is not None else default_lr(d_sae),
            "dead_tokens": dead, "steps": steps}  # fmt: skip


def check_dims(cfg: TrainConfig, hook: str, d_in: int) -> tuple[int, int]:
    """`dims_for`, refused in one line naming the hook when k exceeds the dictionary or the dictionary is too wide
    (checked for every hook before the first trains: a later hook's refusal left the earlier ones trained)."""
    d_sae, k = dims_for(cfg, d_in)
    how = f"--expansion {cfg.expansion} x d_in {d_in}" if cfg.expansion is not None else f"the default for d_in {d_in}"
    if d_sae > MAX_D_SAE:
        raise UserError(f"hook {hook!r}: d_sae {d_sae} ({how}); expected at most {MAX_D_SAE}")
    if k > d_sae:
        raise UserError(f"--k {k}: hook {hook!r} has d_sae {d_sae} ({how}); expected k at most that")
    return d_sae, k


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return DistInfo(dist.get_rank(), dist.get_world_size())


def leave_distributed(code: int = 0, wait_s: float = 60.0) -> NoReturn:
    """End a torchrun worker: leave the process group, flush, and exit at once, without interpreter shutdown.

    gloo's worker threads may still hold the last reference to the tensors of the final collectives (the last
    checkpoint's all_gather); dropped during interpreter shutdown, that reference needs the GIL and the process
    aborts (SIGABRT, "terminate called without an active exception") after all its work is done, which fails the
    run, and the launcher then kills the other ranks, rank 0 possibly in the middle of writing the SAE.

    A signal while leaving ends the worker at once with `code`, quietly, and no rank leaves before every rank is
    leaving (or `wait_s` passed): a launcher sends SIGTERM to the ranks left when one exits non-zero (rank 0 exits
    130 after another rank's signal), and a rank still on its way here said "terminated" a second time (a lag of
    30 ms was enough). The barrier is polled, so a signal ends the wait: blocked in a plain `dist.barrier()` a rank
    heard no signal until its peers came (hunt 79: 15 s, and torchrun waits 30 s before SIGKILL).
    """

    def leave(*_: object) -> NoReturn:
        flush_standard_streams()
        os._exit(code)

    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, leave)
    with contextlib.suppress(RuntimeError):  # a rank that died already: the launcher ends the others anyway
        work = dist.barrier(async_op=True)
        deadline = time.monotonic() + wait_s
        while not work.is_completed() and time.monotonic() < deadline:
            time.sleep(0.005)
    dist.destroy_process_group()
    leave()


def resolve_device(device: str) -> torch.device:
    """The torch device for `--device`: checked, and under a launcher `cuda` is this rank's own GPU."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"device {device!r}: CUDA is not available here (use --device cpu)")
    elif device not in ("cpu", "mps"):
        raise UserError(f"device {device!r}: expected cpu, cuda or cuda:N")
    return torch.device(rank_device(device))


class _Step(nn.Module):
    """What DDP wraps: the loss of one normalised batch."""

    def __init__(self, sae: SparseAutoencoder) -> None:
        super().__init__()
        self.sae = sae

    def forward(self, x_n: Tensor) -> dict[str, Tensor]:
        return self.sae.train_forward(x_n, track=False)


def _any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Whether `flag` is true on any rank (every rank must ask at the same step)."""
    return _rank_sum(int(flag), info, device) > 0


def _rank_sum(n: int, info: DistInfo, device: torch.device) -> int:
    """`n` summed over the ranks (every rank must ask at the same point)."""
    if not info.enabled:
        return n
    t = torch.tensor([n], dtype=torch.int64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return int(t.item())


def _save_checkpoint(obj: Any, path: Path) -> None:
    try:
        atomic_torch_save(obj, path)
    except (OSError, RuntimeError) as exc:  # torch.save reports a full disk as RuntimeError
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise UserError(f"writing checkpoint {path}: {why}; the previous checkpoint is kept") from None


def _lr_lambda(total: int, decay_start: float) -> Callable[[int], float]:
    start = int(total * decay_start)

    def f(step: int) -> float:
        if step < start:
            return 1.0
        return max(0.0, (total - step) / max(1, total - start))

    return f


def unmeasured(metrics: dict[str, Any], split: str) -> str | None:
    """A note where no finite row of `split` was left to measure the trained SAE on (its figures are NaN), or where
    its rows have no variance to explain (FVU NaN)."""
    if metrics["rows"] and math.isfinite(metrics["fvu"]):
        return None
    if metrics["rows"]:
        return (f"the {split} rows have no variance (silence, or rows all alike): FVU is undefined, and never fired "
                "counts only the features those rows use; raise --eval-fraction or hold out other sources")  # fmt: skip
    return f"no finite {split} rows to measure the SAE on: FVU, L0 and dead features are not measured; the SAE is saved"


def no_interval_note(metrics: dict[str, Any], hook: str, cut: int | None = None) -> str | None:
    """A note where the FVU has no interval although its sources were counted (one source to resample, or resamples
    with no variance), with what would give one; `cut`: the row limit scoring stopped at, if it did."""
    if metrics.get("fvu_interval") is not None or metrics.get("sources") is None or not metrics.get("rows"):
        return None  # (nothing measured: `unmeasured` says so)
    few = metrics["sources"] < 2
    why = f"{metrics['sources']} source(s) to resample" if few else "resamples of sources with no variance"
    more = f"; raise --max-rows ({cut} rows reached)" if cut else "; raise --eval-fraction"
    return f"{hook}: no FVU interval ({why}{more if few else ''})"


def _provenance(store: ActivationStore) -> dict:
    """{"model": store.json's model identity} when it names a sha256: later steps check SAE and model agree; and
    {"collect": how its rows were made} where recorded, so that later steps make rows the same way (the chunk and
    text condition MusicGen's rows were teacher-forced with)."""
    model, collect = store.info.get("model"), store.info.get("collect")
    out = {"model": model} if isinstance(model, dict) and model.get("sha256") else {}
    if isinstance(collect, dict):  # the settings, not the folder read (a path of this machine; none for RAVE's)
        made = {k: {n: v for n, v in c.items() if n != "audio"} for k, c in collect.items() if isinstance(c, dict)}
        if made := {k: c for k, c in made.items() if c}:
            out["collect"] = made
    return out


def data_identity(store: ActivationStore, hook: str) -> dict[str, Any]:
    """What a run trains on: hook, width, rows, source model, a digest of the hook's shard listing and first
    shard's first bytes (another store with the same shape differs there), and the rule of the held-out split
    (`HELD_OUT_SPLIT`). A resume must see the same."""
    import hashlib

    shards = store.manifest(hook)["shards"]
    h = hashlib.sha256(json.dumps(shards, sort_keys=True).encode())
    if shards:
        with open(store.root / hook / shards[0]["file"], "rb") as fh:
            h.update(fh.read(1 << 16))
    model = store.info.get("model")
    return {
        "hook": hook,
        "dim": store.dim(hook),
        "rows": store.rows(hook),
        "model": model,
        "digest": h.hexdigest(),
        "held_out_split": HELD_OUT_SPLIT,
    }


def _check_resume(state: dict[str, Any], ckpt_path: Path, cfg: TrainConfig, data: dict[str, Any], world: int) -> None:
    """Refuse a checkpoint written for other activations or other settings, naming what differs, and a file that
    is not a checkpoint of this loop (another tool's, hand-made) naming what it lacks."""
    lacks = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if lacks or not isinstance(state["train_config"], dict):
        why = f"no {lacks[0]!r}" if lacks else "its 'train_config' is not a mapping"
        raise UserError(f"{ckpt_path}: not a checkpoint of sae train ({why}); remove it to start over")
    kinds = {"step": (int, "a count"), "history": (list, "a list"), "elapsed": ((int, float), "seconds"),
             "world_size": (int, "a count"), "streams": (list, "a list")}  # fmt: skip
    for key, (kind, what) in kinds.items():  # a step of "12" was a TypeError traceback mid-resume
        value = state[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise UserError(f"{ckpt_path}: its {key!r} is {value!r:.60}; expected {what}; remove it to start over")
    if not all(isinstance(h, dict) for h in state["history"]):  # [1, 2] ended every resume at the final plot
        raise UserError(f"{ckpt_path}: its 'history' is not a list of logged steps; remove it to start over")
    if len(state["streams"]) != state["world_size"]:
        raise UserError(
            f"{ckpt_path}: its 'streams' holds {len(state['streams'])} entries for {state['world_size']} process(es); "
            "remove it to start over"
        )
    old = state.get("data")
    if not isinstance(old, dict) or "held_out_split" not in old:  # no data entry: written before either (30 Nov)
        raise UserError(
            f"{ckpt_path}: started before the held-out split became whole sources (it held out blocks of rows, so "
            "it has trained on rows of clips now held out, and its metrics would flatter); train into another --out"
        )
    if old != data:
        shape = {k: v for k, v in old.items() if k != "digest"}
        what = differences(shape, {k: v for k, v in data.items() if k != "digest"}, "in the checkpoint")
        raise UserError(
            f"{ckpt_path}: trained on other activations: {what or 'the same hook, width and rows, other contents'}; "
            "resume with the store it was trained on, or train into another --out"
        )
    same = {"checkpoint_every", "log_every"}  # how often it saves and logs: the run ends the same

    raw = (state["train_config"], asdict(cfg))
    # k, lr, ... as resolved (`--k 4` is the default's 4); one left to the data on both sides differs only with
    # another setting (dead_tokens with steps), which is named itself
    auto = {"k": "k", "d_sae": "expansion", "lr": "lr", "dead_tokens": "dead_tokens"}
    both = {key for key, given in auto.items() if all(c.get(given) is None for c in raw)}
    was, now = ({k: v for k, v in _resolved(c, data["dim"]).items() if k not in same | both} for c in raw)
    settings = differences(
        {**was, "world_size": state["world_size"]}, {**now, "world_size": world}, "in the checkpoint"
    )
    if settings:
        raise UserError(f"{ckpt_path}: written with other settings ({settings}); resume with the same")
    if state["step"] < 0 or state["step"] > cfg.total_steps():  # 10**6 of 1500 saved an untrained SAE as trained
        raise UserError(f"{ckpt_path}: its 'step' is {state['step']}; expected 0 to the run's {cfg.total_steps()} "
                        "steps; remove it to start over")  # fmt: skip


def _restore(ckpt_path: Path, entry: str, load: Callable[[], Any]) -> None:
    """`load()` of a checkpoint's `entry`; one that does not fit (damaged, edited by hand) is one line naming it."""
    try:
        load()
    except (KeyError, IndexError, RuntimeError, ValueError, TypeError, AttributeError) as exc:
        why = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())[:200] or "no detail"
        raise UserError(
            f"{ckpt_path}: its {entry!r} does not fit this run ({type(exc).__name__}: {why}); remove it to start over"
        ) from None


def check_hook(store: ActivationStore, hook: str, cfg: TrainConfig, world_size: int = 1) -> None:
    """What training on `hook` needs of the store: rows, a held-out split, a batch its training rows fill, and
    shards whose headers read. `sae train` asks it of every hook before the first trains (a later hook's refusal
    left the earlier ones trained under settings a rerun had to change; a damaged shard met at step 483 lost the
    steps since the last checkpoint)."""
    store.require_rows(hook)
    if cfg.batch_size % world_size:
        raise UserError(f"batch size {cfg.batch_size}: expected a multiple of the world size {world_size}")
    units = store.split_units(hook, "train", cfg.eval_fraction)
    if len(units) < world_size:  # a rank with nothing to read: gloo's 38-line traceback from the others
        raise UserError(f"--nproc {world_size}: hook {hook!r} has {len(units)} block(s) of training rows to share; "
                        "expected at least one per process")  # fmt: skip
    train_rows = sum(end - start for _, start, end in units)
    if cfg.batch_size > train_rows:  # a batch gathered over many passes of the same rows: not a batch
        held = store.rows(hook) - train_rows  # a long source held out whole can take most rows (hunt 169)
        blocks = cfg.eval_fraction > 0 and store.held_sources(hook, cfg.eval_fraction) is None
        why = "too few sources to hold out whole" if store.every_row_has_a_source(hook) else "its rows name no source"
        how = f" as blocks of rows: {why}" if blocks else ""  # (hunt 195: 25 %, unsaid)
        besides = f" ({held} more held out by --eval-fraction {cfg.eval_fraction:g}{how})" if held else ""
        raise UserError(f"--batch-size {cfg.batch_size}: hook {hook!r} has {train_rows} training rows{besides}; "
                        f"expected at most that many (--batch-size {train_rows}, or more clips)")  # fmt: skip
    store.check_shards(hook)


def split_note(store: ActivationStore, hook: str, eval_fraction: float) -> str | None:
    """What the held-out split is where it cannot be whole sources (too few of them, or rows naming none): blocks
    of rows, often far more than asked, with clips on both sides; or where whole sources hold far more rows than
    the fraction asked (one long recording among clips took 94 % of them: hunt 169); or where held-out sources are
    copies of training ones (`ActivationStore.held_copies`). None otherwise."""
    if eval_fraction == 0:
        return None
    held = sum(b - a for _, a, b in store.split_units(hook, "eval", eval_fraction))
    total, n = store.rows(hook), len(store.sources(hook))
    if (whole := store.split_sources(hook, "eval", eval_fraction)) is not None:  # a long source can take most rows
        notes = []
        if copies := store.held_copies(hook, eval_fraction):
            notes.append(
                f"{len(copies)} of the {len(whole)} held-out source(s) hold the same bytes as a training source "
                f"(e.g. {copies[0]}: a clip collected under two names), so held-out figures are partly training "
                "figures; collect each clip once (a data make folder's train and test clips, README: sae_clips; "
                "not its concept folders)"
            )
        share = len(whole) / max(n, 1)  # of the sources: `held_sources` rounds (1 of 10 at 0.05), so not the fraction
        if held > max(3 * share, share + 0.2) * total:  # a held-out song a little longer than most said so (hunt 171)
            notes.append(
                f"the {len(whole)} source(s) held out whole hold {held} of {total} rows "
                f"({100 * held / total:.0f} %, for --eval-fraction {eval_fraction:g} of the sources): training reads "
                "the rest; a long recording among short clips is the likely cause (cut it, or collect it apart)"
            )
        return f"{hook}: {'; '.join(notes)}" if notes else None
    why = "its rows name no source"  # (all or some of them: a store written before provenance)
    if store.every_row_has_a_source(hook):
        why = f"its {n} sources are too few to hold out {eval_fraction:g} of them whole"
    return (f"{hook}: {why}, so the held-out rows are blocks ({held} of {total} rows, {100 * held / total:.0f} %) "
            "and clips may have rows on both sides: held-out figures may flatter")  # fmt: skip


def far_rows_note(store: ActivationStore, hook: str, cfg: TrainConfig) -> str | None:
    """What to say (the hook's name left to the caller) where sampled rows of either split are over `FAR_ROW`
    times the training sample's median row norm: no activation is (a damaged shard); they are left out of the
    normalisation, but such rows can dominate the loss and the FVU of their split."""
    splits = {}
    for name, split in (("training", "train"), ("held-out", "eval")):
        if split == "train" or cfg.eval_fraction > 0:
            with contextlib.suppress(UserError):  # no finite row: said where it matters (init, the FVU's note)
                rows = store.sample(hook, cfg.init_rows, split, cfg.eval_fraction, cfg.seed)
                splits[name] = rows.double().norm(dim=1)
    if "training" not in splits:
        return None
    median = typical_norm(splits["training"])
    far = {name: n[n > FAR_ROW * median] for name, n in splits.items()}
    if median == 0 or not any(len(f) for f in far.values()):
        return None
    counts = " and ".join(f"{len(f)} of {len(splits[name])} sampled {name} rows" for name, f in far.items() if len(f))
    peak = max(float(f.max()) for f in far.values() if len(f))
    return (f"{counts} are over {FAR_ROW:g} times the median row norm ({median:.3g}; largest {peak:.3g}): "
            "no activation is that large (a damaged shard?); such rows can dominate the loss and the FVU")  # fmt: skip


def check_start(out: Path, resume: bool, resumed: tuple[ActivationStore, str, TrainConfig, int] | None = None) -> None:
    """Refuse a folder `out` this training may not write: a run there without `resume`, a finished SAE; with
    `resumed` (store, hook, settings, world size), a checkpoint of other activations or settings too. `sae train`
    asks it of every hook before the first trains (it refused a later hook after training the ones before it)."""
    ckpt_path = Path(out) / CHECKPOINT
    if ckpt_path.exists() and not resume and (Path(out) / METRICS).exists():  # "continue it" only measured it again
        raise UserError(f"{out} already holds a finished SAE ({METRICS}); use another --out (or --layers without it)")
    if ckpt_path.exists() and not resume:
        raise UserError(f"{out} already holds a training run; pass --resume to continue it, or use another --out")
    if not ckpt_path.exists() and (Path(out) / WEIGHTS_FILE).exists():
        raise UserError(
            f"{out} already holds an SAE ({WEIGHTS_FILE}, no {CHECKPOINT} of a run to resume); use another --out "
            "(or --layers without it)"
        )
    if resume and resumed is not None and ckpt_path.exists():
        store, hook, cfg, world = resumed
        _check_resume(read_torch(ckpt_path), ckpt_path, cfg, data_identity(store, hook), world)


def train_hook(
    store: ActivationStore,
    hook: str,
    out_dir: str | os.PathLike,
    cfg: TrainConfig,
    resume: bool = False,
    on_step: Callable[[int, int, dict[str, float]], None] | None = None,
    info: DistInfo | None = None,
    model_name: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train one SAE on `hook` into `out_dir`; returns the metrics (also written to metrics.json).

    Args:
        on_step: called on rank 0 after each step with (step, total, stats: fvu, l0, dead, loss).
        info: rank / world size (default: single process).
        model_name: recorded in the SAE config (default: store.json's model name).
        stop: asked after each step (on every rank, or on none); once it is true on any rank, every rank ends
            there: the step is checkpointed and `Stopped` raised (an interrupt then loses no step).
    """
    cfg.validate()
    info = info or DistInfo()
    # two runs into one folder would mix their checkpoints and files (rank 0 holds the lock for all ranks)
    lock = sole_writer(out_dir, "sae train") if info.main else contextlib.nullcontext()
    with lock:
        return _train_hook(store, hook, Path(out_dir), cfg, resume, on_step, info, model_name, stop)


def _train_hook(
    store: ActivationStore,
    hook: str,
    out: Path,
    cfg: TrainConfig,
    resume: bool,
    on_step: Callable[[int, int, dict[str, float]], None] | None,
    info: DistInfo,
    model_name: str | None,
    stop: Callable[[], bool] | None,
) -> dict[str, Any]:
    ckpt_path = out / CHECKPOINT
    check_start(out, resume)
    out.mkdir(parents=True, exist_ok=True)
    if info.main:  # a run killed while writing a checkpoint or its files left temporary files (its first: no resume)
        remove_folder_leftovers(out)
    device = resolve_device(cfg.device)
    check_hook(store, hook, cfg, info.world_size)
    d_in = store.dim(hook)
    total = cfg.total_steps()
    local_batch = cfg.batch_size // info.world_size
    d_sae, k = check_dims(cfg, hook, d_in)
    lr = cfg.lr if cfg.lr is not None else default_lr(d_sae)
    dead_tokens = cfg.dead_tokens if cfg.dead_tokens is not None else default_dead_tokens(cfg)
    if model_name is None:
        model_name = str((store.info.get("model") or {}).get("name", ""))
    sae_cfg = SAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        k=k,
        arch=cfg.arch,
        hook_name=hook,
        model_name=model_name,
        aux_coef=cfg.aux_coef,
        dead_tokens=max(1, int(dead_tokens)),
    )

    torch.manual_seed(cfg.seed)
    sae = SparseAutoencoder(sae_cfg)
    stream = store.iter_batches(
        hook,
        local_batch,
        "train",
        cfg.eval_fraction,
        cfg.shuffle_buffer,
        cfg.seed,
        info.rank,
        info.world_size,
        loop=True,
    )
    state: dict[str, Any] | None = None
    data = data_identity(store, hook)
    if resume and ckpt_path.exists():
        state = read_torch(ckpt_path)
        _check_resume(state, ckpt_path, cfg, data, info.world_size)
        _restore(ckpt_path, "model", lambda: sae.load_state_dict(state["model"]))
        bad = [name for name, t in sae.state_dict().items() if t.is_floating_point() and not torch.isfinite(t).all()]
        if bad:  # a NaN threshold trained on and wrote an SAE that load_sae refuses
            raise UserError(f"{ckpt_path}: its 'model' holds NaN/inf in {bad[0]}; remove it to start over")
        _restore(ckpt_path, "streams", lambda: stream.load_state_dict(state["streams"][info.rank]))
    else:
        sample = store.sample(hook, cfg.init_rows, "train", cfg.eval_fraction, cfg.seed)
        sae.init_from_sample(sample, cfg.normalize, decoder=cfg.decoder_init, seed=cfg.seed)
    sae.to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=lr, betas=(0.9, 0.999))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(total, cfg.decay_start))
    step, history, elapsed = 0, [], 0.0
    if state is not None:
        _restore(ckpt_path, "optimizer", lambda: opt.load_state_dict(state["optimizer"]))
        for param in sae.parameters():  # Adam's load checks no shape: a wrong one was a traceback at the first step
            for name, moment in opt.state.get(param, {}).items():
                if isinstance(moment, Tensor) and moment.ndim and moment.shape != param.shape:
                    raise UserError(f"{ckpt_path}: its 'optimizer' holds {name} {tuple(moment.shape)} for a "
                                    f"parameter {tuple(param.shape)}; remove it to start over")  # fmt: skip
        _restore(ckpt_path, "scheduler", lambda: sched.load_state_dict(state["scheduler"]))
        step, history, elapsed = state["step"], state["history"], state["elapsed"]

    runner: nn.Module = _Step(sae)
    if info.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        # torch 2.13 renamed broadcast_buffers (and warns on it, once per rank); the running statistics stay local
        sync = (
            "forward_sync_buffers"
            if "forward_sync_buffers" in inspect.signature(DDP).parameters
            else "broadcast_buffers"
        )
        runner = DDP(runner, device_ids=[device.index] if device.type == "cuda" else None, **{sync: False})

    def checkpoint() -> None:
        streams = [stream.state_dict()]
        if info.enabled:
            streams = [None] * info.world_size
            dist.all_gather_object(streams, stream.state_dict())
        if info.main:
            _save_checkpoint(
                {
                    "step": step,
                    "model": sae.state_dict(),
                    "optimizer": opt.state_dict(),
                    "scheduler": sched.state_dict(),
                    "streams": streams,
                    "history": history,
                    "elapsed": elapsed,
                    "train_config": asdict(cfg),
                    "world_size": info.world_size,
                    "data": data,
                    "train_dead_fraction": float((sae.since_fired >= sae_cfg.dead_tokens).float().mean()),
                    "dead_tokens": sae_cfg.dead_tokens,
                    "sae_config": sae_cfg.to_dict(),
                },
                ckpt_path,
            )
        if info.enabled:
            dist.barrier()

    it = iter(stream)
    t0 = time.perf_counter()
    while step < total:
        x = next(it).to(device, non_blocking=True)
        x_n = sae.normalize(x)
        o = runner(x_n)
        opt.zero_grad(set_to_none=True)
        o["loss"].backward()
        sae.project_decoder_grad()
        opt.step()
        sched.step()
        sae.normalize_decoder()
        with torch.no_grad():
            fired = o["fired"]
            active_min = o["min_active"].clone()
            if info.enabled:
                fired_i = fired.to(torch.int32)
                dist.all_reduce(fired_i, op=dist.ReduceOp.MAX)
                fired = fired_i.bool()
                dist.all_reduce(active_min, op=dist.ReduceOp.MIN)
            vals = active_min.reshape(1) if torch.isfinite(active_min) else active_min.new_zeros(0)
            sae.track(fired, cfg.batch_size, vals)
        step += 1
        if info.main and (step % cfg.log_every == 0 or step == total or on_step is not None):
            stats = {
                "step": step,
                "fvu": batch_fvu(x_n, o["x_hat"]),
                "l0": float(o["l0"]),
                "dead": float((sae.since_fired >= sae_cfg.dead_tokens).float().mean()),
                "loss": float(o["loss"].detach()),
                "aux": float(o["aux"]),
                "lr": sched.get_last_lr()[0],
            }
            if step % cfg.log_every == 0 or step == total:
                history.append(stats)
            if on_step is not None:
                on_step(step, total, stats)
        saved = (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == total
        halt = stop is not None and _any_rank(stop(), info, device)
        if (saved or halt) and not all(bool(torch.isfinite(p).all()) for p in sae.parameters()):
            why = far_rows_note(store, hook, cfg)  # a damaged row, not the scale, is the likelier cause
            peak = float(x.detach().abs().max())
            raise UserError(
                f"SAE of {hook!r} diverged by step {step} (NaN/inf weights, nothing saved); "
                + (why or f"its activations reach {peak:.3g}: rescale them, or train with a lower --lr")
            )  # fmt: skip
        if saved or halt:
            elapsed_now = elapsed + time.perf_counter() - t0
            elapsed, t0 = elapsed_now, time.perf_counter()
            checkpoint()
        if halt:
            raise Stopped(step, ckpt_path)
    elapsed += time.perf_counter() - t0
    skipped = _rank_sum(stream.nonfinite_rows, info, device)  # each rank's stream reads its own units
    if not info.main:
        return {}
    tokens = total * cfg.batch_size
    sae.eval()
    if cfg.arch == "batchtopk":  # on training rows, before anything measures or saves it
        sae.calibrate_threshold(store.sample(hook, min(cfg.init_rows, CALIBRATION_ROWS), "train", cfg.eval_fraction,
                                             cfg.seed))  # fmt: skip
    eval_split = "eval" if cfg.eval_fraction > 0 else "train"
    held = store.held_sources(hook, cfg.eval_fraction) if cfg.eval_fraction > 0 else None
    held_out = "none" if cfg.eval_fraction == 0 else HELD_OUT_SPLIT if held is not None else "blocks of rows"
    metrics = evaluate_split(sae, store, hook, eval_split, cfg.eval_fraction, cfg.eval_rows, seed=cfg.seed)
    train_rows = sum(b - a for _, a, b in stream.units)  # the training split, every rank's units
    not_measured = unmeasured(metrics, eval_split)
    far = far_rows_note(store, hook, cfg)
    metrics.update(
        {
            "hook": hook,
            "data": data,  # what it was trained on (`data_identity`): a later reuse can check the store is the same
            "split": eval_split,
            "held_out": held_out,  # what the rule gave this store: whole sources, or blocks where too few
            "held_out_sources": len(held) if held is not None else None,
            "held_out_copies": len(store.held_copies(hook, cfg.eval_fraction)),  # of training sources (hunt 199)
            "train_rows": train_rows,
            "passes": tokens / max(train_rows, 1),
            "tokens_per_s": tokens / max(elapsed, 1e-9),
            "train_seconds": elapsed,
            "tokens": tokens,
            "steps": total,
            "k": k,
            "expansion": d_sae / d_in,
            "d_in": d_in,
            "d_sae": d_sae,
            "arch": cfg.arch,
            "lr": lr,
            "normalize": sae.normalization(),
            "world_size": info.world_size,
            "train_dead_fraction": float((sae.since_fired >= sae_cfg.dead_tokens).float().mean()),
            "dead_tokens": sae_cfg.dead_tokens,
            "skipped_nonfinite_rows": skipped + metrics.pop("nonfinite_rows"),
            "threshold": float(sae.threshold / sae.scale) if cfg.arch == "batchtopk" else None,
            "notes": [
                n
                for n in (
                    sparsity_warning(k, d_in),
                    split_note(store, hook, cfg.eval_fraction),
                    not_measured,
                    far and f"{hook}: {far}",
                    no_interval_note(metrics, hook),
                )
                if n
            ],
        }
    )
    save_sae(
        sae.cpu(),
        out,
        extra={
            "train_config": asdict(cfg),
            "metrics": {k: metrics[k] for k in ("fvu", "l0", "dead_fraction")},
            "held_out_split": held_out,  # (hunt 193: "whole sources" where a store of few sources held out blocks)
        }
        | _provenance(store),
    )
    if trained := store.trained_audio(hook, cfg.eval_fraction):  # what a judge of held-out audio checks against
        atomic_write_text(out / TRAINED_AUDIO, strict_json({"sha256": trained}))
    else:
        (out / TRAINED_AUDIO).unlink(missing_ok=True)
    atomic_write_text(out / "history.json", strict_json(history))
    try:
        from sae.plots import plot_firing, plot_training

        plot_training(history, out / "training_curves.png", title=hook)
        if metrics["firing_histogram"]:
            plot_firing(metrics["firing_histogram"], out / "firing_histogram.png", title=hook)
    except ImportError:  # matplotlib missing: metrics are still written
        pass
    atomic_write_text(out / METRICS, strict_json(metrics))  # last: what marks a finished training (NaN: null)
    return metrics
