"""Seeded concept-labelled audio clips, made without downloads.

MIDI phrases (a key, a tempo, a chord progression) are rendered in-process with FluidSynth (pyfluidsynth) and a set
of General MIDI soundfonts (`FONTS`: TimGM6mb from pretty_midi's wheel or Debian, Debian's FluidR3, the csound GM
bank and the OPL3 FM bank, or any .sf2/.sf3 path; `DEFAULT_FONTS` the first three); voices come from espeak-ng.
Every clip is mono float audio at one sample rate; clip `i` depends only on `(seed, i)` and the font list, so a
larger `n` extends a smaller one. Fonts take turns (a seeded permutation per block of clips); a font that is missing
or fails to load is named in a note and skipped, the others carry on. One font can be held out (`holdout_font`): its
clips get the split `holdout_font` and their own folders, so a model trained on the others can be measured on
timbres it never heard. The csound bank reuses TimGM6mb's samples for several programs (distortion guitar and drums
render identically), so FluidR3 is the font that is really new to the others. The OPL3 FM bank (`opl3`, not in the
default set) has samples of no other font: with it among the training fonts, a detector of drum solos caught 97–99 %
of FluidR3's solo frames at every regularisation but the strongest, against 13–98 % without it (two data seeds;
README, "An `off` that knows when the concept plays alone"). A training font that shares samples with the held-out
one is named (`training.data.font_overlap`).

Clip kinds:
- `solo`: one instrument (guitar nylon / steel / distortion, piano, strings, brass, bass or drums).
- `band`: 2-4 instruments, with guitar about half of the time.
- `voice`: an espeak-ng voice (male `en+m3` / female `en+f3`), alone or over a quieter band.

Layout written by `make_dataset(out, cfg)`:
    out/clips/clip_00000.wav ...      mono PCM16 wavs
    out/manifest.csv, manifest.jsonl  one row per clip: labels, kind, tempo, key, split, font
    out/data.json                     the config, the fonts used (name, file, sha256) and the skipped ones
    out/concepts/<c>/with|without     links to the train-split clips with / without concept c
    out/heldout/<c>/with|without      the same for the test split (every 5th clip)
    out/heldout_font/<c>/with|without the held-out font's clips (only with `holdout_font`)
Each with / without folder of a split holds the same number of clips from every font the two sides share
(the first ones by index; font-free voice clips are all kept), so no concept can be told apart by its font.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import itertools
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np

from realtime.audio_files import c_stderr_hushed, write_audio
from sae.atomic import atomic_write_text, folder_replacing, refuse_working_folder, sole_writer
from sae.bank import file_sha256
from sae.errors import UserError
from sae.jsonfile import read_json_object
from sae.seeds import seeded

# General MIDI programs (0-based) for each instrument name the manifest uses.
GM_PROGRAMS: dict[str, int] = {
    "guitar_nylon": 24,
    "guitar_steel": 25,
    "guitar_distortion": 30,
    "piano": 0,
    "strings": 48,
    "brass": 56,
    "bass": 33,
}
GUITARS = ("guitar_nylon", "guitar_steel", "guitar_distortion")
BAND_OTHERS = ("piano", "strings", "brass", "bass", "drums")
SOLO_INSTRUMENTS = (*GUITARS, "piano", "strings", "brass", "bass", "drums")
VOICES = {"male": "en+m3", "female": "en+f3"}
INSTRUMENT_LABELS = ("guitar", "piano", "strings", "brass", "bass", "drums")
# Concepts the folders are made for: label -> predicate over a manifest row.
CONCEPTS: dict[str, Callable[[dict], bool]] = {
    "guitar": lambda r: r["guitar"] == 1,
    "guitar_nylon": lambda r: r["guitar_type"] == "nylon",
    "guitar_steel": lambda r: r["guitar_type"] == "steel",
    "guitar_distortion": lambda r: r["guitar_type"] == "distortion",
    "piano": lambda r: r["piano"] == 1,
    "strings": lambda r: r["strings"] == 1,
    "brass": lambda r: r["brass"] == 1,
    "bass": lambda r: r["bass"] == 1,
    "drums": lambda r: r["drums"] == 1,
    "voice": lambda r: r["voice"] != "none",
    "voice_male": lambda r: r["voice"] == "male",
    "voice_female": lambda r: r["voice"] == "female",
}


def solo_of(row: dict, concept: str) -> bool:
    """The clip is `concept` alone (a solo of one of its instruments, or a voice with no instrument): switched
    off, nothing is left of it."""
    spoken = row.get("kind") == "voice" and not any(row.get(label) == 1 for label in INSTRUMENT_LABELS)
    return (row.get("kind") == "solo" or spoken) and bool(CONCEPTS[concept](row))


MANIFEST_FIELDS = (
    "file",
    "index",
    "split",
    "font",
    "kind",
    "instruments",
    *INSTRUMENT_LABELS,
    "guitar_type",
    "voice",
    "tempo",
    "key",
    "mode",
    "duration",
    "sample_rate",
)
_WORDS_TEXT = (
    "river stone morning light over the quiet hills and a song that travels far away from home under "
    "silver rain we walk along the open road while the evening bells are ringing slowly bright window "
    "golden field tomorrow remember little garden ocean wind forever dancing"
)
WORDS = tuple(_WORDS_TEXT.split())
TEST_EVERY = 5  # clip i is held out when i % TEST_EVERY == TEST_EVERY - 1
HOLDOUT_SPLIT = "holdout_font"  # the split of every clip rendered with the held-out font
NO_FONT = "none"  # the font of a clip with no instruments (a voice alone)
_SF2 = Path("/usr/share/sounds/sf2")
# Known General MIDI soundfonts: name -> (candidate files, where they come from). The first file that exists is used.
FONTS: dict[str, tuple[tuple[Path, ...], str]] = {
    "timgm6mb": ((Path("<pretty_midi>/TimGM6mb.sf2"), _SF2 / "TimGM6mb.sf2"), "pretty_midi / timgm6mb-soundfont"),
    "fluidr3": ((_SF2 / "FluidR3_GM.sf2",), "Debian package fluid-soundfont-gm"),
    "csound": ((_SF2 / "sf_GMbank.sf2", Path("/usr/share/samples/sf_GMbank.sf2")), "Debian package csound-soundfont"),
    "opl3": ((_SF2 / "OPL-3_FM_128M.sf2",), "Debian package opl3-soundfont"),
}
DEFAULT_FONTS = ("timgm6mb", "fluidr3", "csound")


def default_soundfont() -> Path:
    """The GM soundfont bundled with pretty_midi (no download)."""
    import pretty_midi

    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise UserError(f"soundfont {path}: not found (pretty_midi's wheel should ship TimGM6mb.sf2); pass --soundfont")
    return path


@dataclass(frozen=True)
class Font:
    """A usable soundfont: its short name (recorded per clip) and file."""

    name: str
    path: Path


def _candidates(name: str) -> list[Path]:
    out = []
    for p in FONTS[name][0]:
        if str(p).startswith("<pretty_midi>"):
            try:
                p = default_soundfont()
            except UserError:
                continue
        out.append(p)
    return out


def installed(name: str) -> Path | None:
    """The first of a known font's files that is here (None: not installed)."""
    return next((p for p in _candidates(name) if p.is_file()), None)


