"""The engine on the tiny RAVE, driven through its own audio callback from arrays (file mode)."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from realtime.audio_io import run_file
from realtime.controls import Controls, Snapshot
from realtime.engine import Engine
from realtime.processor import BlockProcessor, choose_blocksize
from sae.errors import UserError
from sae.model import SAEConfig, SparseAutoencoder
from sae.steering import Edit, EditState

# file mode waits for each block (`run_file`), and the one real-time pace test asserts only a lower bound: nothing
# here has a deadline a busy machine could make it miss, so it runs with the rest
pytestmark = pytest.mark.clock_free


def _signal(sr: int, seconds: float, channels: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(sr * seconds)) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(len(t))
    cols = [tone * (1.0 if c == 0 else 0.5) for c in range(channels)]
    return np.stack(cols, axis=1).astype(np.float32)


def _run(rave_model, sae, state, data, blocksize=1024, period=256, **controls):
    proc = BlockProcessor(rave_model, sae, blocksize, channels=data.shape[1], stereo=controls.pop("stereo", "mid"))
    ctl = Controls(state, **controls)
    with Engine(proc, ctl, period=period) as engine:
        out = run_file(engine, data)
    return out, engine


def _take_with_switches(proc, controls, data, concept: str, switches: dict[int, str]):
    """Run `data` through an engine on `proc`, switching `concept` to each mode at its input frame (on the period
    that holds it); returns the output and the edit each block ran with."""

    def on_period(n):
        for at, mode in switches.items():
            if n == at // 256 * 256:
                with controls.transaction() as draft:
                    draft.state.set_mode(concept, mode)

    with Engine(proc, controls, period=256) as engine:
        engine.trace = []
        out = run_file(engine, data, on_period=on_period)
    assert [a for a, _ in engine.trace] == list(range(0, proc.blocksize * len(engine.trace), proc.blocksize))
    return out, [snap.edit for _, snap in engine.trace]


def test_blocksize_is_chosen_or_validated(rave_model):
    assert rave_model.ratio == 512
    assert choose_blocksize(512, None) == 2048
    assert choose_blocksize(512, 1536) == 1536
    with pytest.raises(UserError, match="multiple of the model's 512"):
        choose_blocksize(512, 1000)
    with pytest.raises(UserError, match="blocksize 5120000000: expected at most 65536 frames"):
        choose_blocksize(512, 5120000000)  # a multiple of the ratio: rings of tens of GB, a hang in the timing
    with pytest.raises(UserError, match="multiple"):
        BlockProcessor(rave_model, None, 700)


def test_sae_of_the_wrong_width_is_refused(rave_model):
    wrong = SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4))
    with pytest.raises(UserError, match="latent size 16"):
        BlockProcessor(rave_model, wrong, 1024)


def test_bypass_returns_the_input_exactly_with_latency_removed(rave_model, latent_sae, bank):
    data = _signal(rave_model.sr, 1.0)
    state = EditState.from_concepts(64, bank.concepts)
    out, engine = _run(rave_model, latent_sae, state, data, bypass=True)
    assert engine.counters.underruns == 0 and engine.model.errors == 0
    assert engine.latency.engine == engine.prefill + rave_model.alignment().aligned
    assert engine.latency.first_response == rave_model.delay() <= engine.latency.model_delay
    np.testing.assert_array_equal(out, data)


def test_identity_edit_equals_plain_rave_and_edits_change_the_sound(rave_model, latent_sae, bank):
    data = _signal(rave_model.sr, 1.0)
    plain, _ = _run(rave_model, None, EditState(64), data)
    state = EditState.from_concepts(64, bank.concepts)
    state.set_mode("noisy", "none")  # bank default is off: make every concept neutral
    neutral, _ = _run(rave_model, latent_sae, state, data)
    np.testing.assert_array_equal(neutral, plain)
    assert np.abs(plain).max() > 0
    state.set_mode("bright", "on:8")
    steered, engine = _run(rave_model, latent_sae, state, data)
    assert engine.model.errors == 0
    assert np.abs(steered - plain).max() > 1e-3 * np.abs(plain).max()


def test_an_edit_switched_mid_stream_equals_the_offline_render_on_the_same_blocks(rave_model, latent_sae, bank):
    """on, clamp (floors), scale, ramps between them and the level gate: the live take, sample for sample."""
    from realtime.render_rave import RaveStream, render_array

    data = _signal(rave_model.sr, 1.5)
    data[30000:42000] *= 0.003  # a quiet stretch: the gate keeps `on` / `clamp` off it
    state = EditState.from_concepts(64, bank.concepts)
    controls = Controls(state)  # noisy starts off (bank default), bright neutral
    proc = BlockProcessor(rave_model, latent_sae, 1024)
    switches = {15000: "on:6", 28000: "clamp:2", 45000: "scale:0.25"}
    out, edits = _take_with_switches(proc, controls, data, "bright", switches)
    out = out[:, 0]
    assert len({id(e) for e in edits}) == 4  # the three switches landed on blocks of this take
    offline = render_array(RaveStream(rave_model), data[:, 0], latent_sae, edits=edits, block=1024, delay=proc.delay)
    np.testing.assert_array_equal(out, offline)
    plain = render_array(RaveStream(rave_model), data[:, 0], latent_sae, edits=[edits[0]], block=1024, delay=proc.delay)
    assert np.abs(out - plain).max() > 1e-3 * np.abs(plain).max()  # and the switches did change the sound


def test_off_with_a_detector_of_playing_alone_live_equals_the_offline_render(rave_model, latent_sae, bank):
    """`noisy` with a detector that calls about half of this take's frames alone, switched none → off → none →
    off: the live take equals the offline render of the same blocks' edits sample for sample (the detector's
    memory runs on every block, `off` or not), and the detector changed it."""
    from dataclasses import replace

    from realtime.render_rave import RaveStream, render_array
    from sae.alone import memory_rows
    from sae.bank import ConceptAlone
    from training.rave.collect import activations_of

    data = _signal(rave_model.sr, 1.5)
    z = activations_of(rave_model, data[:, 0], ["latent"], 1 << 30)["latent"]
    with torch.no_grad():
        m = memory_rows(latent_sae.encode(z), rave_model.ratio / rave_model.sr, 0.3)
    coef = torch.randn(64, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    threshold = float(torch.sigmoid(m @ coef).median())
    alone = ConceptAlone(0.3, 0.0, tuple(coef.tolist()), threshold, (0.0,) * 16)
    concepts = {**bank.concepts, "noisy": replace(bank.get("noisy"), alone=alone)}
    controls = Controls(EditState.from_concepts(64, concepts))
    proc = BlockProcessor(rave_model, latent_sae, 1024, alone={"noisy": alone})
    switches = {0: "none", 15000: "off", 30000: "none", 45000: "off"}
    out, edits = _take_with_switches(proc, controls, data, "noisy", switches)
    assert {bool(e.alone) for e in edits} == {True, False}
    offline = render_array(RaveStream(rave_model), data[:, 0], latent_sae, edits=edits, block=1024, delay=proc.delay)
    np.testing.assert_array_equal(out[:, 0], offline)
    bare = [replace(e, alone={}) for e in edits]
    plain = render_array(RaveStream(rave_model), data[:, 0], latent_sae, edits=bare, block=1024, delay=proc.delay)
    assert not np.array_equal(out[:, 0], plain)


def test_mix_and_edit_changes_ramp_over_one_block(rave_model, latent_sae):
    proc = BlockProcessor(rave_model, latent_sae, 1024, delay=0)
    block = _signal(rave_model.sr, 1024 / rave_model.sr)
    wet_snap = Snapshot(Edit.identity(64), 1.0, False, 0)
    proc.process(block, wet_snap)
    # dry → from wet to dry over the next block: out = dry + (wet - dry) * (1 - (i+1)/B)
    twin = BlockProcessor(rave_model, latent_sae, 1024, delay=0)
    twin.process(block, wet_snap)
    wet = twin.process(block, wet_snap)
    out = proc.process(block, Snapshot(Edit.identity(64), 1.0, True, 1))
    w = 1.0 - np.arange(1, 1025, dtype=np.float32)[:, None] / 1024
    np.testing.assert_allclose(out, block + (wet - block) * w, atol=1e-6)
    np.testing.assert_array_equal(proc.process(block, Snapshot(Edit.identity(64), 1.0, True, 2)), block)


def test_stereo_mid_and_per_channel(rave_model, latent_sae):
    data = _signal(rave_model.sr, 0.5, channels=2)
    mid, _ = _run(rave_model, None, EditState(64), data, stereo="mid")
    assert mid.shape == data.shape
    np.testing.assert_array_equal(mid[:, 0], mid[:, 1])  # one stream on (L+R)/2, copied to both sides
    same = np.repeat(data[:, :1], 2, axis=1)
    per, engine = _run(rave_model, None, EditState(64), same, stereo="channels")
    assert len(engine.processor.streams) == 2
    mono, _ = _run(rave_model, None, EditState(64), same[:, :1])
    # the untrained tiny RAVE is quiet from silent caches (peak ~3e-5): tolerances are relative to its peak
    peak = np.abs(mono).max()
    assert peak > 1e-5
    # independent streams, same input → same output up to the decoder's own noise draws
    np.testing.assert_allclose(per[:, 0], per[:, 1], atol=1e-2 * peak)
    np.testing.assert_allclose(per[:, :1], mono, atol=1e-2 * peak)


def test_realtime_pace_takes_real_time(rave_model):
    import time

    data = _signal(rave_model.sr, 0.5)
    proc = BlockProcessor(rave_model, None, 1024)
    with Engine(proc, Controls(EditState(64), bypass=True), period=512) as engine:
        t0 = time.perf_counter()
        out = run_file(engine, data, realtime=True)
        took = time.perf_counter() - t0
    assert took >= 0.5
    assert out.shape == data.shape
    torch.set_num_threads(1)


def test_live_view_shows_concepts_levels_cpu_and_latency(rave_model, latent_sae, bank):
    from rich.console import Console

    from realtime.live_view import render, status_line

    state = EditState.from_concepts(64, bank.concepts)
    state.set_mode("bright", "on:2")
    state.set_mode("noisy", "clamp:0.004")  # was `clamp 0.00`, a value clamp refuses
    state.set_feature_gain(5, -0.001)  # was `-0.00`
    proc = BlockProcessor(rave_model, latent_sae, 1024)
    with Engine(proc, Controls(state, mix=0.5), period=256) as engine:
        run_file(engine, _signal(rave_model.sr, 0.3))
    console = Console(record=True, width=160)
    console.print(render(engine))
    text = console.export_text()
    assert "0.004" in text and "-0.001" in text and "0.00 " not in text, text
    assert f"latency {engine.latency.total} samples" in text
    assert "bright" in text and "noisy" in text and "mix 0.50" in text
    assert "dB" in text and "rave" in text and "underruns 0" in text, text
    assert "sae" in status_line(engine) and engine.model.stats.sae_s > 0
    # a terminal too short for the view shows its top only: the modes and the concepts' rows came after ten rows
    # of levels, counters and fixed settings, and a 24-line terminal never showed some of them (hunt 147)
    lines = text.splitlines()
    first = {key: next(i for i, line in enumerate(lines) if key in line) for key in ("mix 0.50", "noisy", "xruns")}
    assert first["mix 0.50"] < first["noisy"] < first["xruns"] and first["noisy"] < 12, text


def test_the_live_view_tells_an_old_problem_from_a_new_one_and_says_the_time(rave_model, latent_sae, bank):
    """Hunt 210: one device hiccup 5 s into a show read as the current "last problem", in yellow, 20 minutes later,
    and neither the view nor the status line said the time to compare it with."""
    from rich.console import Console

    from realtime.live_view import problem, render, status_line

    proc = BlockProcessor(rave_model, latent_sae, 8192)
    with Engine(proc, Controls(EditState.from_concepts(64, bank.concepts)), period=1024) as engine:
        run_file(engine, _signal(rave_model.sr, 2.0))
        engine.report("device", "skipped 2 cycle(s)")
        at = engine.events[-1].at_s  # (file mode's input, and its padding while the output comes out)
        assert problem(engine) == (f"device at {at:.1f} s: skipped 2 cycle(s)", "yellow")  # new: a warning
        run_file(engine, _signal(rave_model.sr, 62.0))  # a minute on
    age, played = int(engine.stream_s - at), int(engine.stream_s)
    assert 62 <= age < 70 and played >= 64, (age, played)
    assert problem(engine) == (f"device at {at:.1f} s (0:01:{age - 60:02d} ago): skipped 2 cycle(s)", "dim")
    line = status_line(engine)
    assert re.match(rf"blocks \d+ \(0:01:{played - 60:02d} played\)  cpu", line), line
    console = Console(record=True, width=160)
    console.print(render(engine))
    assert f"0:01:{played - 60:02d}" in console.export_text()


def test_live_view_shows_the_last_rejected_osc_message_whole(rave_model, latent_sae, bank, tmp_path):
    """The view's osc row cut the last error at 60 characters, mid-word and glued to the count:
    `20 rejected /preset/load: preset '': expected a preset name from the pre`."""
    from pythonosc.osc_message_builder import OscMessageBuilder
    from rich.console import Console

    from realtime.live_view import render
    from realtime.osc import OscControl

    controls = Controls(EditState.from_concepts(64, bank.concepts))
    osc = OscControl(controls, preset_dir=tmp_path)
    msg = OscMessageBuilder("/preset/load")
    msg.add_arg("")
    osc.handle(msg.build().dgram)
    with Engine(BlockProcessor(rave_model, latent_sae, 1024), controls, period=256) as engine:
        console = Console(record=True, width=200)
        console.print(render(engine, osc))
    text = console.export_text()
    want = "1 packets, 1 rejected; last: /preset/load: preset '': expected a preset name from the preset folder"
    assert want + " (letters, digits, _ . -; at most 100 characters)" in text, text
    # the plain status line (--no-view, a pipe) said only `osc 1 packets, 1 rejected`: which one, and why, nowhere
    from realtime.live_view import status_line

    line = status_line(engine, osc)
    assert "osc 1 packets, 1 rejected (last: /preset/load: preset '': expected a preset name" in line, line
    for address in ("/[/oops]", "/[bold red]x"):  # a sender's text as sent, not rich markup (it froze the view)
        osc.handle(OscMessageBuilder(address).build().dgram)
        console = Console(record=True, width=200)
        console.print(render(engine, osc))
        assert f"last: {address}" in console.export_text()
    # hunt 90: an address may hold any byte but NUL; a newline split the status line, ESC[2J cleared the screen
    osc.handle(OscMessageBuilder("/vol\n\x1b[2J").build().dgram)
    console = Console(record=True, width=200)
    console.print(render(engine, osc))
    for shown in (status_line(engine, osc), console.export_text()):
        assert "\x1b" not in shown and "/vol\\n\\x1b[2J: unknown address" in shown, shown
    assert "\n" not in status_line(engine, osc)


def test_an_inner_hook_steers_live_as_the_offline_render_does(rave_model):
    """Concepts on an inner layer: each stream runs in two parts around it (`realtime.rave_split`), live as
    offline."""
    from realtime.rave_split import hook_shape, split_hooks
    from realtime.render_rave import RaveStream, render_array

    hook = next(h for h in split_hooks(rave_model) if h.startswith("decoder.net."))
    width = hook_shape(rave_model, hook)[0]
    torch.manual_seed(1)
    sae = SparseAutoencoder(SAEConfig(d_in=width, d_sae=4 * width, k=4, hook_name=hook)).eval()
    state = EditState.from_concepts(4 * width, {"x": {"features": [{"index": i, "typical": 1.0} for i in range(6)],
                                                      "default": {"mode": "none"}}})  # fmt: skip
    controls = Controls(state)
    proc = BlockProcessor(rave_model, sae, 1024, hook=hook)
    data = _signal(rave_model.sr, 1.0)

    out, edits = _take_with_switches(proc, controls, data, "x", {12800: "on:4"})
    out = out[:, 0]
    assert len({id(e) for e in edits}) == 2
    offline = render_array(RaveStream(rave_model), data[:, 0], sae, edits=edits, block=1024, delay=proc.delay,
                           hook=hook)  # fmt: skip
    np.testing.assert_array_equal(out, offline)
    plain = render_array(RaveStream(rave_model), data[:, 0], sae, edits=[edits[0]], block=1024, delay=proc.delay,
                         hook=hook)  # fmt: skip
    assert np.abs(out - plain).max() > 1e-3 * np.abs(plain).max()
    with pytest.raises(UserError, match=f"expected {hook}'s width {width}"):
        BlockProcessor(rave_model, SparseAutoencoder(SAEConfig(d_in=width + 1, d_sae=8, k=2)), 1024, hook=hook)


def test_a_stereo_model_live_equals_the_offline_render_in_stereo(stereo_rave_model, latent_sae, bank):
    """A two-channel RAVE takes both sides and gives both back, live as offline (an edit switched mid-take included):
    the offline render mixed them to mono and averaged the model's two outputs."""
    from realtime.render_rave import RaveStream, render_array

    model = stereo_rave_model
    data = _signal(model.sr, 1.0, channels=2)
    data[:, 1] = np.roll(data[:, 1], 3000)  # the sides differ
    controls = Controls(EditState.from_concepts(64, bank.concepts))
    proc = BlockProcessor(model, latent_sae, 1024, channels=2)

    out, edits = _take_with_switches(proc, controls, data, "bright", {20480: "on:6"})
    assert out.shape == data.shape and len({id(e) for e in edits}) == 2
    offline = render_array(RaveStream(model), data, latent_sae, edits=edits, block=1024, delay=proc.delay)
    assert offline.shape == data.shape
    np.testing.assert_array_equal(out, offline)
    assert np.abs(out[:, 0] - out[:, 1]).max() > 1e-2 * np.abs(out).max()  # two sides, not one copied
    swapped = render_array(RaveStream(model), data[:, ::-1], latent_sae, edits=edits, block=1024, delay=proc.delay)
    assert not np.array_equal(swapped, offline)  # the model heard each side (a mono mix is the same both ways round)


