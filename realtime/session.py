"""Assemble a live engine from files: RAVE `.ts` + SAE dir + concept bank → controls, processor, engine.

The one place where the live pieces are put together (the CLI, benches and tests all build through here),
so a half-configured engine never exists: every mismatch is refused here with one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from realtime.controls import Controls, read_preset
from realtime.engine import Engine
from realtime.processor import BlockProcessor
from sae.errors import UserError
from sae.steering import EditState

_DELAYS: dict[str, int] = {}  # model sha256 → measured delay: measured once per process


@dataclass
class LiveConfig:
    """Args:
    model: streaming RAVE `.ts`.
    sae: SAE directory on the RAVE latent (default: the one the bank's concepts name).
    bank: concept bank YAML (optional: without it only raw /feature gains steer).
    blocksize: frames per model block (a multiple of the model's ratio; default ≈ 2048).
    period: frames per audio callback.
    channels: device channels, 1 or 2.
    stereo: mono model on stereo: "mid" or "channels".
    headroom: model-thread budget per block, in blocks.
    model_device: torch device for RAVE and the SAE ("cpu", "cuda", ...).
    threads: torch threads on the model thread.
    preset: preset YAML applied at start.
    mix, bypass: initial dry/wet and bypass.
    """

    model: Path
    sae: Path | None = None
    bank: Path | None = None
    blocksize: int | None = None
    period: int = 256
    channels: int = 1
    stereo: str = "mid"
    headroom: float = 1.0
    threads: int = 1
    preset: Path | None = None
    model_device: str = "cpu"
    mix: float = 1.0
    bypass: bool = False


@dataclass
class LiveSession:
    """What `build_live` made."""

    engine: Engine
    controls: Controls
    rave: Any
    sae_dir: Path | None
    skipped: list[str] = field(default_factory=list)  # bank concepts not on this model / SAE


def _select_concepts(bank: Any, rave: Any, sae_dir: Path | None) -> tuple[dict[str, Any], Path | None, list[str]]:
    """Concepts of `bank` found on this RAVE model's latent with the chosen SAE."""
    ours = [c for c in bank if c.model.sha256 == rave.identity.sha256]
    skipped = [f"{c.name} (model {c.model.name})" for c in bank if c.model.sha256 != rave.identity.sha256]
    if bank.concepts and not ours:
        raise UserError(
            f"concept bank {bank.path}: no concept was found on {rave.path.name} (sha256 {rave.identity.sha256[:12]})"
        )
    if sae_dir is None and ours:
        sae_dir = bank.sae_dir(ours[0])
    chosen = {}
    for c in ours:
        if sae_dir is not None and bank.sae_dir(c).resolve() != Path(sae_dir).resolve():
            skipped.append(f"{c.name} (SAE {c.sae})")
        else:
            chosen[c.name] = c
    return chosen, sae_dir, skipped


def load_model(cfg: LiveConfig) -> Any:
    """The RAVE model of `cfg` (validated: a streaming export)."""
    from realtime.rave import RaveModel

    if not Path(cfg.model).is_file():
        raise UserError(f"RAVE model {cfg.model}: no such file")
    return RaveModel.load(cfg.model, device=cfg.model_device)


def build_live(cfg: LiveConfig, rave: Any | None = None) -> LiveSession:
    """Load and check everything (the model too, unless given); the engine is built but not started."""
    from sae.bank import ConceptBank
    from sae.export import script_sae
    from sae.io import load_sae

    torch.set_num_threads(cfg.threads)
    rave = rave if rave is not None else load_model(cfg)
    concepts: dict[str, Any] = {}
    skipped: list[str] = []
    sae_dir = Path(cfg.sae) if cfg.sae is not None else None
    if cfg.bank is not None:
        concepts, sae_dir, skipped = _select_concepts(ConceptBank.load(cfg.bank), rave, sae_dir)
    sae = None
    if sae_dir is not None:
        if not Path(sae_dir).is_dir():
            raise UserError(f"SAE {sae_dir}: no such directory")
        sae = script_sae(load_sae(sae_dir))
    d_sae = int(sae.W_dec.shape[0]) if sae is not None else 0
    state = EditState.from_concepts(d_sae, concepts)
    controls = Controls(state, mix=cfg.mix, bypass=cfg.bypass)
    if cfg.preset is not None:
        with controls.transaction() as draft:
            draft.load_preset(read_preset(cfg.preset))
    delay = _DELAYS.get(rave.identity.sha256)
    if delay is None:
        delay = _DELAYS[rave.identity.sha256] = rave.delay()
    processor = BlockProcessor(rave, sae, cfg.blocksize, cfg.channels, cfg.stereo, delay=delay)
    engine = Engine(processor, controls, cfg.period, cfg.headroom, cfg.threads)
    return LiveSession(engine, controls, rave, sae_dir, skipped)