def fluidsynth_module() -> ModuleType:
    """pyfluidsynth, or one line saying what to install where its C library is missing (it raises ImportError)."""
    try:
        import fluidsynth
    except ImportError as exc:
        raise UserError(
            f"FluidSynth: {exc} (install the Debian package libfluidsynth3, and pyfluidsynth from PyPI)"
        ) from None
    return fluidsynth


PITCH_RANGES = {
    "guitar_nylon": (52, 84),
    "guitar_steel": (52, 84),
    "guitar_distortion": (40, 63),
    "piano": (60, 94),
    "strings": (55, 82),
    "brass": (60, 87),
    "bass": (36, 54),
}
"""The lowest and highest MIDI pitch `_compose` gives each melodic part, in either voicing (a test plans clips
to check them)."""
DRUM_KEYS = (36, 38, 42)
"""The drum kit's keys the data plays: kick, snare, closed hi-hat."""
CHECK_S = 2.0
"""Each check note's slot (`range_notes`): a 0.3 s note and the time its release and reverb take to fade, which in
0.5 s slots rang on into the next slot and passed a note that plays nothing (hunt 168)."""


def range_notes() -> tuple[list[Note], list[tuple[str, int]]]:
    """One note in each `CHECK_S` slot, 0.05 s into it: every drum key the data plays, and each melodic part's
    lowest and highest pitch; and the (instrument, pitch) of each slot."""
    checks = [(i, p) for i in SOLO_INSTRUMENTS for p in (DRUM_KEYS if i == "drums" else PITCH_RANGES[i])]
    return [Note(i, p, j * CHECK_S + 0.05, j * CHECK_S + 0.35, 100) for j, (i, p) in enumerate(checks)], checks