def test_a_stereo_models_gate_hears_each_side_not_their_mix(stereo_rave_model, latent_sae, bank):
    """Hunt 101: the gate measured the sides' mean, so loud sides in opposite phase (wide stereo) were silence to
    it and `on` changed nothing; live and the offline render still agree on such a take."""
    from realtime.render_rave import RaveStream, render_array

    model = stereo_rave_model
    data = _signal(model.sr, 0.5, channels=2)
    data[:, 1] = -data[:, 0]  # each side at -13 dBFS; their mix is silence
    controls = Controls(EditState.from_concepts(64, bank.concepts))
    proc = BlockProcessor(model, latent_sae, 1024, channels=2)
    out, edits = _take_with_switches(proc, controls, data, "bright", {2048: "on:6"})
    offline = render_array(RaveStream(model), data, latent_sae, edits=edits, block=1024, delay=proc.delay)
    plain = render_array(RaveStream(model), data, block=1024, delay=proc.delay)
    np.testing.assert_array_equal(out, offline)
    assert np.abs(offline - plain).max() > 1e-3 * np.abs(plain).max(), "the `on` edit did nothing"


def test_every_mode_that_edits_has_a_colour_in_the_view():
    """`clamp` showed dim in the view, as `none` does: a performer could not see at a glance that it acts."""
    from realtime.live_view import MODE_STYLES
    from sae.controls import ALL_MODES

    assert set(MODE_STYLES) == set(ALL_MODES) - {"none"}


