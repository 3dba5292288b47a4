"""Audio properties used in feature descriptions, on signals whose answers are known."""

import json

import numpy as np
import pytest
import soundfile as sf

from training.dashboard.audio_props import analyse, note_name

SR = 22050


def _t(seconds=2.0):
    return np.arange(int(seconds * SR)) / SR


def test_sine_pitch_loudness_centroid():
    y = 0.5 * np.sin(2 * np.pi * 440 * _t())
    p = analyse(y, SR)
    assert p.pitch_range == "A4"
    assert p.rms_db == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.2)
    assert p.centroid_hz == pytest.approx(440, rel=0.15)
    assert p.onset_rate < 1 and "sustained" in p.tags and "dark" in p.tags
    assert p.voice_score < 0.55
    # a tone two octaves down, resampled from another rate, quieter
    p2 = analyse(0.02 * np.sin(2 * np.pi * 110 * np.arange(32000) / 16000), 16000)
    assert p2.pitch_range == "A2" and "quiet" in p2.tags and "low register" in p2.tags


def test_clicks_count_as_onsets_and_noise_is_bright():
    y = np.zeros(int(3 * SR))
    rng = np.random.default_rng(0)
    for k in range(15):  # 5 bursts per second
        a = int(k * SR / 5)
        y[a : a + 400] = rng.normal(0, 0.3, 400) * np.exp(-np.arange(400) / 80)
    p = analyse(y, SR)
    assert p.onset_rate == pytest.approx(5.0, abs=0.7)
    assert "busy onsets" in p.tags and p.pitch_range is None
    noise = analyse(np.random.default_rng(1).normal(0, 0.1, 2 * SR), SR)
    assert noise.centroid_hz > 3000 and "bright" in noise.tags and noise.pitch_range is None


def test_a_dc_offset_is_not_sound():
    """A recording with a DC offset (a cheap interface's, or a constant) was described as loud, dark and, for the
    constant alone, pitched at 1.7 kHz: the offset counted as signal. It is removed before measuring."""
    quiet = 0.02 * np.sin(2 * np.pi * 110 * _t())
    for offset in (0.0, 0.4):
        p = analyse(quiet + offset, SR)
        assert p.pitch_range == "A2" and "quiet" in p.tags and "loud" not in p.tags, (offset, p)
        assert p.rms_db == pytest.approx(20 * np.log10(0.02 / np.sqrt(2)), abs=0.2)
    const = analyse(np.full(2 * SR, 0.5), SR)
    assert const.pitch_range is None and "quiet" in const.tags, const


def test_note_names():
    assert note_name(261.63) == "C4" and note_name(27.5) == "A0" and note_name(466.16) == "A#4"


def test_voice_score_separates_speech_from_instruments(dash_inputs):
    rows = [json.loads(line) for line in dash_inputs.manifest.read_text().splitlines()]
    voice, other = [], []
    for r in rows:
        y, sr = sf.read(dash_inputs.data / r["file"], dtype="float32")
        (voice if r["voice"] != "none" else other).append(analyse(y, sr).voice_score)
    assert voice and other
    assert np.mean(voice) > np.mean(other) + 0.2, (voice, other)


def test_the_site_reads_each_audio_file_once(tmp_path, monkeypatch):
    """Top clips of many features share files: the dashboard's reader decodes a file once (cached), mono."""
    from training.dashboard import render

    path = tmp_path / "a.wav"
    sf.write(path, np.stack([np.ones(100), -np.ones(100)], axis=1) * 0.5, SR)
    calls = []
    real = render.read_file
    monkeypatch.setattr(render, "read_file", lambda p: calls.append(p) or real(p))
    render.read_audio.cache_clear()
    for _ in range(3):
        y, sr = render.read_audio(str(path))
    assert calls == [str(path)] and sr == SR and np.abs(y).max() < 1e-6