def font_problem(path: Path) -> str | None:
    """Why FluidSynth cannot render our instruments with `path` (None: it can): it does not load, lacks a preset, or
    a preset plays nothing at a note the data plays (`range_notes`: a drum kit of other keys, presets that stop
    short of a part's register: its clips were labelled with parts they did not have)."""
    from training.data.font_overlap import PROBE_SR

    fluidsynth = fluidsynth_module()

    synth = fluidsynth.Synth(gain=0.4, samplerate=22050)
    try:
        with c_stderr_hushed():
            sfid = synth.sfload(str(path))
        if sfid < 0:
            return "FluidSynth could not load it"
        for inst, (bank, program) in {**{i: (0, p) for i, p in GM_PROGRAMS.items()}, "drums": (128, 0)}.items():
            if synth.program_select(0, sfid, bank, program) < 0:
                return f"no preset for {inst} (bank {bank}, program {program})"
    finally:
        synth.delete()
    notes, checks = range_notes()
    slots = render_notes(notes, CHECK_S * len(checks), PROBE_SR, path).reshape(len(checks), -1)
    silent: dict[str, list[int]] = {}
    for (inst, pitch), slot in zip(checks, slots, strict=True):
        peak, tail = np.abs(slot).max(), np.abs(slot[: PROBE_SR // 50]).max()  # tail: what rang on, before the note
        if peak < SILENT_PEAK or peak < 2 * tail:  # nothing, or no more than the last note's fading tail
            silent.setdefault(inst, []).append(pitch)
    if silent:  # it only probed a phrase of its own (drums 36/38/42/49, the rest 55-67), where the data plays others
        said = "; ".join(f"{inst} (MIDI {', '.join(map(str, keys))})" for inst, keys in silent.items())
        return f"plays nothing for {said}, notes the data plays"
    return None


SILENT_PEAK = 1e-3  # a probe slot quieter than this (peak, FluidSynth at gain 0.4) has no sound of its instrument


def font_name(spec: str) -> str:
    """The name a soundfont spec goes by (`resolve_fonts`, the manifest): a known font's, lower-cased ("FluidR3" as
    the README's prose spells it), or the stem of a .sf2/.sf3 path, lower-cased."""
    if spec.lower() in FONTS:
        return spec.lower()
    path = Path(spec).expanduser()  # a font's name given as it is ("GeneralUser GS v1.471") keeps its dots
    return (path.stem if path.suffix.lower() in (".sf2", ".sf3") else path.name).lower()


def resolve_fonts(specs: Sequence[str], note: Callable[[str], None]) -> tuple[list[Font], list[dict]]:
    """The usable fonts among `specs` (known names or .sf2/.sf3 paths) and the skipped ones ({font, reason}).

    A missing or unloadable font is reported through `note` (one line naming it) and skipped.
    """
    fonts: list[Font] = []
    skipped: list[dict] = []
    for spec in specs:
        name = font_name(spec)
        if spec.lower() in FONTS:
            path = installed(name)
            reason = None
            if path is None:
                where = ", ".join(str(p) for p in FONTS[name][0])
                reason = f"not installed (looked for {where}; {FONTS[name][1]})"
        else:
            path = Path(spec).expanduser()  # "a,~/fonts/b.sf2": the shell expands no ~ after a comma
            if path.suffix.lower() not in (".sf2", ".sf3") and not path.exists():  # a typo was skipped as a file
                raise UserError(f"soundfont {spec!r}: neither a known font ({', '.join(FONTS)}) nor a .sf2/.sf3 file")
            if name == NO_FONT:  # the manifest's mark of a clip with no font (a voice alone)
                raise UserError(f"soundfont {spec}: its name {name!r} marks clips with no font; rename the file")
            candidates = {os.path.realpath(c) for c in _candidates(name)} if name in FONTS else set()
            if name in FONTS and path.exists() and os.path.realpath(path) not in candidates:
                raise UserError(f"soundfont {spec}: its name {name!r} is that of a known font, which the data's "
                                "readers would load in its place; rename the file")  # fmt: skip
            reason = None if path.is_file() else "a folder, not a soundfont file" if path.is_dir() else "no such file"
            if path.suffix.lower() not in (".sf2", ".sf3") and reason is None:
                reason = "expected a .sf2 / .sf3 soundfont"
        if any(f.name == name for f in fonts):
            raise UserError(f"soundfont {spec}: listed twice (its name {name!r} is taken)")
        if reason is None:
            reason = font_problem(path)
        if reason is not None:
            note(f"soundfont {name} ({path or spec}): {reason}; skipped")
            skipped.append({"font": name, "reason": reason})
            continue
        if twin := next((f for f in fonts if _same_bytes(f.path, path)), None):  # "balanced across fonts" would
            raise UserError(f"soundfont {spec}: the same file as {twin.name} ({twin.path}); list it once")  # lie
        fonts.append(Font(name, path))
    return fonts, skipped


def _same_bytes(a: Path, b: Path) -> bool:
    """One soundfont under two names: one file, or a copy (the same size and sha256)."""
    from sae.bank import file_sha256

    if os.path.realpath(a) == os.path.realpath(b):
        return True
    return a.stat().st_size == b.stat().st_size and file_sha256(a) == file_sha256(b)


def font_slot(index: int, seed: int, n_fonts: int) -> int:
    """Which of `n_fonts` renders clip `index`: each block of n_fonts clips uses every font once, in a seeded order."""
    block, pos = divmod(index, n_fonts)
    return int(seeded(seed, block, 7919).permutation(n_fonts)[pos])


VOICINGS = ("in_key", "off_key")  # `DataConfig.voicing`


@dataclass
class DataConfig:
    """What to generate.

    Args:
        n: number of clips.
        seed: base seed; clip i uses the generator seeded with (seed, i).
        duration: clip length in seconds.
        sample_rate: output rate in Hz (FluidSynth renders at it directly; speech is resampled).
        p_solo, p_voice: probability of a solo / voice clip; the rest are band clips.
        soundfonts: font names (`FONTS`) or .sf2/.sf3 paths; clips take turns among those that load.
        holdout_font: a font of `soundfonts` whose clips form the `holdout_font` split (None: no hold-out).
        soundfont: one .sf2 path (the older single-font option; overrides `soundfonts`).
        voicing: "off_key" (guitars and strings a major third and a fifth above the key the manifest names: the
            clips the shipped demo models were trained on, and every figure of the README rests on) or "in_key"
            (every part in the clip's key; the default once those models are retrained).
    """

    n: int = 100
    seed: int = 0
    duration: float = 4.0
    sample_rate: int = 44100
    p_solo: float = 0.3
    p_voice: float = 0.15
    soundfonts: tuple[str, ...] = DEFAULT_FONTS
    holdout_font: str | None = None
    soundfont: str | None = None
    voicing: str = "off_key"

    def __post_init__(self) -> None:
        if self.voicing not in VOICINGS:
            raise UserError(f"voicing {self.voicing!r}: expected one of {', '.join(VOICINGS)}")
        if self.holdout_font is not None:  # as `--soundfonts` spells it: FluidR3, or a font's path
            self.holdout_font = font_name(self.holdout_font)

    def font_specs(self) -> tuple[str, ...]:
        return (self.soundfont,) if self.soundfont else tuple(self.soundfonts)


@dataclass
class Note:
    instrument: str
    pitch: int
    start: float
    end: float
    velocity: int


@dataclass
class ClipPlan:
    """Everything needed to render one clip, and its labels."""

    index: int
    kind: str
    instruments: list[str]
    voice: str = "none"
    tempo: float = 120.0
    key: int = 0
    mode: str = "major"
    notes: list[Note] = field(default_factory=list)
    text: str = ""
    speech_rate: int = 160

    def labels(self) -> dict:
        guitar = [g for g in self.instruments if g in GUITARS]
        row = {
            "kind": self.kind,
            "instruments": "+".join(self.instruments),
            "guitar_type": guitar[0].split("_", 1)[1] if guitar else "none",
            "voice": self.voice,
            "tempo": round(self.tempo, 2),
            "key": self.key,
            "mode": self.mode,
        }
        present = {("guitar" if i in GUITARS else i) for i in self.instruments}
        row.update({name: int(name in present) for name in INSTRUMENT_LABELS})
        return row


# ---------------------------------------------------------------- composition

MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 0), (5, 3, 0, 4), (0, 3, 5, 4), (1, 4, 0, 0))