def test_file_mode_waits_for_a_model_slower_than_real_time(rave_model, latent_sae, bank):
    """`live --in --out` as fast as it goes, with headroom above a block and a model 2.5 times slower than real
    time: the model thread took the fed-ahead input for lateness and skipped blocks (silent holes in the file)."""
    import time

    data = _signal(rave_model.sr, 0.5)
    proc = BlockProcessor(rave_model, latent_sae, 1024)
    process = proc.process

    def slow(block, snap):
        time.sleep(2.5 * proc.blocksize / proc.sr)
        return process(block, snap)

    proc.process = slow
    controls = Controls(EditState.from_concepts(64, bank.concepts), bypass=True)
    with Engine(proc, controls, period=256, headroom=3.0) as engine:
        out = run_file(engine, data)
    assert engine.model.resyncs == 0 and engine.deadlines
    np.testing.assert_array_equal(out, data)


@pytest.mark.parametrize(("bad", "bypass"), [(float("nan"), False), (float("inf"), True)])
def test_nan_or_inf_input_is_played_as_silence(rave_model, latent_sae, bank, bad, bypass):
    """One NaN from another JACK client reached the speakers (through the dry path) and counted as a model failure;
    it is now the same as a zero there, wet or dry."""
    data = _signal(rave_model.sr, 0.5)
    data[5000, 0] = bad
    zeroed = data.copy()
    zeroed[5000, 0] = 0.0
    state = EditState.from_concepts(64, bank.concepts)
    out, engine = _run(rave_model, latent_sae, state, data, bypass=bypass, mix=0.5)
    clean, _ = _run(rave_model, latent_sae, state, zeroed, bypass=bypass, mix=0.5)
    assert np.isfinite(out).all() and engine.model.errors == 0 and engine.processor.nonfinite_in == 1
    from realtime.live_view import status_line

    assert "NaN/inf input samples 1 (played as silence)" in status_line(engine)  # said, not only silenced
    np.testing.assert_array_equal(out, clean)


