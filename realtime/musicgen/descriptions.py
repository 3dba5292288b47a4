"""The descriptions a lookup-table MusicGen knows, and how a free-text prompt is mapped onto them.

A MusicGen whose text conditioner is a lookup table (audiocraft's `lut` conditioner with the `noop`
tokenizer: one table row per whole description) only understands the exact descriptions it was trained on.
Its folder then holds `descriptions.json`:

    {"version": 1, "unknown": "unknown", "descriptions": {"guitar bass drums, 120 bpm": 212, ...}}

(description → number of training clips it describes; `unknown` is the description trained on random
clips, the row every description outside the list maps to). A prompt is matched by its set of known words,
so case, order, punctuation and unknown words do not matter: "Drums and GUITAR" → "guitar drums". A prompt
whose known words form no trained description is played as the longest trained description within them (the
most-trained one on a tie; a model trained on descriptions of at most two phrases plays "guitar bass drums" as
one of its pairs, and says which words it left out); with no known word at all it becomes `unknown` (the model
then plays something, unguided).
Folders without the file (hub models, T5 text encoders) take prompts as they are.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from realtime.musicgen.record import is_package, training_record
from sae.atomic import atomic_write_text
from sae.errors import UserError

FILE = "descriptions.json"
_WORD = re.compile(r"[^\W_]+")


def words(text: str) -> list[str]:
    """Case-folded words (letters and digits of any script, NFKC-normalised: full-width letters are the ASCII ones)
    of `text`, in order. ASCII letters alone cut `guitàr` into `guit` and `r`, and took `brassé` for brass without a
    word (hunt 181)."""
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())


@dataclass
class DescriptionVocab:
    """Args:
    descriptions: trained description → training clips it describes.
    unknown: the description standing for anything else.
    """

    descriptions: dict[str, int]
    unknown: str

    def __post_init__(self) -> None:
        self.by_words = {frozenset(words(d)): d for d in self.descriptions}
        self.known_words = set().union(*self.by_words) if self.by_words else set()

    @classmethod
    def load(cls, folder: str | Path) -> DescriptionVocab | None:
        """The vocabulary of a model folder, or None when it has no `descriptions.json`."""
        path = Path(folder) / FILE
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls({str(k): int(v) for k, v in data["descriptions"].items()}, str(data["unknown"]))
        except (ValueError, KeyError, TypeError, AttributeError):
            raise UserError(f"{path}: expected {{'descriptions': {{text: clips}}, 'unknown': text}}") from None

    @classmethod
    def of_model(cls, source: str | Path) -> DescriptionVocab | None:
        """The vocabulary of a model given by folder or hub id (None: a hub id, or a folder with no table of
        descriptions). A package `training.musicgen.package` wrote (its `training.json` records the LM and the codec
        trainings) missing its `descriptions.json` is refused: its prompts would play lookup-table rows no training
        touched, with no note."""
        folder = Path(source)
        if not folder.is_dir():
            return None
        vocab = cls.load(folder)
        if vocab is None and is_package(training_record(folder)):
            raise UserError(
                f"--model {folder}: {FILE} is missing (a trained package lists the descriptions its text table "
                "knows; restore it from the package)"
            )
        return vocab

    def canonical(self, prompt: str) -> tuple[str, str | None]:
        """(the trained description for `prompt`, a note when words were dropped or nothing matched)."""
        ws = words(prompt)
        dropped = sorted({w for w in ws if w not in self.known_words})
        key = frozenset(w for w in ws if w in self.known_words)
        found = self.by_words.get(key)
        if found is None and key:
            found = self.within(key)
            if found is not None:
                left = sorted(key - set(words(found)))
                why = f"unknown words {', '.join(dropped)} ignored; " if dropped else ""
                note = f"prompt {prompt!r}: {why}no trained description has all of it, played as {found!r} "
                return found, note + f"(without {', '.join(left)})"
        if found is None:
            why = f"unknown words {', '.join(dropped)}; " if dropped else ""
            note = f"prompt {prompt!r}: {why}not a description the model knows, played as {self.unknown!r}"
            return self.unknown, note
        if dropped:
            return found, f"prompt {prompt!r}: unknown words {', '.join(dropped)} ignored, played as {found!r}"
        return found, None

    def within(self, key: frozenset[str]) -> str | None:
        """The longest trained description whose words are all in `key` (most clips, then text, on a tie)."""
        inside = [(len(ws), self.descriptions[d], d) for ws, d in self.by_words.items() if ws <= key]
        inside = [c for c in inside if c[2] != self.unknown]
        return max(inside, key=lambda c: (c[0], c[1], c[2]))[2] if inside else None

    def save(self, folder: str | Path) -> Path:
        path = Path(folder) / FILE
        data = {"version": 1, "unknown": self.unknown, "descriptions": dict(sorted(self.descriptions.items()))}
        atomic_write_text(path, json.dumps(data, indent=1) + "\n")
        return path


def canonical_prompts(
    vocab: DescriptionVocab | None, prompts: Sequence[str | None]
) -> tuple[list[str | None], list[str]]:
    """Prompts mapped onto `vocab` (None stays None: the null condition) and the notes; identity without vocab."""
    if vocab is None:
        return list(prompts), []
    out: list[str | None] = []
    notes: list[str] = []
    for p in prompts:
        if p is None:
            out.append(None)
            continue
        d, note = vocab.canonical(p)
        out.append(d)
        if note:
            notes.append(note)
    return out, notes
