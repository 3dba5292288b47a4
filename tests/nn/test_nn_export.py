"""The exported nn~ file as nn~ reads it (methods, attributes, `_params`, setters), its clean state, its names,
and the export's refusals (one line, exit 2, no file)."""

from __future__ import annotations

import json
import math
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
import torch
from torch import nn as tnn

from realtime.rave import RaveModel
from sae.errors import UserError
from training.cli.main import main
from training.rave.nn_export import attribute_name, attribute_names, module_names, read_metadata

ATTRS = ["bright", "noisy_1", "c_2nd_voice", "mix", "bypass", "gate", "gate_db"]


def test_file_reads_as_nn_reads_it(steered_ts, nn, tiny_rave_ts):
    m = torch.jit.load(str(steered_ts))
    assert list(m.get_methods()) == ["forward", "encode", "decode", "meter"]
    params = {name: [int(v) for v in getattr(m, f"{name}_params")] for name in m.get_methods()}
    assert params == {
        "forward": [1, 1, 1, 1],
        "encode": [1, 1, 16, 512],
        "decode": [16, 512, 1, 1],
        "meter": [1, 1, 2, 512],  # bright and noisy-1 carry probes; 2nd.voice has none
    }
    assert list(m.get_attributes()) == ATTRS
    types = {a: [int(v) for v in getattr(m, f"{a}_params")] for a in ATTRS}
    assert types == {
        "bright": [3, 2],
        "noisy_1": [3, 2],
        "c_2nd_voice": [3, 2],
        "mix": [2],
        "bypass": [2],
        "gate": [2],
        "gate_db": [2, 2],
    }
    host = nn.NnHost(m, "forward", 2048)
    assert host.get("bright") == ("none", 1.0)
    assert host.get("c_2nd_voice") == ("off", 1.0)  # the bank's default
    assert host.get("mix") == (1.0,) and host.get("bypass") == (0.0,)
    assert host.get("gate") == (1.0,) and host.get("gate_db") == (-60.0, -45.0)  # the engine's gate
    assert list(m.get_buffer_attributes()) == []
    assert m.get_sample_rate() == 44100
    meta = read_metadata(steered_ts)
    assert {c["name"]: c["attribute"] for c in meta["concepts"]} == {
        "bright": "bright",
        "noisy-1": "noisy_1",
        "2nd.voice": "c_2nd_voice",
    }
    assert meta["meters"] == ["bright", "noisy_1"]
    noisy = next(c for c in meta["concepts"] if c["name"] == "noisy-1")
    assert [f[0] for f in noisy["features"]] == [11, 30]  # its `steer` features, as the engine moves them
    assert meta["methods"] == params
    assert meta["model"]["sha256"] and meta["torch"] == torch.__version__
    # the dry signal of `mix` lines up where the notes come out, as in the engine and renders (it used the first
    # response: at mix 0.5 a comb filter the engine does not make)
    found = RaveModel.load(tiny_rave_ts).alignment()
    assert (meta["delay"], meta["first_response"]) == (found.aligned, found.first_response)
    assert meta["hook"] == "latent" and meta["gate"] == {"enabled": True, "lo_db": -60.0, "hi_db": -45.0}
    assert sorted(p.name for p in steered_ts.parent.iterdir()) == ["steered.ts"]  # no temporary left


def test_the_export_given_where_a_rave_is_expected_is_refused(steered_ts, tmp_path, capsys):
    """Hunt 197: `render rave --model steered.ts` (the export beside the RAVE it came from) rendered with the
    export's default edits and its own dry delay, said "(no edit)", and removed the wrong delay."""
    import numpy as np
    import soundfile as sf

    with pytest.raises(UserError, match=r"steered\.ts: a musicsae nn~ export .* expected the RAVE export it was made"):
        RaveModel.load(steered_ts)
    audio = tmp_path / "in.wav"
    sf.write(audio, np.zeros(4410, np.float32), 44100)
    assert (
        main(["render", "rave", "--in", str(audio), "--out", str(tmp_path / "o.wav"), "--model", str(steered_ts)]) == 2
    )
    err = capsys.readouterr().err
    assert "a musicsae nn~ export" in err and err.count("\n") == 1 and not (tmp_path / "o.wav").exists()