def test_closing_twice_leaves_what_reuses_its_pipes_numbers_alone(rave_model, latent_sae):
    """The second close closed the pipe's numbers again, which a UDP socket opened in between had taken."""
    import socket

    engine = Engine(BlockProcessor(rave_model, latent_sae, 1024), Controls(EditState(64)), period=256)
    engine.close()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        engine.close()
        sock.bind(("127.0.0.1", 0))  # Bad file descriptor, had its number been closed


def test_a_take_in_file_mode_holds_its_output_once(rave_model, latent_sae, bank, tmp_path):
    """Hunt 210: `live --in/--out` held the input padded (a copy), a padded output and, writing, a clipped copy and
    the NaN check's masks: an hour's stereo take at 48 kHz took 6 GB. The take is fed period by period and only its
    aligned output is kept; the writer and the clipping note go a chunk at a time."""
    import tracemalloc

    from realtime.audio_files import clipping_note, write_audio

    data = _signal(rave_model.sr, 20.0, channels=2)
    proc = BlockProcessor(rave_model, latent_sae, 1024, channels=2)
    with Engine(proc, Controls(EditState.from_concepts(64, bank.concepts), bypass=True)) as engine:
        tracemalloc.start()
        try:
            out = run_file(engine, data)
            ran = tracemalloc.get_traced_memory()[1]
            tracemalloc.reset_peak()
            write_audio(tmp_path / "take.wav", out, rave_model.sr)
            assert clipping_note("take.wav", out) is None
            wrote = tracemalloc.get_traced_memory()[1] - out.nbytes
        finally:
            tracemalloc.stop()
    np.testing.assert_array_equal(out, data)  # bypassed: the input, aligned, to its last frame
    assert ran < 1.3 * data.nbytes and wrote < 0.3 * data.nbytes, (ran / data.nbytes, wrote / data.nbytes)


