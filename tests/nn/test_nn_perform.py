"""The exported file driven the way nn~ drives it (tests/nn/nn_host.py), against musicsae's own live engine on
the same audio and the same timeline of concept switches."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from realtime.controls import Snapshot
from realtime.processor import BlockProcessor
from sae.alone import check_detectors
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

    def __init__(
        self, model, sae_dir: Path, bank_path: Path, attrs: dict[str, str], block: int, delay: int, hook="latent"
    ):
        bank = ConceptBank.load(bank_path)
        sae = script_sae(load_sae(sae_dir))
        concepts = {c.name: c for c in bank}
        self.state = EditState.from_concepts(int(sae.W_dec.shape[0]), concepts)
        alone = check_detectors(self.state.alone, int(sae.W_dec.shape[0]), int(sae.W_dec.shape[1]))
        self.proc = BlockProcessor(model, sae, block, channels=model.channels, delay=delay, hook=hook, alone=alone)
        self.names = {a: n for n, a in attrs.items()}
        self.mix, self.bypass = 1.0, False

    def apply(self, attr: str, atoms: tuple) -> None:
        if attr == "mix":
            self.mix = float(atoms[0])
        elif attr == "bypass":
            self.bypass = bool(atoms[0])
        elif attr == "gate":  # the engine reads its gate per block
            self.proc.gate = dataclasses.replace(self.proc.gate, enabled=bool(atoms[0]))
        elif attr == "gate_db":
            self.proc.gate = dataclasses.replace(self.proc.gate, lo_db=float(atoms[0]), hi_db=float(atoms[1]))
        else:
            name, (mode, value) = self.names[attr], atoms
            self.state.set_mode(name, f"{mode}:{float(value)}" if mode in ("on", "clamp", "scale") else mode)

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
            z, _ = self.proc._steer(frames[None, :, k * per : (k + 1) * per], edit)
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


def check_forward(
    nn, model, delay: int, bank: Path, steered: Path, block: int, timeline: dict, edit_only, silent=()
) -> None:
    """nn~ (`forward`, threaded, `block`) against the engine under the same switches: equal sample for sample
    (1e-4 of each stretch's peak) once nn~'s own latency is removed, while the edits move the sound a lot.
    `silent`: 2048-sample buffers of the input set to silence (where the gate keeps `on` / `clamp` out)."""
    meta = read_metadata(steered)
    attrs = {c["name"]: c["attribute"] for c in meta["concepts"]}
    timeline = {k * 2048 // block: v for k, v in timeline.items()}  # the same moments in seconds
    x = audio(model.sr, BUFFERS * 2048 / model.sr + 0.1, model.channels)[:, : BUFFERS * 2048]
    for k in silent:
        x[:, k * 2048 : (k + 1) * 2048] = 0.0
    y, lat = _host_forward(nn, steered, x, block, timeline)
    y = y[:, lat:]  # nn~'s own latency (2 buffers - 1 vector) removed; the model's delay stays in both
    engine = [EngineTimeline(model, bank.parent / "sae", bank, attrs, block, delay, meta["hook"]) for _ in "ab"]
    ref, plain = engine[0].forward(x, timeline), engine[1].forward(x, {})
    n = y.shape[1]
    for seg in _segments(timeline, block, n):
        peak = float(np.abs(ref[:, seg]).max())
        err = float(np.abs(y[:, seg] - ref[:, seg]).max())
        where = f"samples {seg.start}-{seg.stop}"
        assert err <= 1e-4 * peak, f"{where}: nn~ differs from the engine by {err:.2e} (peak {peak:.3f})"
        if seg.start >= delay:
            assert peak > 1e-3, f"{where}: silent output, nothing compared"
    edit = slice(edit_only[0] * 2048, edit_only[1] * 2048)
    moved = float(np.abs(ref[:, edit] - plain[:, edit]).max())
    assert moved > 0.2 * float(np.abs(plain[:, edit]).max()), f"the concept edits moved the output by only {moved:.4f}"


@pytest.mark.parametrize("block", [2048, 4096])
def test_forward_in_nn_matches_the_engine_while_concepts_switch(block, nn, demo_nn):
    check_forward(nn, *demo_nn, block, TIMELINE, EDIT_ONLY)


def test_batchtopk_sae_in_nn_matches_the_engine(nn, nn_files, demo_nn, tmp_path):
    model, delay, _, _ = demo_nn
    bank = nn_files.make_bank(tmp_path / "btk", model.path, arch="batchtopk")
    steered = nn_files.export(model.path, bank, tmp_path / "btk.ts")
    assert read_metadata(steered)["sae"]["arch"] == "batchtopk"
    check_forward(nn, model, delay, bank, steered, 2048, TIMELINE, EDIT_ONLY)


def test_gains_of_concepts_sharing_a_feature_compose_in_nn_as_in_the_engine(nn, nn_files, demo_nn, tmp_path):
    """Hunt 179: twenty concepts at `scale 100` on one feature composed past float32 in the nn~ export, which played
    NaN from then on (RAVE's caches kept it). Gains multiply and are held within ±100 there as in the engine: three
    concepts on `bright`'s features at ±100 (a product of 1e6) sound as the engine plays them."""
    model, delay, _, _ = demo_nn
    path = nn_files.make_bank(tmp_path / "shared", model.path)
    bank = ConceptBank.load(path)
    for name in ("twin", "triplet"):
        bank.add(dataclasses.replace(bank.get("bright"), name=name, probe=None))
    bank.save()
    steered = nn_files.export(model.path, path, tmp_path / "shared.ts")
    timeline = {
        1: [("bright", ("scale", 100.0)), ("twin", ("scale", 100.0)), ("triplet", ("scale", -100.0))],
        4: [("twin", ("none", 0.0))],
        7: [("triplet", ("scale", 0.5))],
    }
    check_forward(nn, model, delay, path, steered, 2048, timeline, (2, 4))


# clamp and the gate: buffers 5-7 of the input are silence; `on` and `clamp` stay out of them while the gate is on
GATED = {
    1: [("bright", ("clamp", 4.0))],
    3: [("noisy_1", ("on", 3.0)), ("c_2nd_voice", ("none", 0.0))],
    5: [("bright", ("clamp", 8.0))],
    8: [("gate", (0,))],
    9: [("gate", (1,)), ("gate_db", (-30.0, -10.0)), ("noisy_1", ("none", 0.0))],
    11: [("bright", ("scale", 0.5)), ("gate_db", (-60.0, -45.0))],
}


def test_clamp_and_gate_in_nn_match_the_engine(nn, demo_nn):
    """`clamp` ramps between buffers and the gate weights `on` / `clamp` per latent frame by the input's level,
    as in the engine; switching the gate off and moving its levels too."""
    check_forward(nn, *demo_nn, 2048, GATED, (1, 3), silent=(5, 6, 7))


def test_gate_keeps_on_and_clamp_off_silence(nn, demo_nn):
    """On silence, `on` and `clamp` leave the output bit for bit as it is without them while the gate is on
    (`gate 1`, the default); `gate 0` paints them in. `decode` has no audio to measure: it is ungated."""
    _, _, _, steered = demo_nn
    x = np.zeros((1, 4 * 2048), np.float32)
    edits = [("bright", ("clamp", "8")), ("noisy_1", ("on", "4"))]

    def run(method: str, signal: np.ndarray, events: list) -> np.ndarray:
        return nn.perform_buffers(torch.jit.load(str(steered)), method, signal, 2048, {1: events})

    plain, gated, painted = (run("forward", x, ev) for ev in ([], edits, [("gate", ("0",)), *edits]))
    peak = float(np.abs(plain).max())
    assert np.array_equal(gated, plain)
    assert float(np.abs(painted - plain)[:, 2 * 2048 :].max()) > 0.1 * peak
    z = run("encode", x, [])
    moved = float(np.abs(run("decode", z, edits) - run("decode", z, []))[:, 2 * 2048 :].max())
    assert moved > 0.1 * peak, f"decode (ungated) moved silence by only {moved:.4f}"


@pytest.mark.slow
def test_stereo_rave_in_nn_matches_the_engine(nn, nn_files, tmp_path, tiny_stereo_rave_ts):
    """A two-channel RAVE (`rave train --channels 2`): two inlets, two outlets, dry/wet per channel."""
    rave_ts = tiny_stereo_rave_ts
    model, delay = nn_files.load_model(rave_ts)
    bank = nn_files.make_bank(tmp_path / "bank", rave_ts, names=("bright", "noisy-1"))  # no detector: near silence
    steered = nn_files.export(rave_ts, bank, tmp_path / "stereo_steered.ts")
    m = torch.jit.load(str(steered))
    assert [int(v) for v in m.forward_params] == [2, 1, 2, 1] and [int(v) for v in m.meter_params] == [2, 1, 2, 512]
    # the untrained tiny model is near silence: keep an `on` edit sounding in every stretch
    timeline = {
        0: [("bright", ("on", 4.0))],
        3: [("bright", ("on", -4.0)), ("noisy_1", ("on", 3.0))],
        6: [("mix", (0.5,))],
        9: [("bypass", (1,))],
        11: [("bypass", (0,)), ("mix", (1.0,)), ("noisy_1", ("scale", 2.0))],
    }
    check_forward(nn, model, delay, bank, steered, 2048, timeline, (0, 6))


def test_meter_in_nn_is_the_banks_probe_per_latent_frame(nn, demo_nn):
    """meter = sigmoid(intercept + coef · running mean of the SAE features), one value per latent frame held for
    `ratio` samples; the same at buffers 2048 and 4096."""
    check_meter(nn, *demo_nn)


def check_meter(nn, model, _delay, bank_path: Path, steered: Path, moves: float = 0.05) -> None:
    """The file's meter against the bank's probe on the SAE's rows at the hook, frame by frame; it moves by
    more than `moves`."""
    from realtime.rave_split import RaveSplit, pool
    from sae.meter import MeterParams, ema_weight, pooled_meter, smooth

    meta = read_metadata(steered)
    x = audio(model.sr, BUFFERS * 2048 / model.sr + 0.1)[:, : BUFFERS * 2048]
    outs = {}
    for block in (2048, 4096):
        host = nn.NnHost(torch.jit.load(str(steered)), "meter", block)
        outs[block] = nn.run(host, x)[:, host.latency :]
    bank = ConceptBank.load(bank_path)
    params = MeterParams.from_concepts({c.name: c for c in bank})
    assert [meta["concepts"][i]["attribute"] for i in range(2)] == meta["meters"]
    sae = script_sae(load_sae(bank_path.parent / "sae"))
    split = RaveSplit(model.new_stream(), meta["hook"])  # the SAE's rows at the hook, pooled per latent frame
    with torch.inference_mode():
        chunks = [torch.from_numpy(x[None, :, i : i + 2048]) for i in range(0, x.shape[1], 2048)]
        rows = torch.cat([pool(split.upto(c), split.steps) for c in chunks], 1)
        f = sae.encode(rows[0]).index_select(-1, params.idx)
    weight = ema_weight(1, model.sr / model.ratio, meta["meter_seconds"])
    state, frames = torch.zeros(f.shape[-1]), []
    for t in range(f.shape[0]):
        state = smooth(state, f[t], weight)
        frames.append(pooled_meter(state, params.coef, params.intercept))
    ref = torch.stack(frames, -1).repeat_interleave(model.ratio, -1).numpy()
    n = outs[4096].shape[1]
    assert float(np.abs(outs[2048][:, :n] - ref[:, :n]).max()) < 1e-5
    assert float(np.abs(outs[4096] - ref[:, :n]).max()) < 1e-5
    assert float(ref[0].max() - ref[0].min()) > moves, "the meter did not move"


@pytest.mark.parametrize("block", [2048, 4096])
def test_encode_then_decode_in_nn_matches_the_engine(block, nn, steered_ts, nn_bank, tiny_model):
    """[nn~ m encode B] → [nn~ m decode B] with the switches sent to the decode object: the latents cross nn~
    exactly (sampled at the end of each ratio window), and decode steers them like the engine."""
    model, delay = tiny_model
    attrs = {c["name"]: c["attribute"] for c in read_metadata(steered_ts)["concepts"]}
    timeline = {  # mix and bypass belong to forward
        k * 2048 // block: [(a, v) for a, v in events if a not in ("mix", "bypass")] for k, events in TIMELINE.items()
    }
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


# inner hooks of the demo RAVE: an encoder layer at two steps per latent frame, a decoder layer after upsampling
INNER_HOOKS = ("encoder.net.15", "decoder.net.4")


@pytest.fixture(params=INNER_HOOKS)
def demo_hook_nn(request, demo_hook_files):
    """(RaveModel, delay, bank, exported file) with the concepts on an inner hook of the demo RAVE."""
    return demo_hook_files(request.param)


def test_inner_hook_in_nn_matches_the_engine(nn, demo_hook_nn):
    """The file runs RAVE in two parts around the hook, edits the pooled rows there (clamp and gate included)
    and spreads the change back, as the engine does (`realtime.rave_split`)."""
    check_forward(nn, *demo_hook_nn, 2048, GATED, (1, 3), silent=(5, 6, 7))
    check_meter(nn, *demo_hook_nn, moves=0.005)  # a seeded SAE on 128 channels: a meter that moves less


def test_inner_hook_edits_in_encode_or_decode(nn, demo_hook_nn):
    """An encoder hook is edited inside `encode` (`decode` is RAVE's own); a decoder hook inside `decode`."""
    model, _, _, steered = demo_hook_nn
    on_encoder = read_metadata(steered)["hook"].startswith("encoder.")
    x = audio(model.sr, 6 * 2048 / model.sr + 0.1)[:, : 6 * 2048]
    edits = {1: [("bright", ("on", "4")), ("noisy_1", ("clamp", "6"))]}

    def run(method: str, signal: np.ndarray, events: dict) -> np.ndarray:
        return nn.perform_buffers(torch.jit.load(str(steered)), method, signal, 2048, events)

    z, z_edit = run("encode", x, {}), run("encode", x, edits)
    y, y_edit = run("decode", z, {}), run("decode", z, edits)
    assert np.array_equal(z, z_edit) != on_encoder
    assert np.array_equal(y, y_edit) == on_encoder
    moved = z_edit - z if on_encoder else y_edit - y
    assert float(np.abs(moved).max()) > 0.1 * float(np.abs(z if on_encoder else y).max())
