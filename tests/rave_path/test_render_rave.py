"""`musicsae render rave`: block-wise renders with bank edits; no edit equals the plain model exactly."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef
from training.cli import main


@pytest.fixture
def bank(tmp_path, tiny_rave_ts, tiny_sae_dir):
    b = ConceptBank(tmp_path / "concepts.yaml")
    ref = ModelRef.of_file(tiny_rave_ts)
    b.add(Concept("bright", ref, "latent", b.relative_sae(tiny_sae_dir),
                  [ConceptFeature(3, 1.0, 2.0), ConceptFeature(7, 0.5, 1.0)], ConceptDefault("off", 1.0)))
    b.add(Concept("alien", ModelRef("other.ts", "ab" * 32), "latent", b.relative_sae(tiny_sae_dir),
                  [ConceptFeature(1, 1.0, 1.0)]))
    b.save()
    return b.path


def _render(tmp_path, model, inp, name, *extra):
    out = tmp_path / name
    rc = main(["render", "rave", "--in", str(inp), "--out", str(out), "--model", str(model), *extra])
    return rc, (sf.read(out, dtype="float32") if rc == 0 else (None, None))


def test_edits_and_identity(tmp_path, tiny_rave_ts, concept_data, bank, capsys):
    clip = sorted((concept_data / "clips").iterdir())[0]
    n = sf.info(clip).frames
    rc, (plain, sr) = _render(tmp_path, tiny_rave_ts, clip, "plain.wav")
    assert rc == 0 and sr == 44100 and len(plain) == n and np.abs(plain).max() > 0
    rc, (same, _) = _render(tmp_path, tiny_rave_ts, clip, "same.wav", "--bank", str(bank), "--set", "bright=none")
    assert rc == 0 and np.array_equal(same, plain)  # no edit: the plain model, bit for bit
    rc, (on, _) = _render(tmp_path, tiny_rave_ts, clip, "on.wav", "--bank", str(bank), "--set", "bright=on:3")
    assert rc == 0 and len(on) == n and np.abs(on - plain).max() > 1e-3
    rc, (scaled, _) = _render(tmp_path, tiny_rave_ts, clip, "sc.wav", "--bank", str(bank), "--set", "bright=scale:1")
    assert rc == 0 and np.array_equal(scaled, plain)
    capsys.readouterr()


def test_output_is_aligned_with_the_input(tmp_path, tiny_rave_ts, concept_data):
    clip = sorted((concept_data / "clips").iterdir())[1]
    _, (aligned, _) = _render(tmp_path, tiny_rave_ts, clip, "a.wav")
    _, (raw, _) = _render(tmp_path, tiny_rave_ts, clip, "r.wav", "--no-align")
    from realtime.rave import RaveModel

    d = RaveModel.load(tiny_rave_ts).delay()
    assert d > 0 and np.allclose(aligned[: len(raw) - d], raw[d:], atol=1e-6)


def test_resampled_input_and_refusals(tmp_path, tiny_rave_ts, concept_data, bank, capsys):
    clip = sorted((concept_data / "clips").iterdir())[2]
    x, _ = sf.read(clip, dtype="float32")
    low = tmp_path / "low.wav"
    sf.write(low, x[::2], 22050)
    rc, (y, sr) = _render(tmp_path, tiny_rave_ts, low, "low_out.wav")
    assert rc == 0 and sr == 44100 and len(y) == 2 * (len(x) // 2 + len(x) % 2)
    assert "resampled" in capsys.readouterr().err
    for extra, needle in [
        (["--bank", str(bank), "--set", "alien=off"], "belongs to model other.ts"),
        (["--set", "bright=off"], "--set needs --bank"),
        (["--bank", str(bank), "--set", "bright=loud"], "--set 'bright=loud'"),
        (["--bank", str(bank), "--set", "nobody=off"], "'nobody'"),
        (["--bank", str(bank), "--block", "1000"], "block 1000"),
    ]:
        rc, _ = _render(tmp_path, tiny_rave_ts, clip, "x.wav", *extra)
        err = capsys.readouterr().err.strip()
        assert rc == 2 and needle in err and "\n" not in err, (extra, err)
    assert not (tmp_path / "x.wav").exists()