def test_saved_file_starts_from_silence(steered_ts):
    """The registration test calls ran the model: the file must not carry their streaming state."""
    m = torch.jit.load(str(steered_ts))
    caches = [(n, b) for n, b in m.named_buffers() if n.endswith((".cache", ".pad"))]
    assert len(caches) > 50
    assert all(float(b.abs().max()) == 0.0 for _, b in caches if b.numel())
    assert m.dry_history.numel() == 0 and m.meter_state.numel() == 0
    assert not m.edit_started and m.prev_mix == -1.0
    assert torch.equal(m.prev_gain, torch.ones(64)) and torch.equal(m.prev_add, torch.zeros(64))
    assert torch.equal(m.prev_floor, torch.zeros(64))


def test_a_nan_or_inf_sample_is_silence_not_the_end_of_the_sound(steered_ts):
    """Hunt 70: one NaN sample at the inlet (a [/~] by zero upstream) filled RAVE's streaming caches, and every later
    buffer came out NaN until the patch reloaded the model; the live engine silences such samples."""
    torch.manual_seed(0)
    clean = [0.1 * torch.randn(1, 1, 2048) for _ in range(3)]
    bad = clean[0].clone()
    bad[0, 0, 100], bad[0, 0, 200] = float("nan"), float("inf")
    m = torch.jit.load(str(steered_ts))
    with torch.inference_mode():
        assert torch.isfinite(m.forward(bad)).all()
        assert all(torch.isfinite(m.forward(x)).all() for x in clean)
        assert torch.isfinite(m.encode(bad)).all() and all(torch.isfinite(m.encode(x)).all() for x in clean)
        z = m.encode(clean[1])
        z[0, 0, 0] = float("nan")
        assert torch.isfinite(m.decode(z)).all() and torch.isfinite(m.decode(m.encode(clean[2]))).all()
        assert "meter" in m.get_methods()
        assert torch.isfinite(m.meter(bad)).all() and torch.isfinite(m.meter(clean[1])).all()