def _triad(scale: tuple[int, ...], degree: int) -> list[int]:
    """Pitch classes (semitones above the key) of the diatonic triad on `degree`."""
    return [scale[(degree + k) % 7] + 12 * ((degree + k) // 7) for k in (0, 2, 4)]


def _in_key(lowest: int, pitch_class: int, voicing: str = "in_key") -> int:
    """The MIDI pitch of `pitch_class` (the key, or a chord's root in it) at or above `lowest` (an instrument's
    register). `off_key`: `lowest + pitch_class % 12`, as the parts were voiced before 6 December: a major third
    (guitars, from E) or a fifth (strings, from G) off the band's key."""
    if voicing == "off_key":
        return lowest + pitch_class % 12
    return lowest + (pitch_class - lowest) % 12


def _compose(plan: ClipPlan, rng: np.random.Generator, duration: float, voicing: str = "in_key") -> None:
    """Fill `plan.notes` with a phrase for each instrument of the plan (`voicing`: `DataConfig`'s)."""
    scale = MAJOR if plan.mode == "major" else MINOR
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    beat = 60.0 / plan.tempo
    chord_len = 2 * beat  # one chord every two beats
    n_chords = math.ceil(duration / chord_len) + 1
    chords = [_triad(scale, prog[c % len(prog)]) for c in range(n_chords)]
    notes: list[Note] = []

    def add(inst: str, pitch: int, start: float, length: float, vel: int) -> None:
        if start < duration:
            notes.append(Note(inst, int(np.clip(pitch, 0, 127)), start, min(start + length, duration + 0.5), vel))

    key = plan.key
    for inst in plan.instruments:
        vel_jit = lambda base: int(np.clip(base + rng.integers(-8, 9), 30, 127))  # noqa: E731
        if inst in ("guitar_nylon", "guitar_steel"):
            strum = rng.random() < 0.5
            for c, chord in enumerate(chords):
                t0 = c * chord_len
                low = _in_key(52, key, voicing)  # from E3 up: a guitar's open register
                shape = [low + p for p in chord] + [low + 12 + chord[0]]
                if strum:  # strum on each beat, strings staggered by 12 ms
                    for b in range(2):
                        for s, p in enumerate(shape):
                            add(inst, p, t0 + b * beat + 0.012 * s, beat * 0.95, vel_jit(85))
                else:  # eighth-note arpeggio
                    for e in range(4):
                        add(inst, shape[e % len(shape)], t0 + e * beat / 2, beat * 0.9, vel_jit(80))
        elif inst == "guitar_distortion":
            for c, chord in enumerate(chords):
                root = _in_key(40, key + chord[0], voicing)
                for e in range(4):
                    for p in (root, root + 7, root + 12):
                        add(inst, p, c * chord_len + e * beat / 2, beat * 0.45, vel_jit(95))
        elif inst == "piano":
            for c, chord in enumerate(chords):
                t0 = c * chord_len
                for p in chord:
                    add(inst, _in_key(60, key) + p, t0, chord_len * 0.9, vel_jit(70))
                for b in range(2):  # right-hand melody on scale tones
                    deg = int(rng.integers(0, 7))
                    add(inst, _in_key(72, key) + scale[deg], t0 + b * beat, beat * 0.9, vel_jit(85))
        elif inst == "strings":
            for c, chord in enumerate(chords):
                for p in chord:
                    add(inst, _in_key(55, key, voicing) + p, c * chord_len, chord_len * 1.02, vel_jit(75))
        elif inst == "brass":
            t = 0.0
            while t < duration:
                length = beat * float(rng.choice([0.5, 1.0, 1.0, 2.0]))
                chord = chords[min(int(t / chord_len), n_chords - 1)]
                tone = chord[int(rng.integers(3))] if rng.random() < 0.6 else scale[int(rng.integers(7))]
                pitch = _in_key(60, key) + tone
                add(inst, pitch, t, length * 0.92, vel_jit(90))
                t += length
        elif inst == "bass":
            for c, chord in enumerate(chords):
                root = _in_key(36, key + chord[0])
                for b in range(2):
                    add(
                        inst,
                        root + (7 if b == 1 and rng.random() < 0.4 else 0),
                        c * chord_len + b * beat,
                        beat * 0.9,
                        vel_jit(95),
                    )
        elif inst == "drums":
            n_beats = math.ceil(duration / beat)
            for b in range(n_beats):
                t0 = b * beat
                add(inst, 36 if b % 2 == 0 else 38, t0, 0.2, vel_jit(100))  # kick / snare
                for e in range(2):
                    add(inst, 42, t0 + e * beat / 2, 0.1, vel_jit(70))  # closed hi-hat
        else:
            raise ValueError(inst)
    plan.notes = notes


def plan_clip(index: int, cfg: DataConfig) -> ClipPlan:
    """Draw the kind, instruments, voice and music of clip `index` from the generator seeded (seed, index)."""
    rng = seeded(cfg.seed, index)
    u = rng.random()
    kind = "solo" if u < cfg.p_solo else ("voice" if u < cfg.p_solo + cfg.p_voice else "band")
    plan = ClipPlan(
        index=index,
        kind=kind,
        instruments=[],
        tempo=float(rng.uniform(80, 140)),
        key=int(rng.integers(12)),
        mode="major" if rng.random() < 0.6 else "minor",
    )

    def band() -> list[str]:
        insts: list[str] = []
        if rng.random() < 0.5:
            insts.append(GUITARS[int(rng.integers(len(GUITARS)))])
        k = int(rng.integers(1 if insts else 2, 4))
        insts += [BAND_OTHERS[j] for j in sorted(rng.choice(len(BAND_OTHERS), size=k, replace=False))]
        return insts

    if kind == "solo":
        plan.instruments = [SOLO_INSTRUMENTS[int(rng.integers(len(SOLO_INSTRUMENTS)))]]
    elif kind == "band":
        plan.instruments = band()
    else:
        plan.voice = "male" if rng.random() < 0.5 else "female"
        plan.instruments = band() if rng.random() < 0.5 else []
        n_words = math.ceil(cfg.duration * 3.2) + 2
        plan.text = " ".join(WORDS[int(j)] for j in rng.integers(len(WORDS), size=n_words))
        plan.speech_rate = int(rng.integers(140, 181))
    _compose(plan, rng, cfg.duration, cfg.voicing)
    return plan


# ---------------------------------------------------------------- rendering


def untangled(notes: Iterable[Note]) -> list[Note]:
    """`notes` as one MIDI channel can play them: a note of an instrument ends no later than that instrument strikes
    its pitch again, and notes struck together on one pitch are one (the longest, the loudest). A held note
    overlapping its re-strike (strings are held 1.02 chords, to be legato) had its note-off land after the new
    note-on, and FluidSynth ended the new note there. In the demo's 480 clips 135 of 141 with strings had a note cut
    to a few milliseconds (piano 52 of 157, guitar 9 of 184), and 2 of 23 strings solos fell 31 and 36 dB for most
    of a chord (none falls 20 dB now)."""
    by_key: dict[tuple[str, int], list[Note]] = {}
    for note in notes:
        by_key.setdefault((note.instrument, note.pitch), []).append(note)
    out: list[Note] = []
    for same in by_key.values():
        merged: list[Note] = []
        for note in sorted(same, key=lambda n: n.start):
            if merged and note.start - merged[-1].start < 1e-6:  # struck together
                last = merged[-1]
                merged[-1] = dataclasses.replace(last, end=max(last.end, note.end),
                                                 velocity=max(last.velocity, note.velocity))  # fmt: skip
            else:
                merged.append(note)
        out += [dataclasses.replace(n, end=min(n.end, nxt.start)) for n, nxt in itertools.pairwise(merged)]
        out.append(merged[-1])
    return sorted(out, key=lambda n: (n.start, n.instrument, n.pitch))


def render_notes(notes: Iterable[Note], duration: float, sample_rate: int, soundfont: Path) -> np.ndarray:
    """Render notes with a fresh FluidSynth instance (so clips never leak into each other): mono float32. Notes
    are `untangled` first."""
    fluidsynth = fluidsynth_module()

    synth = fluidsynth.Synth(gain=0.4, samplerate=sample_rate)
    try:
        sfid = synth.sfload(str(soundfont))
        if sfid < 0:
            raise UserError(f"soundfont {soundfont}: FluidSynth could not load it")
        channels: dict[str, int] = {}
        next_channel = 0
        events: list[tuple[int, int, int, int, int]] = []  # (sample, on?, channel, pitch, velocity)
        for note in untangled(notes):
            if note.instrument not in channels:
                if note.instrument == "drums":
                    ch = 9  # GM percussion channel
                else:
                    ch, next_channel = next_channel, next_channel + (2 if next_channel == 8 else 1)
                channels[note.instrument] = ch
                if note.instrument == "drums":
                    synth.program_select(ch, sfid, 128, 0)
                else:
                    synth.program_select(ch, sfid, 0, GM_PROGRAMS[note.instrument])
            ch = channels[note.instrument]
            events.append((round(note.start * sample_rate), 1, ch, note.pitch, note.velocity))
            events.append((round(note.end * sample_rate), 0, ch, note.pitch, 0))
        events.sort(key=lambda e: (e[0], e[1]))  # note-offs before note-ons at the same sample
        total = round(duration * sample_rate)
        out = np.zeros(total, dtype=np.float32)
        cursor = 0
        for sample, on, ch, pitch, vel in events:
            sample = min(sample, total)
            if sample > cursor:
                stereo = synth.get_samples(sample - cursor).astype(np.float32).reshape(-1, 2)
                out[cursor:sample] = stereo.mean(axis=1) / 32768.0
                cursor = sample
            if cursor >= total:
                break
            if on:
                synth.noteon(ch, pitch, vel)
            else:
                synth.noteoff(ch, pitch)
        if cursor < total:
            stereo = synth.get_samples(total - cursor).astype(np.float32).reshape(-1, 2)
            out[cursor:] = stereo.mean(axis=1) / 32768.0
        return out
    finally:
        synth.delete()


def render_speech(text: str, voice: str, rate: int, duration: float, sample_rate: int) -> np.ndarray:
    """Speak `text` with espeak-ng, resampled to `sample_rate` and cut / padded to `duration`: mono float32."""
    import soundfile as sf

    from realtime.audio_files import resample

    if shutil.which("espeak-ng") is None:
        raise UserError("espeak-ng: not found on PATH (Debian package espeak-ng is needed for voice clips)")
    proc = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(rate), "--stdout", text], capture_output=True, check=False
    )
    if proc.returncode != 0 or not proc.stdout:
        raise UserError(f"espeak-ng -v {voice}: failed ({proc.stderr.decode(errors='replace').strip()[:200]})")
    audio, sr = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    audio = resample(audio, sr, sample_rate)
    total = round(duration * sample_rate)
    out = np.zeros(total, dtype=np.float32)
    out[: min(total, len(audio))] = audio[:total]
    return out


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-12))


