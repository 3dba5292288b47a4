"""Assemble a live engine from files: RAVE `.ts` + SAE dir + concept bank → controls, processor, engine.

The one place where the live pieces are put together (the CLI, benches and tests all build through here),
so a half-configured engine never exists: every mismatch is refused here with one line, cheap checks first
(period and block shape, SAE and bank of another model) before the slow ones (measuring the model's delay,
timing blocks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from realtime.alignment import Alignment
from realtime.budget import BudgetChoice, check_budget, choose_block
from realtime.controls import Controls, read_preset
from realtime.engine import Engine, priority_while
from realtime.processor import BlockProcessor, check_period, choose_blocksize
from realtime.render_rave import other_model_concepts
from sae.alone import check_detectors
from sae.errors import UserError
from sae.meter import MeterParams
from sae.steering import EditState


@dataclass
class LiveConfig:
    """Args:
    model: streaming RAVE `.ts`.
    sae: SAE directory on the RAVE latent (default: the one the bank's concepts name).
    bank: concept bank YAML (optional: without it only raw /feature gains steer).
    blocksize: frames per model block (a multiple of the model's ratio; None: the smallest that keeps up).
    period: frames per audio callback (must divide the block).
    channels: device channels, 1 or 2 (None: the model's own, `device_channels`).
    stereo: a mono model on two channels: "mid" or "channels" (each side its own stream).
    headroom: model-thread budget per block, in blocks (None: from the measured compute time).
    budget: model-thread budget in frames, used as it is (with `blocksize`; whole periods, at most four blocks;
        `headroom` then unused): one chosen before, e.g. carried across a `live --reconnect` restart.
    model_device: torch device for RAVE and the SAE ("cpu", "cuda", ...).
    threads: torch threads on the model thread.
    rt_priority: the model thread's real-time priority (SCHED_FIFO; 0: normal), as far as the OS allows.
    preset: preset YAML applied at start.
    mix, bypass: initial dry/wet (None: 1, or the preset's) and bypass (True: bypassed, whatever the preset
        says); both given win over the preset's (`--mix 0.3 --preset p.yaml` with `mix: 0.8` in it started at 0.8).
    meters: concept meters from the bank's probes (costs one SAE encode per block).
    timing_s: seconds of block timing per candidate block.
    """

    model: Path
    sae: Path | None = None
    bank: Path | None = None
    blocksize: int | None = None
    period: int = 256
    channels: int | None = None
    stereo: str = "mid"
    headroom: float | None = None
    budget: int | None = None
    threads: int = 1
    rt_priority: int = 1
    preset: Path | None = None
    model_device: str = "cpu"
    mix: float | None = None
    bypass: bool = False
    meters: bool = True
    timing_s: float = 1.0


@dataclass
class LiveSession:
    """What `build_live` made."""

    engine: Engine
    controls: Controls
    rave: Any
    sae_dir: Path | None
    alignment: Alignment
    choice: BudgetChoice
    skipped: list[str] = field(default_factory=list)  # bank concepts not on this model / SAE


def _select_concepts(bank: Any, rave: Any, sae_dir: Path | None) -> tuple[dict[str, Any], Path | None, list[str]]:
    """Concepts of `bank` found on this RAVE model with the chosen SAE (the first concept's by default)."""
    if not bank.concepts:
        raise UserError(f"concept bank {bank.path}: holds no concepts; find some with `musicsae concept find`")
    ours = [c for c in bank if c.model.sha256 == rave.identity.sha256]
    skipped = other_model_concepts(bank, rave)
    if bank.concepts and not ours:
        raise UserError(
            f"concept bank {bank.path}: no concept was found on {rave.path.name} (sha256 {rave.identity.sha256[:12]})"
        )
    if sae_dir is None and ours:
        sae_dir = bank.existing_sae_dir(ours[0])
    chosen = {}
    for c in ours:
        if sae_dir is not None and not bank.uses_sae(c, sae_dir):
            skipped.append(f"{c.name} (SAE {c.sae})")
        else:
            bank.check_sae(c, sae_dir)
            chosen[c.name] = c
    return chosen, sae_dir, skipped


def load_model(cfg: LiveConfig) -> Any:
    """The RAVE model of `cfg` (validated: a streaming export)."""
    from realtime.rave import RaveModel

    if Path(cfg.model).is_dir():  # was "no such file", of a folder that is there
        raise UserError(f"RAVE model {cfg.model}: a folder; expected a streaming RAVE export (.ts file)")
    if not Path(cfg.model).is_file():
        raise UserError(f"RAVE model {cfg.model}: no such file")
    return RaveModel.load(cfg.model, device=cfg.model_device)


def device_channels(rave: Any, requested: int | None = None) -> int:
    """The device channels to play `rave` on: `requested`, else the model's own (a stereo model plays stereo)."""
    return int(requested) if requested is not None else int(rave.channels)  # 1 or 2 (`RaveModel` refuses more)


def channel_words(channels: int) -> str:
    """`mono (1 channel)`, `stereo (2 channels)`."""
    return "stereo (2 channels)" if channels == 2 else "mono (1 channel)"


def build_live(cfg: LiveConfig, rave: Any | None = None, say: Callable[[str], None] | None = None) -> LiveSession:
    """Load and check everything (the model too, unless given); the engine is built but not started."""
    from realtime.rave import check_sae_for_model, sae_hook
    from sae.bank import ConceptBank, named_errors
    from sae.export import script_sae
    from sae.io import load_sae, read_sae_cfg

    torch.set_num_threads(cfg.threads)
    rave = rave if rave is not None else load_model(cfg)
    if cfg.blocksize is not None:  # shapes first: nothing slow runs for an impossible pair
        check_period(cfg.period, choose_blocksize(rave.ratio, cfg.blocksize))
    elif cfg.period <= 0:
        check_period(cfg.period, rave.ratio)
    if cfg.budget is not None:
        check_budget(cfg.budget, cfg.blocksize, cfg.period)
    concepts: dict[str, Any] = {}
    skipped: list[str] = []
    sae_dir = Path(cfg.sae) if cfg.sae is not None else None
    if cfg.bank is not None:
        concepts, sae_dir, skipped = _select_concepts(ConceptBank.load(cfg.bank), rave, sae_dir)
    sae = None
    hook = "latent"
    if sae_dir is not None:
        sae_cfg = read_sae_cfg(sae_dir)  # a missing folder or a file is one line here
        hook = sae_hook(sae_cfg)
        check_sae_for_model(sae_dir, sae_cfg, rave, hook)
        sae = script_sae(load_sae(sae_dir))
        for name in [n for n, c in concepts.items() if c.hook != hook]:
            skipped.append(f"{name} (hook {concepts.pop(name).hook}, the SAE's is {hook})")
    if cfg.sae is not None and cfg.bank is not None and skipped and not concepts:
        raise UserError(
            f"--sae {cfg.sae}: no concept of the bank {cfg.bank} was found with this SAE (skipped "
            f"{'; '.join(skipped)}); leave --sae out to play the bank's own"
        )
    if cfg.bank is not None and skipped and not concepts:  # it played on with "concepts: none"
        raise UserError(
            f"concept bank {cfg.bank}: no concept can be played with its SAE {sae_dir} (skipped "
            f"{'; '.join(skipped)}); find the concepts again with this SAE"
        )
    d_sae = int(sae.W_dec.shape[0]) if sae is not None else 0
    with named_errors(cfg.bank):
        state = EditState.from_concepts(d_sae, concepts)
    controls = Controls(state, mix=1.0 if cfg.mix is None else cfg.mix, bypass=cfg.bypass)
    if cfg.preset is not None:
        try:
            with controls.transaction() as draft:
                draft.load_preset(read_preset(cfg.preset))
        except UserError as exc:  # "mix 3.0: ..." did not say it was the preset's, not --mix; nor which file
            said = str(exc)
            raise UserError(
                said if str(cfg.preset) in said else f"preset {cfg.preset}: {said.removeprefix('preset ')}"
            ) from None
        with controls.transaction() as draft:  # what the command line says wins over the preset's mix and bypass
            draft.set_mix(draft.mix if cfg.mix is None else cfg.mix)
            draft.bypass = draft.bypass or cfg.bypass
    meters = MeterParams.from_concepts(concepts) if cfg.meters and sae is not None else None
    alignment = rave.alignment()  # measured once per model file in a process

    channels = device_channels(rave, cfg.channels)

    with named_errors(cfg.bank):
        alone = check_detectors(state.alone, d_sae, int(sae.W_dec.shape[1])) if sae is not None else {}

    def make(block: int) -> BlockProcessor:
        return BlockProcessor(rave, sae, block, channels, cfg.stereo, alignment.aligned,
                              alignment.first_response, meters, hook=hook, alone=alone)  # fmt: skip

    with priority_while(cfg.rt_priority):  # timed as the model thread will run
        processor, choice = choose_block(make, rave.ratio, cfg.period, rave.sr, controls.warm_up_snapshots(),
                                         cfg.blocksize, cfg.headroom, seconds=cfg.timing_s, say=say,
                                         budget=cfg.budget)  # fmt: skip
    engine = Engine(
        processor, controls, cfg.period, threads=cfg.threads, budget=choice.budget, rt_priority=cfg.rt_priority
    )
    return LiveSession(engine, controls, rave, sae_dir, alignment, choice, skipped)
