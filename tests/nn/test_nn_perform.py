"""The exported file driven the way nn~ drives it (tests/nn/nn_host.py), against musicsae's own live engine on
the same audio and the same timeline of concept switches."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.controls import Snapshot
from realtime.processor import BlockProcessor
from sae.bank import ConceptBank
from sae.export import script_sae
from sae.io import load_sae
from sae.steering import EditState
from training.rave import tiny_model
from training.rave.nn_export import read_metadata

# concept switches between buffers (index in 2048-sample buffers -> set messages), as a performer clicks
# message boxes; the bank's defaults hold before the first (2nd.voice starts off)
TIMELINE = {
    3: [("bright", ("on", 4.0))],
    5: [("noisy_1", ("off", 0.0)), ("c_2nd_voice", ("none", 0.0))],
    7: [("bright", ("scale", 0.25))],
    9: [("mix", (0.5,))],
    11: [("bypass", (1,))],
    12: [("bypass", (0,)), ("bright", ("none", 1.0)), ("mix", (1.0,))],
}
BUFFERS = 14
EDIT_ONLY = (3, 9)  # buffers where only concept edits differ from the defaults


def audio(sr: int, seconds: float, channels: int = 1) -> np.ndarray:
    """[channels, T] harmonic tones with noise bursts (a different seed per channel)."""
    return np.concatenate([tiny_model.test_signal(sr, seconds, 3 + c)[0].numpy() for c in range(channels)])


class EngineTimeline:
    """musicsae's own live engine (`realtime.processor.BlockProcessor`) under the same `set` messages."""

    def __init__(self, model, sae_dir: Path, bank_path: Path, attrs: dict[str, str], block: int, delay: int):
        bank = ConceptBank.load(bank_path)
        sae = script_sae(load_sae(sae_dir))
        self.proc = BlockProcessor(model, sae, block, channels=model.channels, delay=delay)
        self.state = EditState.from_concepts(int(sae.W_dec.shape[0]), {c.name: c for c in bank})
        self.names = {a: n for n, a in attrs.items()}
        self.mix, self.bypass = 1.0, False

    def apply(self, attr: str, atoms: tuple) -> None:
        if attr == "mix":
            self.mix = float(atoms[0])
        elif attr == "bypass":
            self.bypass = bool(atoms[0])
        else:
            name, (mode, value) = self.names[attr], atoms
            self.state.set_mode(name, mode)
            if mode == "scale":
                self.state.set_gain(name, float(value))
            elif mode == "on":
                self.state.set_strength(name, float(value))

    def forward(self, x: np.ndarray, events: dict) -> np.ndarray:
        """x [C, T] → the engine's output [C, T] (no host latency), one block per nn~ buffer."""
        b = self.proc.blocksize
        out = []
        torch.manual_seed(0)  # as the nn~ run: RAVE's decoder draws noise from the global generator
        for k in range(x.shape[1] // b):
            for attr, atoms in events.get(k, ()):
                self.apply(attr, atoms)
            snap = Snapshot(self.state.edit(), self.mix, self.bypass, k)
            out.append(self.proc.process(np.ascontiguousarray(x[:, k * b : (k + 1) * b].T), snap).T)
        return np.concatenate(out, axis=1)

    @torch.inference_mode()
    def decode(self, frames: torch.Tensor, events: dict) -> np.ndarray:
        """Latent frames [latent, F] → audio, steered and decoded per block as the engine does it."""
        per = self.proc.frames
        stream = self.proc.streams[0]
        out = []
        torch.manual_seed(0)
        for k in range(frames.shape[1] // per):
            for attr, atoms in events.get(k, ()):
                self.apply(attr, atoms)
            edit = self.state.edit()
            z = self.proc._steer(frames[None, :, k * per : (k + 1) * per], edit)
            self.proc.prev_edit = edit
            out.append(stream.decode(z)[0].numpy())
        return np.concatenate(out, axis=1)


def _host_forward(nn, path: Path, x: np.ndarray, block: int, events: dict) -> tuple[np.ndarray, int]:
    host = nn.NnHost(torch.jit.load(str(path)), "forward", block)
    torch.manual_seed(0)  # RAVE's decode fills dropped latent dims from the global generator
    return nn.run(host, x, events), host.latency


def _segments(timeline: dict, block: int, n: int) -> list[slice]:
    """The stretches between two switches, in samples, cut at `n`."""
    edges = sorted({0, n, *(min(k * block, n) for k in timeline)})
    return [slice(a, b) for a, b in itertools.pairwise(edges) if b > a]


@pytest.mark.parametrize("block", [2048, 4096])
def test_forward_in_nn_matches_the_engine_while_concepts_switch(block, nn, demo_nn):
    model, delay, bank, steered = demo_nn
    attrs = {c["name"]: c["attribute"] for c in read_metadata(steered)["concepts"]}
    timeline = {k * 2048 // block: v for k, v in TIMELINE.items()}  # the same moments in seconds
    x = audio(model.sr, BUFFERS * 2048 / model.sr + 0.1)[:, : BUFFERS * 2048]
    y, lat = _host_forward(nn, steered, x, block, timeline)
    y = y[:, lat:]  # nn~'s own latency (2 buffers - 1 vector) removed; the model's delay stays in both
    ref = EngineTimeline(model, bank.parent / "sae", bank, attrs, block, delay).forward(x, timeline)
    plain = EngineTimeline(model, bank.parent / "sae", bank, attrs, block, delay).forward(x, {})
    n = y.shape[1]
    for seg in _segments(timeline, block, n):
        peak = float(np.abs(ref[:, seg]).max())
        err = float(np.abs(y[:, seg] - ref[:, seg]).max())
        where = f"samples {seg.start}-{seg.stop}"
        assert err <= 1e-4 * peak, f"{where}: nn~ differs from the engine by {err:.2e} (peak {peak:.3f})"
        if seg.start >= delay:
            assert peak > 1e-3, f"{where}: silent output, nothing compared"
    edit = slice(EDIT_ONLY[0] * 2048, EDIT_ONLY[1] * 2048)
    moved = float(np.abs(ref[:, edit] - plain[:, edit]).max())
    assert moved > 0.2 * float(np.abs(plain[:, edit]).max()), f"the concept edits moved the output by only {moved:.4f}"


@pytest.mark.parametrize("block", [2048, 4096])
def test_encode_then_decode_in_nn_matches_the_engine(block, nn, steered_ts, nn_bank, tiny_model):
    """[nn~ m encode B] → [nn~ m decode B] with the switches sent to the decode object: the latents cross nn~
    exactly (sampled at the end of each ratio window), and decode steers them like the engine."""
    model, delay = tiny_model
    attrs = {c["name"]: c["attribute"] for c in read_metadata(steered_ts)["concepts"]}
    timeline = {k * 2048 // block: v for k, v in TIMELINE.items() if k not in (7, 9, 10)}  # no mix in decode
    x = audio(model.sr, 12 * 2048 / model.sr + 0.1)[:, : 12 * 2048]
    enc = nn.NnHost(torch.jit.load(str(steered_ts)), "encode", block)
    dec = nn.NnHost(torch.jit.load(str(steered_ts)), "decode", block)
    latents = nn.run(enc, x)
    torch.manual_seed(0)
    y = nn.run(dec, latents, timeline)
    # what the decode object receives: encode's frames, nn~'s latency later, read at the end of each window
    stream = model.new_stream()
    z = torch.cat(
        [stream.encode_mean(torch.from_numpy(x[None, :, i : i + block])) for i in range(0, x.shape[1], block)], -1
    )[0]
    shift = 2 * block // model.ratio - 1  # window k reads frame k + 1 - 2·block/ratio
    seen = torch.zeros_like(z)
    seen[:, shift:] = z[:, : z.shape[1] - shift]
    ref = EngineTimeline(model, nn_bank.parent / "sae", nn_bank, attrs, block, delay).decode(seen, timeline)
    plain = EngineTimeline(model, nn_bank.parent / "sae", nn_bank, attrs, block, delay).decode(seen, {})
    lat = dec.latency
    n = x.shape[1] - lat
    peak = float(np.abs(ref).max())
    err = float(np.abs(y[:, lat:] - ref[:, :n]).max())
    assert err < 1e-4 * peak, f"encode → decode in nn~ differs from the engine by {err:.2e} (peak {peak:.3f})"
    assert float(np.abs(ref - plain).max()) > 0.2 * peak