def render_clip(plan: ClipPlan, cfg: DataConfig, soundfont: Path) -> np.ndarray:
    """The clip's audio, peak-normalised to -1 dBFS."""
    music = render_notes(plan.notes, cfg.duration, cfg.sample_rate, soundfont) if plan.instruments else None
    if plan.voice != "none":
        speech = render_speech(plan.text, VOICES[plan.voice], plan.speech_rate, cfg.duration, cfg.sample_rate)
        audio = speech / _rms(speech) * 0.1
        if music is not None:
            audio = audio + music / _rms(music) * 0.05  # music 6 dB under the voice
    else:
        assert music is not None
        audio = music
    peak = float(np.max(np.abs(audio)))
    if peak < 1e-4:  # a font that plays nothing at this clip's notes (`font_problem` probes the usual ones)
        what = ", ".join([*plan.instruments, *([f"voice {plan.voice}"] if plan.voice != "none" else [])])
        raise UserError(f"soundfont {soundfont}: clip {plan.index} rendered silent ({what})")
    return (audio * (0.89 / peak)).astype(np.float32)


# ---------------------------------------------------------------- dataset


@contextlib.contextmanager
def _cancelled_futures_unsaid() -> Iterator[None]:
    """While a `ProcessPoolExecutor` runs. In Python 3.11 its manager thread, marking the pool broken (a render process
    died, or a stop ended them), raises InvalidStateError on a future already cancelled (by `map`'s own clean-up, or
    the shutdown) and dies: printed as a thread's traceback beside the command's one line (CI 35, 37), before it
    terminated the other processes (`_end_workers` does). CPython fixed it later (gh-107219); the 3.11.7 here has
    not. Put back where the pool ended well; after a stop or a death the command ends with this process."""
    import threading
    from concurrent.futures import InvalidStateError

    said = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if not issubclass(args.exc_type, InvalidStateError):
            said(args)

    threading.excepthook = hook
    yield
    threading.excepthook = said


def _end_workers(pool) -> None:
    """Terminate a `ProcessPoolExecutor`'s processes (its table is private; Python 3.14 has `terminate_workers`)."""
    for proc in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(OSError, ValueError):
            proc.terminate()