def test_a_show_started_again_after_its_device_came_back_goes_on_counting_its_time(rave_model, latent_sae, bank):
    """`live --reconnect` starts again in a new process: the status line, the view and every event time restarted at
    0:00:00 an hour into a show, so a problem after the restart read as one at its start (n58's left item)."""
    from realtime.live_view import problem, status_line

    proc = BlockProcessor(rave_model, latent_sae, 1024)
    with Engine(proc, Controls(EditState.from_concepts(64, bank.concepts)), period=256) as engine:
        engine.earlier_s = 3600.0  # what `live` carries over a restart (`ResumeState.played_s`)
        run_file(engine, _signal(rave_model.sr, 2.0))
        engine.report("device", "back")
    at = engine.events[-1].at_s
    assert 3602 <= at < 3604, at
    assert problem(engine) == (f"device at {at:.1f} s: back", "yellow")  # new, not an hour old
    assert re.match(r"blocks \d+ \(1:00:0[23] played\)  cpu", status_line(engine)), status_line(engine)


def test_a_device_latency_portaudio_reports_past_reason_is_counted_as_0_and_said(monkeypatch, rave_model, latent_sae):
    """Hunt 213: a JACK client whose ports report no latency taken as the device: PortAudio's unsigned −256 frames
    printed "latency 8589939313 samples = 194783204.4 ms", and /state/latency answered it to a DAW. Counted as 0
    now, and said; a name typed in full in other case is that device, not two that hold it."""
    import realtime.audio_io as audio_io

    devices = [
        {"name": "USB Audio CODEC", "max_input_channels": 2, "max_output_channels": 2, "hostapi": 0},
        {"name": "USB Audio CODEC-01", "max_input_channels": 2, "max_output_channels": 2, "hostapi": 0},
    ]

    class OpenedStream:
        def __init__(self, **kwargs):
            self.latency = (97391.3, 0.0058)

    class FakeSd:
        PortAudioError = RuntimeError
        Stream = OpenedStream

        @staticmethod
        def query_devices(device=None, kind=None):
            return devices if device is None else devices[device]

        @staticmethod
        def query_hostapis(index):
            return {"name": "ALSA"}

        @staticmethod
        def check_input_settings(**kwargs):
            pass

        check_output_settings = check_input_settings

    monkeypatch.setattr(audio_io, "_sounddevice", lambda: FakeSd)
    assert audio_io.find_device("usb audio codec") == 0
    engine = Engine(BlockProcessor(rave_model, latent_sae, 1024), Controls(EditState(64)), period=256)
    try:
        audio_io.open_duplex(engine, "usb audio codec")
        assert (engine.latency.device_in, engine.latency.device_out) == (0, round(0.0058 * 44100))
        assert engine.latency.total < 44100, engine.latency.describe()
        said = engine.events[-1]
        assert said.kind == "device" and "reported a device latency of 97391.3 s in and 0.0058 s out" in said.message
    finally:
        engine.close()