def test_a_buffer_of_a_partial_frame_is_padded_whatever_the_mix(steered_ts, nn):
    """Hunt 110: from Python (nn~ itself rounds its buffer up to a power of two), a buffer that is no whole number
    of frames came out padded at mix 1, unpadded at bypass 1, and a ramp between the two raised a size mismatch."""
    m = torch.jit.load(str(steered_ts))
    host = nn.NnHost(m, "forward", 2048)
    ratio = int(m.ratio)
    x = 0.1 * torch.randn(1, 1, ratio + ratio // 2 + 1, generator=torch.Generator().manual_seed(0))
    lengths = []
    with torch.inference_mode():
        for name, value in (("mix", 1.0), ("bypass", 1.0), ("bypass", 1.0), ("bypass", 0.0), ("mix", 0.5)):
            assert host.set(name, value) == 0
            lengths.append(m.forward(x).shape[-1])
    assert lengths == [2 * ratio] * 5


def test_setters_accept_what_pd_sends_and_refuse_bad_values(steered_ts, nn):
    host = nn.NnHost(torch.jit.load(str(steered_ts)), "forward", 2048)
    assert host.set("bright", "on", 2) == 0 and host.get("bright") == ("on", 2.0)  # Pd sends "2.000000"
    assert host.set("bright", "clamp", 10) == 0 and host.get("bright") == ("clamp", 10.0)  # CLAMP_LIMIT
    assert host.set("bright", "scale", 0.5) == 0 and host.get("bright") == ("scale", 0.5)
    bad_clamps = (("clamp", 0.0), ("clamp", -1.0), ("clamp", 10.5), ("clamp", math.nan))
    for atoms in (("loud", 1.0), ("ON", 1.0), ("on", math.nan), ("on", 1e9), ("off", -math.inf), *bad_clamps):
        assert host.set("bright", *atoms) == -1, atoms
        assert host.get("bright") == ("scale", 0.5), atoms  # unchanged
    assert host.set("mix", 0.25) == 0 and host.get("mix") == (0.25,)
    assert host.set("mix", 1.5) == -1 and host.get("mix") == (0.25,)
    assert host.set("bypass", 1) == 0 and host.get("bypass") == (1.0,)
    assert host.set("bypass", 2) == -1 and host.get("bypass") == (1.0,)
    assert host.set("gate", 0) == 0 and host.get("gate") == (0.0,)
    assert host.set("gate", 2) == -1 and host.get("gate") == (0.0,)
    for switch in ("bypass", "gate"):  # hunt 91: a slider's "0.500000" was read by nn~'s stoi as 0, without a word
        before = host.get(switch)
        assert host.set(switch, 0.5) == -1 and host.set(switch, 1.9) == -1 and host.get(switch) == before
    assert host.set("gate_db", -50, -30) == 0 and host.get("gate_db") == (-50.0, -30.0)
    # above 0 dBFS: never open; -1e39 is -inf in float32, and a span float32 rounds to 0 gated by NaN (hunt 159)
    for levels in ((-30, -50), (-40, -40), (math.nan, 0), (10, 20), (-10, 5), (-1e39, -45), (-1e-320, 0)):
        assert host.set("gate_db", *levels) == -1 and host.get("gate_db") == (-50.0, -30.0)
    with pytest.raises(ValueError, match="wrong number"):
        host.set("bright", "off")  # nn~ refuses a message with the wrong number of values itself


def test_a_concept_switched_while_buffers_play_is_read_whole(steered_ts):
    """Threaded nn~ runs `set` from the host's message thread while its compute thread plays, with no lock between:
    the setter replaced a string in a list as forward read it, which crashed the host now and then (hunt 86: 5 of
    14 twenty-second runs), and a buffer could play a mode with the other message's value (`on` at 0.01 or `scale`
    at 100). Each call plays one snapshot, and every snapshot is a setting the host sent, as it sent it."""
    from sae.controls import ALL_MODES

    m = torch.jit.load(str(steered_ts))
    sent = {("none", 1.0), ("on", 100.0), ("scale", 0.01)}  # the bank's default, then the two messages
    for _ in range(3):  # past TorchScript's profiling runs: the optimised graphs are what a host plays for hours
        m(torch.zeros(1, 1, 2048))
        m._controls()
    stop = threading.Event()

    def flip() -> None:
        while not stop.is_set():
            m.set_bright("on", 100.0)
            m.set_bright("scale", 0.01)

    seen, calls = set(), 0
    writer = threading.Thread(target=flip)
    writer.start()
    try:  # a second at least, and until both messages were read (a loaded machine may take longer)
        start = time.monotonic()
        while time.monotonic() < start + 1.0 or (len(seen) < 3 and time.monotonic() < start + 30.0):
            ctl = m._controls()
            seen.add((ALL_MODES[int(ctl[0, 0])], float(ctl[0, 1])))
            if calls % 500 == 0:
                m(torch.zeros(1, 1, 2048))
            calls += 1
    finally:
        stop.set()
        writer.join()
    assert seen <= sent and len(seen) >= 2, (seen, calls)
    assert m.get_bright() == ("scale", 0.01) and m.get_gate_db() == (-60.0, -45.0)


def test_the_snapshot_check_survives_torchscripts_optimiser(steered_ts):
    """A snapshot is taken again when the setters' counter moved while it was copied. TorchScript's optimiser merged
    the two reads of an int attribute in a method that writes nothing (a getter), so the check always passed there
    and a getter under a flood of messages returned one message's mode with the other's value."""
    m = torch.jit.load(str(steered_ts))
    for read in (m.get_bright, m.get_gate_db, m._controls):
        for _ in range(3):  # the graph a host runs after TorchScript's profiling runs
            read()
        graph = str(torch.jit.last_executed_optimized_graph())
        assert graph.count('prim::GetAttr[name="controls_seq"]') >= 2, graph


def test_concept_names_become_attributes_or_are_refused():
    assert attribute_name("noisy-1") == "noisy_1"
    assert attribute_name("2nd.voice") == "c_2nd_voice"
    assert attribute_name("Guitar_Lead") == "Guitar_Lead"
    for bad in ("class", "none", "mix", "bypass", "sr", "gate", "gate_db", "guitar\n"):  # `$` matched before \n
        with pytest.raises(UserError, match="cannot be an nn~ attribute"):
            attribute_name(bad)
    taken = module_names()
    for clash in ("forward", "encode", "meter", "methods", "attributes", "concepts", "sample_rate", "rave", "sae"):
        with pytest.raises(UserError, match="clash with the model's own"):
            attribute_names([clash], taken)
    with pytest.raises(UserError, match="both become"):
        attribute_names(["lead-guitar", "lead.guitar"], taken)
    assert attribute_names(["a", "b-c"], taken) == {"a": "a", "b-c": "b_c"}


def test_every_name_the_module_uses_is_reserved(steered_ts):
    """`module_names` (what a concept may not be called) covers every attribute and method of the file."""
    m = torch.jit.load(str(steered_ts))
    attributes = torch._C._jit_debug_module_iterators(m._c)["named_attributes"]
    names = {name for name, _ in attributes} | set(m._c._method_names())
    concepts = {"bright", "noisy_1", "c_2nd_voice"}
    derived = {f"{p}{c}{s}" for c in concepts for p, s in (("", ""), ("get_", ""), ("set_", ""), ("", "_params"))}
    assert names - derived - module_names() == set()


# -- refusals -----------------------------------------------------------------------------------------------------
def _export(capsys, *args: str | Path) -> tuple[int, str]:
    rc = main(["export", "nn", *map(str, args)])
    return rc, capsys.readouterr().err.strip()


class NotStreaming(tnn.Module):
    """Looks like a RAVE export (encode/decode/forward, encode_params, sr) but keeps no state between calls."""

    def __init__(self):
        super().__init__()
        self.register_buffer("encode_params", torch.tensor([1, 1, 4, 512]))
        self.sr = 44100

    @torch.jit.export
    def encode(self, x):
        return torch.nn.functional.avg_pool1d(x, 512).repeat(1, 4, 1)

    @torch.jit.export
    def decode(self, z):
        return z[:, :1].repeat_interleave(512, -1)

    def forward(self, x):
        return self.decode(self.encode(x))


def _bank_copy(nn_bank: Path, tmp_path: Path, edit) -> Path:
    folder = tmp_path / "bank"
    shutil.copytree(nn_bank.parent, folder)
    path = folder / nn_bank.name
    path.write_text(edit(path.read_text()))
    return path


def test_bad_inputs_are_refused_in_one_line_without_a_file(capsys, tmp_path, tiny_rave_ts, nn_bank):
    from sae.export import export_torchscript
    from sae.io import load_sae

    out = tmp_path / "out.ts"
    not_rave = export_torchscript(load_sae(nn_bank.parent / "sae"), tmp_path / "sae.ts")
    not_streaming = tmp_path / "plain.ts"
    torch.jit.script(NotStreaming()).save(str(not_streaming))
    other_sae = tmp_path / "other_sae"
    shutil.copytree(nn_bank.parent / "sae", other_sae)
    cfg = json.loads((other_sae / "cfg.json").read_text())
    cfg.setdefault("musicsae", {})["model"] = {"name": "other.ts", "sha256": "ab" * 32}
    (other_sae / "cfg.json").write_text(json.dumps(cfg))
    mixed = _bank_copy(nn_bank, tmp_path / "mixed", lambda t: t.replace("hook: latent", "hook: encoder.net.3", 1))
    no_hook = _bank_copy(nn_bank, tmp_path / "nohook", lambda t: t.replace("hook: latent", "hook: encoder.3"))
    named_mix = _bank_copy(nn_bank, tmp_path / "mixname", lambda t: t.replace("bright:", "mix:", 1))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    cases = [
        ((not_rave, nn_bank, out), "not a RAVE export"),
        ((not_streaming, nn_bank, out), "not a streaming export"),
        ((tmp_path / "missing.ts", nn_bank, out), "no such file"),
        ((tmp_path, nn_bank, out), f"RAVE model {tmp_path}: a folder, not a file"),  # it said "no such file"
        ((tiny_rave_ts, tmp_path / "missing.yaml", out), "no such file"),
        ((tiny_rave_ts, mixed, out), "sit on 2 hooks (encoder.net.3: bright; latent: noisy-1, 2nd.voice); one nn~"),
        ((tiny_rave_ts, no_hook, out), "hook 'encoder.3': not a hook of tiny_rave.ts"),
        ((tiny_rave_ts, named_mix, out), "cannot be an nn~ attribute"),
        ((tiny_rave_ts, nn_bank, tmp_path / "out.pt"), "expected a file name ending in .ts"),
        ((tiny_rave_ts, nn_bank, a_file / "out.ts"), "is a file, not a folder"),
        ((tiny_rave_ts, nn_bank, tmp_path), "is a folder"),
    ]
    for (model, bank, dest), expected in cases:
        rc, err = _export(capsys, "--model", model, "--bank", bank, "--out", dest)
        assert rc == 2 and expected in err and len(err.splitlines()) == 1, (expected, err)
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--sae", other_sae, "--out", out)
    assert rc == 2 and "no concept of" in err and "was found with it" in err, err
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--sae", tmp_path / "nosae", "--out", out)
    assert rc == 2 and err == f"musicsae: error: SAE {tmp_path / 'nosae'}: no such directory", err  # hunt 70
    two = _two_sae_bank(tmp_path / "two", tiny_rave_ts)  # hunt 70: the advice was --set, which export nn lacks
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", two, "--out", out)
    assert rc == 2 and err.endswith("different SAEs (bright, noisy-1 with " + str((tmp_path / "two/a/sae").resolve())
                                    + f"; dark with {(tmp_path / 'two/b/sae').resolve()}); choose one with --sae or "
                                    "--concepts"), err  # fmt: skip
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", two, "--concepts", "dark", "--out", out)
    assert rc == 0 and out.exists(), err  # the advice works
    out.unlink()
    sae_other_model = _bank_copy(nn_bank, tmp_path / "othermodel", lambda t: t)
    shutil.rmtree(sae_other_model.parent / "sae")
    shutil.copytree(other_sae, sae_other_model.parent / "sae")
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", sae_other_model, "--out", out)
    assert rc == 2 and "was trained on other.ts" in err, err
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--concepts", "bright,cello", "--out", out)
    assert rc == 2 and "cello" in err, err
    own = tmp_path / "own.ts"  # --out naming --model: was overwritten by the export
    shutil.copy(tiny_rave_ts, own)
    rc, err = _export(capsys, "--model", own, "--bank", nn_bank, "--out", tmp_path / "." / "own.ts")
    assert rc == 2 and "it is --model" in err and own.read_bytes() == tiny_rave_ts.read_bytes(), err
    # hunt 197: another RAVE beside it (a sibling .ts) was replaced, by this export and by `sae export`
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--out", own)
    assert rc == 2 and f"--out {own}: a RAVE model; the export would replace it" in err, err
    assert main(["sae", "export", "--sae", str(nn_bank.parent / "sae"), "--out", str(own)]) == 2
    assert "a RAVE model; the export would replace it" in capsys.readouterr().err
    assert own.read_bytes() == tiny_rave_ts.read_bytes()
    assert main(["sae", "export", "--sae", str(nn_bank.parent / "sae"), "--out", str(not_rave)]) == 0  # its own kind
    # was: every concept of the bank, silently ("" is refused by the parser, as by every option)
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--concepts", ",", "--out", out)
    assert rc == 2 and "no concept names" in err, err
    with pytest.raises(SystemExit):
        _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--concepts", "", "--out", out)
    assert "--concepts: expected a value, got an empty string" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # a gate above 0 dBFS never opens: on and clamp would do nothing
        _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--gate-db=10,20", "--out", out)
    assert "--gate-db: '10,20': expected low at least -200 dBFS, high at least 0.1 dB above it and at most 0 dBFS" in (
        capsys.readouterr().err
    )
    for seconds in ("1e9", "0", "nan"):  # 1e9 was accepted: a meter that never moves
        with pytest.raises(SystemExit):
            _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--meter-seconds", seconds, "--out", out)
        assert "at most 60" in capsys.readouterr().err
    from training.rave.nn_export import NnExportConfig, export_nn

    for seconds in (float("nan"), 0.0, 61.0):  # hunt 70: the API exported a meter of NaN forever
        with pytest.raises(UserError, match=r"^meter_seconds \S+: expected a time constant in seconds, > 0 and at"):
            export_nn(NnExportConfig(tiny_rave_ts, nn_bank, out, meter_seconds=seconds), say=lambda _: None)
    assert not out.exists() and not list(tmp_path.glob(".out.ts*"))


def _two_sae_bank(folder: Path, rave_ts: Path) -> Path:
    """A bank with `bright` and `noisy-1` found with one SAE and `dark` with another (both on the latent)."""
    import dataclasses

    from sae.bank import ConceptBank
    from tests.nn.conftest import make_bank

    path = make_bank(folder / "a", rave_ts, seed=0, names=("bright", "noisy-1"))
    dark = ConceptBank.load(make_bank(folder / "b", rave_ts, seed=1, names=("dark", "calm"))).get("dark")
    bank = ConceptBank.load(path)
    bank.add(dataclasses.replace(dark, sae=bank.relative_sae(folder / "b" / "sae")))
    bank.save()
    return path


def test_bank_of_another_model_is_refused(capsys, tmp_path, tiny_rave_ts, nn_bank):
    from training.demo import DEMO_MODEL

    out = tmp_path / "out.ts"
    rc, err = _export(capsys, "--model", DEMO_MODEL, "--bank", nn_bank, "--out", out)
    assert rc == 2 and f"no concept was found on {DEMO_MODEL.name}" in err, err
    rc, err = _export(capsys, "--model", DEMO_MODEL, "--bank", nn_bank, "--concepts", "bright", "--out", out)
    assert rc == 2 and "belongs to model tiny_rave.ts" in err, err
    assert not out.exists()


def test_a_concept_of_another_build_of_the_model_is_named_where_it_is_left_out(capsys, tmp_path, tiny_rave_ts):
    """Hunt 192: a concept found on an earlier build of the same-named model (retrained in place) was left out of the
    nn~ file without a word, so a patch's switch for it failed on stage; `live` said only "(model tiny_rave.ts)"
    while playing tiny_rave.ts. Both now say where it was found and what this model is."""
    import yaml

    from realtime.rave import RaveModel
    from realtime.session import _select_concepts
    from sae.bank import ConceptBank
    from tests.nn.conftest import make_bank

    path = make_bank(tmp_path / "stale", tiny_rave_ts)
    doc = yaml.safe_load(path.read_text())
    doc["concepts"]["bright"]["model"]["sha256"] = "0" * 64
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    sha = RaveModel.load(tiny_rave_ts).identity.sha256[:12]
    said = f"skipped concept bright (found on tiny_rave.ts 000000000000, this model is {sha})"
    out = tmp_path / "out.ts"
    rc = main(["export", "nn", "--model", str(tiny_rave_ts), "--bank", str(path), "--out", str(out)])
    printed = capsys.readouterr().err
    assert rc == 0 and said in printed.splitlines(), printed
    assert [c["name"] for c in read_metadata(out)["concepts"]] == ["noisy-1", "2nd.voice"]
    rc = main(["export", "nn", "--model", str(tiny_rave_ts), "--bank", str(path), "--out", str(out), "--concepts",
               "noisy-1"])  # fmt: skip
    assert rc == 0 and "skipped concept" not in capsys.readouterr().err  # named: nothing else was asked for
    chosen, _, skipped = _select_concepts(ConceptBank.load(path), RaveModel.load(tiny_rave_ts), None)
    assert list(chosen) == ["noisy-1", "2nd.voice"] and skipped == [said.removeprefix("skipped concept ")]
    # hunt 194: the concepts of another SAE of this model, left out by --sae, are named too
    other = yaml.safe_load(make_bank(tmp_path / "other", tiny_rave_ts, seed=1, names=("airy", "dark")).read_text())
    for concept in other["concepts"].values():
        concept["sae"] = str(tmp_path / "other" / "sae")
    doc["concepts"] |= other["concepts"]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    rc = main(["export", "nn", "--model", str(tiny_rave_ts), "--bank", str(path), "--out", str(out), "--sae",
               str(path.parent / "sae")])  # fmt: skip
    printed = capsys.readouterr().err.splitlines()
    skips = [line for line in printed if line.startswith("skipped concept")]
    assert rc == 0 and skips == [said, f"skipped concept airy (SAE {tmp_path / 'other' / 'sae'})",
                                 f"skipped concept dark (SAE {tmp_path / 'other' / 'sae'})"], printed  # fmt: skip
    # and where nothing is left to export, only the refusal is said
    for concept in doc["concepts"].values():
        concept["model"]["sha256"] = "0" * 64
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    assert main(["export", "nn", "--model", str(tiny_rave_ts), "--bank", str(path), "--out", str(out)]) == 2
    printed = capsys.readouterr().err
    assert "skipped concept" not in printed and "no concept was found on tiny_rave.ts" in printed, printed


def test_a_failed_write_leaves_no_file_and_keeps_the_old_one(monkeypatch, capsys, tmp_path, tiny_rave_ts, nn_bank):
    out = tmp_path / "steered.ts"
    out.write_bytes(b"the previous export")

    def disk_full(module, fh, _extra_files=None):
        fh.write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch.jit, "save", disk_full)
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--concepts", "bright", "--out", out)
    assert rc == 2 and "No space left on device" in err
    assert out.read_bytes() == b"the previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["steered.ts"]