def _ignore_interrupt() -> None:
    """A render process's start: Ctrl-C in a terminal reaches every process of its group, and each printed its
    own KeyboardInterrupt lines beside the command's one line; the command stops them."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _make_one(args: tuple[int, DataConfig, Font, str, bool]) -> dict:
    index, cfg, font, clip_dir, held_out = args
    plan = plan_clip(index, cfg)
    name = f"clip_{index:05d}.wav"
    write_audio(Path(clip_dir) / name, render_clip(plan, cfg, font.path), cfg.sample_rate)
    # a voice alone renders with no font: in the held-out font's split it was the training fonts' kind of audio,
    # counted as a font the model never heard (11 of the demo's 160 held-out clips)
    split = HOLDOUT_SPLIT if held_out and plan.instruments else split_of(index)
    row = {"file": f"clips/{name}", "index": index, "split": split, "font": font.name if plan.instruments else NO_FONT}
    row.update(plan.labels())
    row.update({"duration": cfg.duration, "sample_rate": cfg.sample_rate})
    return {k: row[k] for k in MANIFEST_FIELDS}


def split_of(index: int) -> str:
    return "test" if index % TEST_EVERY == TEST_EVERY - 1 else "train"


def make_dataset(
    out: Path,
    cfg: DataConfig,
    jobs: int = 1,
    concepts: Iterable[str] | None = tuple(CONCEPTS),
    copy: bool = False,
    progress: Callable[[int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> list[dict]:
    """Render `cfg.n` clips into `out`, write the manifests, and materialise concept folders.

    Args:
        out: output directory (created; existing clips of the same name are overwritten).
        cfg: what to generate.
        jobs: worker processes for rendering.
        concepts: concept names to make with/without folders for (None or empty: none).
        copy: copy wavs into the concept folders instead of linking them.
        progress: called with the number of clips finished so far.
        note: called with one line per skipped soundfont, and per training font that shares samples with the
            held-out one (`training.data.font_overlap`; default: printed to stderr).
    Returns:
        The manifest rows.
    """
    if cfg.n < 1:
        raise UserError(f"--n {cfg.n}: expected at least 1 clip")
    if not 0.25 <= cfg.duration <= 600:
        raise UserError(f"--duration {cfg.duration}: expected 0.25 to 600 seconds")
    if not 8000 <= cfg.sample_rate <= 96000:
        raise UserError(f"--sr {cfg.sample_rate}: expected 8000 to 96000 Hz (FluidSynth's range)")
    unknown = sorted(set(concepts or ()) - set(CONCEPTS))
    if unknown:
        raise UserError(f"--concepts {','.join(unknown)}: unknown; expected some of {', '.join(CONCEPTS)}")
    note = note or (lambda line: print(line, file=sys.stderr))
    specs = cfg.font_specs()
    if not specs:
        raise UserError("--soundfonts: expected at least one soundfont")
    font_notes: list[str] = []  # said once the run goes ahead: a refusal is its one line
    fonts, skipped = resolve_fonts(specs, font_notes.append)
    names = [f.name for f in fonts] + [s["font"] for s in skipped]
    if cfg.holdout_font is not None and cfg.holdout_font not in names:
        raise UserError(f"--holdout-font {cfg.holdout_font}: not one of the soundfonts ({', '.join(names)})")
    if not fonts:
        why = "; ".join(f"{s['font']}: {s['reason']}" for s in skipped)
        raise UserError(f"soundfonts {', '.join(specs)}: none could be used ({why})")
    held = cfg.holdout_font
    if held is not None and held not in [f.name for f in fonts]:
        why = next(s["reason"] for s in skipped if s["font"] == held)
        raise UserError(f"--holdout-font {held}: that soundfont was skipped ({why}); nothing to hold out")
    for line in font_notes:
        note(line)
    if held is not None and len(fonts) < 2:
        raise UserError(f"--holdout-font {held}: it is the only usable soundfont; nothing is left to train on")
    shared: dict[str, dict[str, float]] = {}
    if held is not None:  # a training font made from the held-out font's samples would flatter every figure on it
        from training.data.font_overlap import overlap_lines, overlaps

        shared = overlaps(next(f for f in fonts if f.name == held), [f for f in fonts if f.name != held])
        for line in overlap_lines(held, shared):
            note(line)
    check_data_out(Path(out))
    # one writer (two at once would mix their clips under one run's manifest); the data written whole beside OUT and
    # swapped in: a stopped run leaves the earlier data as it was, and a smaller run none of the earlier clips
    # a user's files beside the data (a bank, a store, notes) are kept; an earlier run's derived folders are not
    with sole_writer(out, "data make"), folder_replacing(Path(out), own={*DERIVED, "clips", ".lock"}) as new:
        return _make_dataset(new, cfg, fonts, skipped, jobs, concepts, copy, progress, shared, note)


# What `make_dataset` derives from the clips (a folder of an earlier version's run stopped half way has clips only)
DERIVED = ("data.json", "manifest.csv", "manifest.jsonl", "concepts", "heldout", "heldout_font")


def check_data_out(out: Path, what: str | None = None, writer: str = "`data make`") -> None:
    """OUT is new, empty, or a data folder this command wrote (complete, or stopped half way: its clips only);
    anything else is refused before a file is touched, since the derived files and folders are replaced. A file
    of another's inside the folders it replaces (a recording put in `clips/`) is refused even in a complete one.
    `what` names the folder in the refusal (default "--out OUT"), `writer` the command that writes it."""
    what = what or f"--out {out}"
    if out.exists() and not out.is_dir():
        raise UserError(f"{what}: exists and is a file; expected a folder")
    refuse_working_folder(out, "--out")
    if not out.is_dir():
        return
    foreign = [
        str(p.relative_to(out))
        for top in ("clips", "concepts", "heldout", "heldout_font")
        if (out / top).is_dir()
        for p in sorted((out / top).rglob("*"))
        if not _written_here(top, p.relative_to(out / top).parts, p.is_dir())
    ]
    if (out / "data.json").is_file() and not _data_json_of_ours(out / "data.json"):
        foreign.insert(0, "data.json")  # another tool's data.json was taken for this command's mark
    elif not (out / "data.json").is_file():  # no run of ours finished here: the folder must be one it began
        ours = {*DERIVED, "clips", ".lock"}
        foreign = [p.name for p in out.iterdir() if p.name not in ours] + foreign
        clips = [p.name for p in (out / "clips").iterdir()] if (out / "clips").is_dir() else []
        derived = [n for n in DERIVED if (out / n).exists()]
        if not foreign and derived and not any(n.startswith("clip_") for n in clips):  # not a run stopped half way
            foreign = derived
    if foreign:
        raise UserError(f"{what}: holds files {writer} did not write ({foreign[0]}); its clips and labels "
                        "would replace them: choose a new or empty folder")  # fmt: skip


_OUR_CLIP = re.compile(r"\.?clip_\d{5,}\.wav(\.[0-9a-f]{8}\.tmp)?")  # a clip, or its file while written
SIDES = ("with", "without", "alone")


def _written_here(top: str, parts: tuple[str, ...], is_dir: bool) -> bool:
    """Whether `top/parts` is a path this command writes: clips/clip_NNNNN.wav, TOP/CONCEPT/SIDE/clip_NNNNN.wav
    (a concept it makes, a side it makes), the folders on the way, and their files while written."""
    depth = 1 if top == "clips" else 3
    if top != "clips" and (parts[0] not in CONCEPTS or (len(parts) > 1 and parts[1] not in SIDES)):
        return False  # a concept or side of the user's own, which the rebuilt folder would drop
    return len(parts) < depth if is_dir else len(parts) == depth and bool(_OUR_CLIP.fullmatch(parts[-1]))


def _data_json_of_ours(path: Path) -> bool:
    """Whether `path` reads as the data.json this command writes (its config, fonts and test split)."""
    try:
        meta = read_json_object(path, "data.json")
    except UserError:
        return False
    return isinstance(meta.get("config"), dict) and isinstance(meta.get("soundfonts"), list) and "test_every" in meta


def _make_dataset(
    out: Path,
    cfg: DataConfig,
    fonts: list[Font],
    skipped: list[dict],
    jobs: int,
    concepts: Iterable[str] | None,
    copy: bool,
    progress: Callable[[int], None] | None,
    shared: dict[str, dict[str, float]],
    note: Callable[[str], None],
) -> list[dict]:
    clip_dir = out / "clips"
    clip_dir.mkdir(parents=True, exist_ok=True)
    slots = [fonts[font_slot(i, cfg.seed, len(fonts))] for i in range(cfg.n)]
    work = [(i, cfg, slots[i], str(clip_dir), slots[i].name == cfg.holdout_font) for i in range(cfg.n)]
    rows: list[dict] = []
    if jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor
        from concurrent.futures.process import BrokenProcessPool

        # spawn: FluidSynth threads do not survive fork. Not multiprocessing.Pool: a worker that died (the OOM killer,
        # a FluidSynth crash) lost its task there, and the command waited for it for good (hunt 165)
        pool = ProcessPoolExecutor(min(jobs, cfg.n), mp_context=mp.get_context("spawn"), initializer=_ignore_interrupt)
        with _cancelled_futures_unsaid():
            try:
                try:
                    made = pool.map(_make_one, work)  # one clip a task: a stop waits for one clip a worker at most
                except OSError as exc:  # out of processes or open files: a traceback from multiprocessing
                    msg = f"--jobs {jobs}: could not start that many processes ({exc.strerror}); use fewer"
                    raise UserError(msg) from None
                for row in made:
                    rows.append(row)
                    if progress:
                        progress(len(rows))
            except BaseException as exc:
                # a stop: the render processes (which ignore SIGINT) end now, not after their clip (a second Ctrl-C
                # in the wait for them left them, and the command, waiting for good); a death: the executor's own
                # clean-up can die before it ends the others (`_cancelled_futures_unsaid`), and exit waited for them
                _end_workers(pool)
                if isinstance(exc, BrokenProcessPool):
                    died = f"a render process died after {len(rows)} of {cfg.n} clips"
                    raise UserError(f"{died} (out of memory? a FluidSynth crash?); run it again, with fewer --jobs or "
                                    "shorter clips") from None  # fmt: skip
                raise
            finally:
                pool.shutdown(cancel_futures=True)
    else:
        for item in work:
            rows.append(_make_one(item))
            if progress:
                progress(len(rows))
    write_manifest(out, rows)
    if cfg.holdout_font is not None and not any(r["split"] == HOLDOUT_SPLIT for r in rows):
        note(f"--holdout-font {cfg.holdout_font}: none of the {cfg.n} clips plays an instrument in it (a voice alone "
             "takes no font); nothing is held out: make more clips")  # fmt: skip
    meta = {
        "config": dataclasses.asdict(cfg),
        "soundfonts": [
            # the path as given (a link followed named the font after its target, which readers then missed)
            {"name": f.name, "file": f.path.name, "path": os.path.abspath(f.path), "sha256": file_sha256(f.path)}
            for f in fonts
        ],
        "skipped_soundfonts": skipped,
        "holdout_font": cfg.holdout_font,
        "holdout_shares_samples": shared,  # training font -> {instrument: distance} (`training.data.font_overlap`)
        "concepts": sorted(concepts or ()),
        "test_every": TEST_EVERY,
    }
    for name in concepts or ():
        materialise_concept(out, rows, name, copy=copy)
    atomic_write_text(out / "data.json", json.dumps(meta, indent=2) + "\n")  # last: the folder is complete
    return rows


def write_manifest(out: Path, rows: list[dict]) -> None:
    """manifest.csv and manifest.jsonl, each written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(MANIFEST_FIELDS), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out / "manifest.csv", buf.getvalue())
    atomic_write_text(out / "manifest.jsonl", "".join(json.dumps(r) + "\n" for r in rows))


