"""The random streams of a training, saved with its checkpoints so that a resumed run trains as an uninterrupted one."""

from __future__ import annotations

import numpy as np
import torch


class RandomStreams:
    """The random streams a training draws from once its weights are made: the data order's numpy generator,
    torch's global generator (dropout, codebook initialisation) and the trainer's own torch generators. Saved with
    each checkpoint and restored on resume, so a run stopped and resumed draws what an uninterrupted one would."""

    def __init__(self, data: np.random.Generator, *gens: torch.Generator):
        self.data, self.gens = data, gens

    def state(self) -> dict:
        return {
            "numpy": self.data.bit_generator.state,
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None,
            "gens": [g.get_state() for g in self.gens],
        }

    def restore(self, saved: dict | None) -> None:
        """Take up the saved streams (a checkpoint without them keeps the streams the trainer seeded)."""
        if not saved:
            return
        self.data.bit_generator.state = saved["numpy"]
        torch.set_rng_state(saved["torch"].cpu())  # the checkpoint is read onto the training's device
        if saved.get("cuda") is not None and torch.cuda.is_available():
            # saved on a machine with more GPUs than this one: each device here takes up its own state
            for device, state in enumerate(saved["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(state.cpu(), device)
        for g, state in zip(self.gens, saved["gens"], strict=True):
            g.set_state(state.cpu())


def kept_streams(device: torch.device | str):
    """A context in which torch's random streams may be drawn from or reseeded, and are as they were after it:
    the CPU's, and the CUDA device's where `device` is one (`fork_rng(devices=[])` kept only the CPU's, though
    `manual_seed` reseeds every GPU and a model on one draws its noise there)."""
    device = torch.device(device)
    if device.type != "cuda":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[torch.cuda.current_device() if device.index is None else device.index])