def test_export_writes_nothing_into_the_nn_tilde_package(monkeypatch, capsys, tmp_path, tiny_rave_ts, nn_bank):
    """nn_tilde generates missing getters/setters as .py files in its own folder; a read-only install must work."""
    import nn_tilde
    import nn_tilde.codegen
    import nn_tilde.module

    def refuse(*_args, **_kwargs):
        raise PermissionError(13, "Permission denied", str(nn_tilde.TMP_FILE_OUTPUT))

    def package() -> list[str]:  # its `.tmpfile` scratch folder is other processes' too (a parallel test's nn~ codegen)
        root = Path(nn_tilde.__file__).parent
        return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if ".tmpfile" not in p.parts)

    before = package()
    monkeypatch.setattr(nn_tilde.codegen, "method_from_template", refuse)
    monkeypatch.setattr(nn_tilde.module, "method_from_template", refuse)
    out = tmp_path / "steered.ts"
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", nn_bank, "--concepts", "noisy-1", "--out", out)
    assert rc == 0, err
    assert "attribute noisy_1" in err and "(concept 'noisy-1')" in err
    assert list(torch.jit.load(str(out)).get_attributes()) == ["noisy_1", "mix", "bypass", "gate", "gate_db"]
    assert package() == before  # and codegen, which writes there, refused: the export never called it