def read_manifest(root: Path) -> list[dict]:
    """Rows of `root/manifest.jsonl` (typed as written); a damaged row is one line naming it and the field."""
    path = Path(root) / "manifest.jsonl"
    if not path.is_file():
        raise UserError(f"{path}: no manifest (expected a folder written by `musicsae data make`)")
    rows = []
    with open(path, encoding="utf-8", errors="replace") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                rows.append(_manifest_row(line, f"{path} line {n}"))
    return rows


def link_trainable_clips(root: Path, rows: list[dict], folder: Path) -> int:
    """Links in `folder` to the clips of `root` an SAE may train on: the train and test splits, never the held-out
    font's (judged as a font no model part heard). Returns how many `folder` holds."""
    folder.mkdir(parents=True, exist_ok=True)
    for r in rows:
        if r["split"] in ("train", "test"):
            link = folder / Path(r["file"]).name
            if not link.exists():
                os.symlink((Path(root) / r["file"]).resolve(), link)
    return sum(1 for _ in folder.iterdir())


def _manifest_row(line: str, at: str) -> dict:
    """One manifest line, checked for the fields the readers use (file, index, split, labels, guitar type, voice)."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict):
        raise UserError(f"{at}: not a JSON object (a manifest written by `musicsae data make`, cut short?)")
    for key in ("file", "index", "split", *INSTRUMENT_LABELS, "guitar_type", "voice"):
        if key not in row:
            raise UserError(f"{at}: missing {key!r}")
    if not isinstance(row["index"], int) or isinstance(row["index"], bool):
        raise UserError(f"{at}: index {row['index']!r}; expected an integer")
    for key in INSTRUMENT_LABELS:
        if row[key] not in (0, 1) or isinstance(row[key], bool):
            raise UserError(f"{at}: {key} {row[key]!r}; expected 0 or 1")
    for key in ("file", "split", "guitar_type", "voice"):
        if not isinstance(row[key], str):
            raise UserError(f"{at}: {key} {row[key]!r}; expected a string")
    return row


def balance_fonts(with_rows: list[dict], without_rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """Both sides of a concept with the same number of rows from every font they share (the first by index).

    Fonts found on one side only are dropped (they would tell the sides apart); font-free rows are all kept.
    """
    sides = []
    for rows in (with_rows, without_rows):
        by_font: dict[str, list[dict]] = {}
        for row in sorted(rows, key=lambda r: r["index"]):
            by_font.setdefault(row.get("font", NO_FONT), []).append(row)
        sides.append(by_font)
    fonts = ({*sides[0]} & {*sides[1]}) - {NO_FONT}
    if len(fonts | (({*sides[0]} | {*sides[1]}) - {NO_FONT})) < 2:  # one font in all: nothing to balance
        return sorted(with_rows, key=lambda r: r["index"]), sorted(without_rows, key=lambda r: r["index"])
    out = []
    for by_font in sides:
        m = min((len(by_font[f]) for f in fonts), default=0)
        keep = by_font.get(NO_FONT, []) + [r for f in sorted(fonts) for r in by_font[f][:m]]
        out.append(sorted(keep, key=lambda r: r["index"]))
    return out[0], out[1]


def materialise_concept(root: Path, rows: list[dict], name: str, copy: bool = False) -> dict[str, int]:
    """Make `root/concepts/<name>/{with,without,alone}` (train split), `root/heldout/<name>/...` (test split) and,
    when a font is held out, `root/heldout_font/<name>/...` (its clips).

    `with` and `without` hold the same number of clips from every font (`balance_fonts`); `alone` every clip of
    the split where the concept plays alone (`solo_of`; `concept find --alone`). Entries are relative
    symlinks to `root/clips/...` (or copies with `copy=True`); folders are rebuilt from scratch so stale
    entries never survive. Returns counts per folder.
    """
    if name not in CONCEPTS:
        raise UserError(f"concept {name}: unknown; expected one of {', '.join(CONCEPTS)}")
    pred = CONCEPTS[name]
    counts: dict[str, int] = {}
    tops = [("concepts", "train"), ("heldout", "test")]
    if any(r["split"] == HOLDOUT_SPLIT for r in rows):
        tops.append(("heldout_font", HOLDOUT_SPLIT))
    for top, split in tops:
        in_split = [r for r in rows if r["split"] == split]
        balanced = balance_fonts([r for r in in_split if pred(r)], [r for r in in_split if not pred(r)])
        solos = [r for r in in_split if solo_of(r, name)]
        for side, chosen in zip(SIDES, (*balanced, solos), strict=True):
            folder = Path(root) / top / name / side
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            n = 0
            for row in chosen:
                src = Path(root) / row["file"]
                dst = folder / src.name
                if copy:
                    shutil.copyfile(src, dst)
                else:
                    os.symlink(os.path.relpath(src, folder), dst)
                n += 1
            counts[f"{top}/{side}"] = n
    return counts


# ---------------------------------------------------------------- oracle edits

# The instruments a concept stands for when a clip is re-rendered with it switched off / on.
ORACLE_PARTS: dict[str, tuple[tuple[str, ...], str]] = {  # concept -> (instruments removed by off, added by on)
    "guitar": (GUITARS, "guitar_steel"),
    "piano": (("piano",), "piano"),
    "strings": (("strings",), "strings"),
    "brass": (("brass",), "brass"),
    "bass": (("bass",), "bass"),
    "drums": (("drums",), "drums"),
}


def data_config(root: Path) -> tuple[DataConfig, dict[str, Path], str | None]:
    """The config a `data make` folder was made with, its usable fonts by name, and its held-out font."""
    path = Path(root) / "data.json"
    if not path.is_file():
        raise UserError(f"{path}: missing (expected a folder written by `musicsae data make`)")
    meta = read_json_object(path, "data.json")
    fonts_used = meta.get("soundfonts", [])
    ok = isinstance(meta.get("config"), dict) and isinstance(fonts_used, list)
    if not (ok and all(isinstance(f, dict) and isinstance(f.get("name"), str) for f in fonts_used)):
        raise UserError(f"{path}: expected 'config' and 'soundfonts' as `musicsae data make` writes them")
    conf = dict(meta["config"])
    conf["soundfonts"] = tuple(conf.get("soundfonts") or DEFAULT_FONTS)
    conf.setdefault("voicing", "off_key")  # a folder from before `voicing`: off key, as the default
    extra = sorted(set(conf) - {f.name for f in dataclasses.fields(DataConfig)})
    if extra:  # another version's folder, or an edit
        raise UserError(f"{path}: unknown config key {extra[0]!r}; expected a folder written by `musicsae data make`")
    try:
        cfg = DataConfig(**conf)
    except UserError as exc:  # a value edited by hand: which file says so
        raise UserError(f"{path}: {exc}") from None
    fonts: dict[str, Path] = {}
    for f in fonts_used:  # under the name recorded, at the path recorded; a known font moved is looked for again
        name, at = f["name"], f.get("path")
        file = Path(at) if isinstance(at, str) and Path(at).is_file() else None
        if file is None and name in FONTS:
            file = installed(name)
        if file is None:  # not here: the ideal edits skip its clips (`oracle_clip`)
            continue
        # the ideal edits re-render with these files: another file's samples would be judged as the edit
        if f.get("sha256") and file_sha256(file) != f["sha256"]:
            raise UserError(
                f"{path}: soundfont {name}: {file} is not the file the data was made with (its sha256 differs); "
                "the ideal edits' re-renders would play other samples: restore it, or make the data again"
            )
        fonts[name] = file
    return cfg, fonts, meta.get("holdout_font")


def oracle_clip(
    row: dict, cfg: DataConfig, fonts: dict[str, Path], concept: str, holdout_font: str | None = None
) -> np.ndarray | None:
    """Clip `row` re-rendered with `concept` switched: its part removed when the clip has it (the ideal `off`), a
    part added when it does not (the ideal `on`: the same phrase logic, key and tempo). A solo of the concept
    switched off is silence (which the judge hears as no concept). None when the clip's font is not installed."""
    removed, added = ORACLE_PARTS[concept]
    plan = plan_clip(int(row["index"]), cfg)
    if any(i in removed for i in plan.instruments):
        plan.notes = [n for n in plan.notes if n.instrument not in removed]
        plan.instruments = [i for i in plan.instruments if i not in removed]
        if not plan.instruments and plan.voice == "none":
            return np.zeros(round(cfg.duration * cfg.sample_rate), np.float32)
    else:
        extra = ClipPlan(plan.index, "solo", [added], tempo=plan.tempo, key=plan.key, mode=plan.mode)
        _compose(extra, seeded(cfg.seed, plan.index, 4242), cfg.duration, cfg.voicing)
        plan.notes += extra.notes
        plan.instruments.append(added)
    font = row.get("font", NO_FONT)
    if font == NO_FONT:  # a voice alone: the added part takes the held-out font in that split, else the first
        in_fonts = [f for f in fonts if f != holdout_font]
        font = holdout_font if row.get("split") == HOLDOUT_SPLIT else (in_fonts[0] if in_fonts else "")
    if font not in fonts:
        return None
    return render_clip(plan, cfg, fonts[font])


def oracle_edits(
    clips: Iterable[tuple[int, bool]], per_side: int, ideal: Callable[[int], np.ndarray | None]
) -> dict[int, np.ndarray]:
    """The ideal edits of a concept to judge: for `clips` (key, has the concept) in their order, `ideal(key)` of the
    first `per_side` clips with and the first `per_side` without it (0: all) whose re-render exists (`oracle_clip`
    is None for a font not installed). Keys in clip order."""
    taken = {True: 0, False: 0}
    out: dict[int, np.ndarray] = {}
    for key, has in clips:
        if per_side and taken[has] >= per_side:
            continue
        audio = ideal(key)
        if audio is not None:
            out[key] = audio
            taken[has] += 1
    return out