def test_a_model_that_cannot_be_cut_at_the_hook_is_refused(capsys, monkeypatch, tmp_path, tiny_rave_ts, nn_files):
    """Fault injection: a decoder tail that is not the model's own → the split is measured and the export refused
    with `realtime.rave_split`'s line; the real one exports."""
    from realtime import rave_split

    bank = nn_files.make_bank(tmp_path / "bank", tiny_rave_ts, hook="decoder.net.2")
    out = tmp_path / "out.ts"
    real = rave_split.decoder_tail
    monkeypatch.setattr(rave_split, "decoder_tail", lambda m, h, frames: real(m, h, frames) * 1.01)
    monkeypatch.setattr(rave_split, "_CHECKS", {})
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", bank, "--out", out)
    assert rc == 2 and "hook 'decoder.net.2'" in err and "differs from the whole model" in err, err
    assert not out.exists()
    monkeypatch.setattr(rave_split, "decoder_tail", real)
    monkeypatch.setattr(rave_split, "_CHECKS", {})
    rc, err = _export(capsys, "--model", tiny_rave_ts, "--bank", bank, "--out", out, "--no-gate", "--gate-db=-50,-30")
    assert rc == 0, err
    assert "the SAE edits decoder.net.2" in err and "attribute gate: off" in err
    m = torch.jit.load(str(out))
    assert read_metadata(out)["hook"] == "decoder.net.2" and m.get_gate() == (0,) and m.get_gate_db() == (-50.0, -30.0)


def test_the_export_measures_once_and_prints_both_delays(capsys, tmp_path, monkeypatch, tiny_rave_ts, nn_bank):
    """Hunt 48: every export said it was measuring where the model's notes come out, cached or not, and printed only
    the aligned delay where the README says it prints both."""
    monkeypatch.setenv("MUSICSAE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("realtime.rave._MEASURED", {})  # what this process measured before (other tests)
    said = []
    for k in range(2):
        assert main(["export", "nn", "--model", str(tiny_rave_ts), "--bank", str(nn_bank), "--out",
                     str(tmp_path / f"{k}.ts")]) == 0  # fmt: skip
        out = capsys.readouterr()
        said.append(out.out + out.err)
    assert ["measuring where the model's notes come out" in s for s in said] == [True, False]
    assert all(re.search(r"model delay \d+ samples .*; first response \d+ = [\d.]+ ms\)", s) for s in said), said
