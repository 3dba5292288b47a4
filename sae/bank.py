"""The concept bank: named concepts as SAE features with weights, saved as one YAML file.

Layout (ARCHITECTURE.md, "Concept bank"):

    version: 1
    concepts:
      guitar:
        model: {name: demo_rave.ts, sha256: 0123abcd...}
        hook: latent
        sae: sae/latent                      # relative to the bank file
        sae_sha256: 89ab...                  # the SAE's identity (sae.io.sae_weights_sha256); a mismatch is refused
        features:
          - {index: 12, weight: 1.0, typical: 1.7}
        default: {mode: "none", strength: 1.0}       # none (no edit) when absent
        auroc: {sae_probe: 0.97, diff_means: 0.93, logistic_raw: 0.95}
        auroc_interval: {sae_probe: [0.93, 1.0], diff_means: [0.86, 0.98], logistic_raw: [0.89, 0.99]}  # optional
        clips: {with: 24, without: 24, sources: 12}  # optional: the clips the AUROCs were measured on
        verdict: tied                                # optional: SAE better / baseline better / tied
        probe: {intercept: -2.1, coef: {12: 1.4}}   # optional: the fitted probe in raw units (meters)
        steer:                                       # optional: the features edits move, chosen by effect
          threshold: 0.02                            # share of the concept's mean difference a feature must carry
          features: [{index: 12, weight: 1.0, typical: 1.7}, {index: 40, weight: 0.6, typical: 0.9}]
          off_left: 0.3                              # share of the concept's mean difference `off` leaves
          error_share: 0.1                           # share of it carried by the SAE's error term (kept)
          spared: [piano]                            # optional: concepts whose steering features it leaves alone
        alone:                                       # optional: when the concept plays alone (`concept find --alone`)
          memory_s: 2.0                              # the detector's causal memory of the features, seconds
          intercept: -6.1
          coef: [0.0, 1.3, ...]                      # per SAE feature, on that memory of log1p(f)
          threshold: 0.08                            # probability above which a frame holds the concept alone
          silence: [0.02, -0.4, ...]                 # the hook's activation of silence, what `off` puts there
          auroc: 0.998                               # optional: on the frames of held-out clips

`auroc_interval` is each method's 95 % interval of its held-out AUROC (`sae.stats.auroc_interval`), `clips` how
many clips with and without the concept the probes were fitted and evaluated on (out of fold) and, where the search
grouped them (`concept find --groups`), from how many sources (folds never split one; without it every clip was its
own source), and `verdict` whether the SAE probe beat both raw baselines ("SAE better") or one beat it ("baseline
better") by the paired intervals of their differences (`sae.probe.probe_verdict`), or neither ("tied"); all three
are absent from banks written before they were recorded, which then show the point values alone.

`alone` lets `off` remove a concept that plays alone (a drum solo) instead of re-timbring it: frames the detector
calls alone get the hook's activation of silence (`sae.alone`).

`features` are the few features the detector (probe) needs; `steer.features` are every feature whose
effect reaches the threshold, which `off` / `on` / `clamp` / `scale` move (`sae.steering`).

Loading validates everything and names the first bad field in one line (`UserError`); saving writes a
temp file and renames it, so a bank is never half-written.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from sae.atomic import atomic_write_text
from sae.controls import ALL_MODES, DECIMAL, NAME_NOT_TEXT, PROBE_LIMIT, TYPICAL_LIMIT, control_problem, spelled
from sae.errors import UserError
from sae.jsonfile import is_count, is_number
from sae.yamlfile import parse_yaml

VERSION = 1
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # fullmatch: `$` also matches before a final newline
CONCEPT_KEYS = (
    "model",
    "hook",
    "sae",
    "sae_sha256",
    "features",
    "default",
    "auroc",
    "auroc_interval",
    "clips",
    "verdict",
    "probe",
    "steer",
    "alone",
)
AUROC_METHODS = ("sae_probe", "diff_means", "logistic_raw")
BANKED_AUROCS = (*AUROC_METHODS, "diff_means_latent")  # an inner hook's concepts also carry the raw latents' own
VERDICTS = ("SAE better", "baseline better", "tied")


@dataclass(frozen=True)
class ModelRef:
    """Which model's activations a concept lives in: file name and sha256 of the file."""

    name: str
    sha256: str

    @classmethod
    def of_file(cls, path: str | os.PathLike) -> ModelRef:
        return cls(Path(path).name, file_sha256(path))


@dataclass(frozen=True)
class ConceptFeature:
    """One SAE feature of a concept: its index, probe weight (max 1) and typical activation when active."""

    index: int
    weight: float = 1.0
    typical: float = 1.0


@dataclass
class ConceptDefault:
    """The concept's control when a session or render starts; `none` (no edit) unless the bank says otherwise."""

    mode: str = "none"
    strength: float = 1.0

    def spelled(self) -> str:
        """As a `--set` mode: `none`, `off`, `on:S`, `clamp:S` or `scale:G` (a scale's gain is its strength)."""
        return spelled(self.mode, self.strength)


@dataclass(frozen=True)
class ConceptProbe:
    """The concept's fitted probe in raw units: P(concept) = sigmoid(intercept + Σ coef[i] · mean_t f[t, i])
    over a window of SAE features f (`sae.meter`). Optional in a bank (older banks have none: no meter)."""

    intercept: float
    coef: dict[int, float]

    def to_dict(self) -> dict[str, Any]:
        return {"intercept": _r(self.intercept), "coef": {int(i): _r(c) for i, c in self.coef.items()}}


def _features_out(features: list[ConceptFeature]) -> list[dict[str, Any]]:
    """Features as the bank writes them: 6 significant digits, unless rounding takes weight x typical past
    `TYPICAL_LIMIT` (the saved bank would no longer load); then as they are."""
    out = []
    for f in features:
        weight, typical = _r(f.weight), _r(f.typical)
        if abs(weight) * typical > TYPICAL_LIMIT:
            weight, typical = float(f.weight), float(f.typical)
        out.append({"index": f.index, "weight": weight, "typical": typical})
    return out


@dataclass(frozen=True)
class ConceptSteer:
    """The features a concept's edits move, chosen by effect: every feature that fires more with the concept
    and carries at least `threshold` of its mean difference at the hook (weights calibrated so `on:1` moves
    one mean difference along it); and what `off` cannot remove, as shares of that mean difference:
    `off_left` (left after `off` of these features) and `error_share` (carried by the SAE's error term,
    which every edit keeps); `spared`: concepts of the bank whose steering features were left out (`concept
    find --spare`), so editing this one does not move them through a shared feature."""

    threshold: float
    features: list[ConceptFeature]
    off_left: float | None = None
    error_share: float | None = None
    spared: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "threshold": _r(self.threshold),
            "features": _features_out(self.features),
        }
        for key in ("off_left", "error_share"):
            if getattr(self, key) is not None:
                out[key] = _r(getattr(self, key))
        if self.spared:
            out["spared"] = list(self.spared)
        return out


@dataclass(frozen=True)
class ConceptAlone:
    """When the concept plays alone: P = sigmoid(intercept + coef · m_t), where m_t is a causal exponential mean of
    log1p(f) over the hook's frames with a `memory_s` seconds time constant; frames with P > `threshold` hold the
    concept alone, and `off` puts the hook's activation of `silence` there (`sae.alone`)."""

    memory_s: float
    intercept: float
    coef: tuple[float, ...]
    threshold: float
    silence: tuple[float, ...]
    auroc: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "memory_s": _r(self.memory_s),
            # at full precision: rounded to 6 digits, the detector called more of the other frames alone than its
            # 1 % budget (25 where the fit allowed 24), in the engine, renders and the nn~ file alike
            "intercept": float(self.intercept),
            "coef": [float(c) for c in self.coef],
            "threshold": float(self.threshold),
            "silence": [_r(x) for x in self.silence],
        }
        return out | ({"auroc": _r(self.auroc)} if self.auroc is not None else {})


@dataclass(frozen=True)
class ConceptClips:
    """How many clips with and without the concept its probes were fitted and evaluated on (out of fold), and
    from how many sources where the search grouped them (None: every clip its own source)."""

    with_: int
    without: int
    sources: int | None = None

    def to_dict(self) -> dict[str, int]:
        return {"with": self.with_, "without": self.without} | ({"sources": self.sources} if self.sources else {})

    def text(self) -> str:
        return f"{self.with_}/{self.without}" + (f" from {self.sources} sources" if self.sources else "")


@dataclass
class Concept:
    """A concept: features of one SAE on one hook of one model, how to steer it by default, and how well
    its probe separated the examples (held-out AUROC per method, with its 95 % interval and the clip counts when
    the bank records them)."""

    name: str
    model: ModelRef
    hook: str
    sae: str
    features: list[ConceptFeature]
    default: ConceptDefault = field(default_factory=ConceptDefault)
    auroc: dict[str, float] = field(default_factory=dict)
    probe: ConceptProbe | None = None
    steer: ConceptSteer | None = None
    sae_sha256: str | None = None  # identity of the SAE's weights when the concept was found (None: older bank)
    auroc_interval: dict[str, tuple[float, float]] = field(default_factory=dict)  # method -> 95 % interval
    clips: ConceptClips | None = None  # clips with / without the concept (None: older bank)
    verdict: str | None = None  # one of VERDICTS (None: older bank)
    alone: ConceptAlone | None = None  # when it plays alone (None: `off` has no detector)

    def auroc_text(self, method: str, spec: str = ".2f") -> str:
        """`0.97 [0.93, 1.00]`: the method's AUROC and its interval when the bank has one; "-" without an AUROC."""
        if method not in self.auroc:
            return "-"
        text = format(self.auroc[method], spec)
        if method in self.auroc_interval:
            lo, hi = self.auroc_interval[method]
            text += f" [{format(lo, spec)}, {format(hi, spec)}]"
        return text

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": {"name": self.model.name, "sha256": self.model.sha256},
            "hook": self.hook,
            "sae": self.sae,
            **({"sae_sha256": self.sae_sha256} if self.sae_sha256 else {}),
            "features": _features_out(self.features),
            "default": {"mode": self.default.mode, "strength": _r(self.default.strength)},
            "auroc": {k: _r(v) for k, v in self.auroc.items()},
        }
        if self.auroc_interval:
            out["auroc_interval"] = {k: [_r(lo), _r(hi)] for k, (lo, hi) in self.auroc_interval.items()}
        if self.clips is not None:
            out["clips"] = self.clips.to_dict()
        if self.verdict is not None:
            out["verdict"] = self.verdict
        if self.probe is not None:
            out["probe"] = self.probe.to_dict()
        if self.steer is not None:
            out["steer"] = self.steer.to_dict()
        if self.alone is not None:
            out["alone"] = self.alone.to_dict()
        return out


EDIT_KEYS = ("hook", "sae_sha256", "features", "steer", "alone")  # what a concept's edits do; not its figures


def edit_sha256(concept: Concept) -> str:
    """Identity of what the concept's edits do (its hook, SAE, features, steering and alone detector), as the bank
    writes them: a judge records it, so a verdict is shown only for the edit it judged (a concept found again on
    the same SAE with other features is another edit)."""
    d = concept.to_dict()
    edit = {k: d[k] for k in EDIT_KEYS if k in d}
    return hashlib.sha256(json.dumps(edit, sort_keys=True).encode()).hexdigest()


def inert_note(concept: Concept) -> str | None:
    """A note when every feature the concept's edits move has weight 0 (no SAE feature told it apart there): `on`,
    which adds along the weights, plays the plain model bit for bit at any strength, while `off`, `scale` and
    `clamp`, which set the features whatever their weight, change the sound without removing the concept."""
    moved = concept.steer.features if concept.steer is not None else concept.features
    if any(f.weight for f in moved):
        return None
    return (f"{concept.name} at {concept.hook}: every feature's weight is 0 (no SAE feature tells it apart here): "
            "`on` changes nothing, and off, scale and clamp move features that do not mark it")  # fmt: skip


def _r(x: float) -> float:
    return float(f"{float(x):.6g}")


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ConceptBank:
    """Concepts by name, bound to the YAML file they load from / save to (`sae` paths are relative to it).

    Args:
        path: the bank file.
        concepts: name -> Concept (insertion order is kept in the file).
    """

    def __init__(self, path: str | os.PathLike, concepts: dict[str, Concept] | None = None):
        self.path = Path(path)
        self.concepts: dict[str, Concept] = dict(concepts or {})

    # -- files
    @classmethod
    def load(cls, path: str | os.PathLike, missing_ok: bool = False) -> ConceptBank:
        """Read and validate a bank; a missing file is an empty bank when `missing_ok`."""
        path = Path(path)
        if not path.exists():
            if missing_ok:
                return cls(path)
            raise UserError(f"{path}: no such concept bank")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"{path}: not a readable YAML concept bank ({first})") from None
        return cls(path, parse_bank(parse_yaml(text, str(path), "a readable YAML concept bank"), str(path)))

    @classmethod
    @contextlib.contextmanager
    def editing(cls, path: str | os.PathLike, missing_ok: bool = True) -> Iterator[ConceptBank]:
        """The bank at `path` as it is now (empty if missing and `missing_ok`), read under a lock on its folder that
        is held until the bank is saved on leaving (not saved on an error). Commands changing one bank at once (two
        `concept find`, a find and a `concept remove`) each keep what the others wrote; loaded at their start and
        saved at their end, the last one erased the others' concepts."""
        path = Path(path)
        if not missing_ok and not path.exists():
            raise UserError(f"{path}: no such concept bank")
        # the real file's folder, not the file (a save replaces it) nor a link's folder (a save writes through links:
        # an edit through a link and one of the file itself each kept only its own change)
        folder = Path(os.path.realpath(path)).parent
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            bank = cls.load(path, missing_ok=missing_ok)
            yield bank
            bank.save()
        finally:
            os.close(fd)  # releases the lock

    def save(self, path: str | os.PathLike | None = None) -> Path:
        """Write atomically (temp file + rename) to `path` or the bank's own path. Saved into another folder, the
        concepts' relative `sae` paths are rewritten from there (they pointed beside the copy)."""
        target = Path(path) if path is not None else self.path
        target.parent.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        base = Path(os.path.realpath(target)).parent
        if base != self.folder:
            for name, c in self.concepts.items():
                if not Path(c.sae).is_absolute():
                    data["concepts"][name]["sae"] = Path(os.path.relpath(self.sae_dir(c).resolve(), base)).as_posix()
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=120)
        atomic_write_text(target, text)
        return target

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "concepts": {n: c.to_dict() for n, c in self.concepts.items()}}

    # -- contents
    def __contains__(self, name: str) -> bool:
        return name in self.concepts

    def __len__(self) -> int:
        return len(self.concepts)

    def __iter__(self):
        return iter(self.concepts.values())

    def position(self, name: str) -> int:
        """`name`'s place in the bank (-1: not in it): edits named in any order apply in this order, so a later
        concept's `alone` silence goes over an earlier one's (live, renders and the nn~ export alike)."""
        return list(self.concepts).index(name) if name in self.concepts else -1

    def get(self, name: str) -> Concept:
        if name not in self.concepts:
            known = ", ".join(self.concepts) or "the bank is empty"
            raise UserError(f"concept {name!r}: not in {self.path} ({known})")
        return self.concepts[name]

    def add(self, concept: Concept, replace: bool = True) -> str | None:
        """Add a (validated) concept; with `replace=False` an existing name is an error. Returns a note naming the
        concept it replaced (a RAVE concept replaced by a MusicGen one of the same name went without a word)."""
        validate_concept(concept.name, concept.to_dict(), str(self.path))
        old = self.concepts.get(concept.name)
        if not replace and old is not None:
            raise UserError(f"concept {concept.name!r}: already in {self.path}")
        self.concepts[concept.name] = concept
        if old is None:
            return None
        where = f"{old.model.name} at {old.hook}"
        other = " (another model's: --no-replace keeps one)" if old.model != concept.model else ""
        return f"replaced concept {concept.name!r} of {self.path}, found on {where}{other}"

    def remove(self, name: str) -> Concept:
        self.get(name)
        return self.concepts.pop(name)

    def sae_dir(self, concept: Concept | str) -> Path:
        """The concept's SAE directory, resolved against the bank file's folder (`folder`); `~` is the home folder."""
        c = self.get(concept) if isinstance(concept, str) else concept
        p = Path(c.sae).expanduser()
        return p if p.is_absolute() else (self.folder / p)

    def existing_sae_dir(
        self, concept: Concept | str, way_out: str = "pass --sae DIR (a folder of the same weights)"
    ) -> Path:
        """`sae_dir`, or one line naming the concept, the bank, what its `sae:` says and `way_out` where that folder
        is gone (a bank written on another machine, or moved without its SAE): it said "SAE /home/x/sae: no such
        directory", naming neither the bank nor what to do (hunt 214)."""
        c = self.get(concept) if isinstance(concept, str) else concept
        folder = self.sae_dir(c)
        if not folder.exists():
            raise UserError(
                f"concept {c.name!r} in {self.path}: its SAE {folder} (sae: {c.sae}) does not exist; {way_out}, or "
                "fix the bank's sae: line"
            )
        return folder

    def check_sae(self, concept: Concept | str, sae_dir: str | os.PathLike | None = None) -> None:
        """Refuse a concept whose SAE (its own folder, or `sae_dir`) no longer holds the weights it was found with:
        an SAE retrained or replaced in place must not silently point the concept at unrelated features."""
        c = self.get(concept) if isinstance(concept, str) else concept
        if c.sae_sha256 is None:  # a bank written before SAE identities: nothing to compare
            return
        from sae.io import sae_weights_sha256

        folder = Path(sae_dir) if sae_dir is not None else self.sae_dir(c)
        now = sae_weights_sha256(folder)
        if now != c.sae_sha256:
            raise UserError(
                f"concept {c.name!r} in {self.path} was found with SAE weights {c.sae_sha256[:12]}, but {folder} "
                f"now holds {now[:12]} (retrained or replaced?): find the concept again with this SAE"
            )

    def uses_sae(self, concept: Concept | str, sae_dir: str | os.PathLike) -> bool:
        """Whether `concept` was found with the SAE at `sae_dir`: its own folder, or one holding the very weights it
        records (a copy, or the SAE beside a bank that was moved)."""
        c = self.get(concept) if isinstance(concept, str) else concept
        if self.sae_dir(c).resolve() == Path(sae_dir).resolve():
            return True
        from sae.io import WEIGHTS_FILE, sae_weights_sha256

        if c.sae_sha256 is None or not (Path(sae_dir) / WEIGHTS_FILE).is_file():
            return False
        return sae_weights_sha256(sae_dir) == c.sae_sha256

    def stale_spares(self) -> list[str]:
        """Lines naming each `steer.spared` that no longer holds: the spared concept was removed, was found again on
        another model, SAE or hook (feature numbers then name other features), or now has steering features (else
        probe features) that the sparing concept's edits move."""
        lines = []
        for c in self:
            for name in c.steer.spared if c.steer else ():
                if name not in self:
                    lines.append(f"{c.name} spares {name}, which is no longer in the bank")
                    continue
                other = self.get(name)
                if not self._same_sae(c, other):
                    lines.append(
                        f"{c.name} spares {name}, but {name} is now found on another model, SAE or hook: find both on "
                        "one SAE to spare it again"
                    )
                    continue
                theirs = {f.index for f in (other.steer.features if other.steer else other.features)}
                shared = sorted(theirs & {f.index for f in c.steer.features})
                if shared:
                    lines.append(
                        f"{c.name} spares {name}, but {c.name}'s edits now move {len(shared)} of {name}'s features "
                        f"({', '.join(map(str, shared[:8]))}{' …' * (len(shared) > 8)}): find {c.name} again with "
                        f"--spare {name}"
                    )
        return lines

    def _same_sae(self, a: Concept, b: Concept) -> bool:
        """Whether two concepts were found on one model, hook and SAE (its weights where both record them)."""
        if a.hook != b.hook or a.model.sha256 != b.model.sha256:
            return False
        if a.sae_sha256 and b.sae_sha256:
            return a.sae_sha256 == b.sae_sha256
        return self.sae_dir(a).resolve() == self.sae_dir(b).resolve()

    def relative_sae(self, sae_dir: str | os.PathLike) -> str:
        """How to write `sae_dir` into this bank: relative to the bank's folder."""
        return Path(os.path.relpath(Path(sae_dir).resolve(), self.folder)).as_posix()

    @property
    def folder(self) -> Path:
        """The folder the bank's relative `sae` paths start from: the real file's, also when `path` is a link to
        it (a save writes through the link, so one path must serve every way to the file)."""
        return Path(os.path.realpath(self.path)).parent

    def rich_table(self):
        """A rich Table: one row per concept."""
        from rich.table import Table

        table = Table(
            title=f"{self.path} — {len(self)} concept(s)",
            caption="features: SAE feature indices, largest probe weight first (and how many features edits steer, "
            "with the concepts whose steering features they spare). AUROC (held out) [95 % interval]: "
            "SAE: the SAE probe, dm: difference of means and raw: logistic probe on the raw activations; clips: "
            "with / without the concept, out of fold (and their sources where the search grouped them); then "
            "whether the SAE probe beat the raw baselines beyond the interval of the difference (an older bank "
            "records no interval, clips or verdict).",
            caption_justify="left",
        )
        # a name too long for a narrow terminal wraps, never "distorted_g…" (the name `concept remove` takes); a short
        # one keeps its width: at 45 columns the AUROC column's kept its width and no name showed at all (hunt 156)
        name_width = min(max((len(c.name) for c in self), default=7), 16)
        for col in ("concept", "model\nhook · SAE", "features", "default", "AUROC [95 %]\nclips with/without"):
            table.add_column(col, overflow="fold", min_width=name_width if col == "concept" else None)
        for c in self:
            feats = ", ".join(str(f.index) for f in c.features[:8])
            if len(c.features) > 8:
                feats += f" +{len(c.features) - 8}"
            if c.steer is not None:
                feats += f"\nsteers {len(c.steer.features)}" + (
                    f", spares {', '.join(c.steer.spared)}" if c.steer.spared else ""
                )
            if c.alone is not None:
                feats += "\noff silences it alone"
            default = c.default.spelled()
            short = ("SAE", "dm", "raw")
            auroc = "\n".join(f"{s} {c.auroc_text(k)}" for k, s in zip(AUROC_METHODS, short, strict=True))
            if c.clips is not None:
                auroc += f"\nclips {c.clips.text()}"
            if c.verdict is not None:
                auroc += f"\n{c.verdict}"
            where = f"{c.model.name} ({c.model.sha256[:8]})\n{c.hook} · {c.sae}"
            table.add_row(c.name, where, feats, default, auroc)
        return table


# ---------------------------------------------------------------- validation


def parse_bank(data: Any, where: str) -> dict[str, Concept]:
    if data is None:
        data = {"version": VERSION, "concepts": {}}
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a mapping with 'version' and 'concepts'")
    extra = sorted(set(data) - {"version", "concepts"})
    if extra:
        raise UserError(f"{where}: unknown top-level key {extra[0]!r}; expected 'version' and 'concepts'")
    if type(data.get("version")) is not int or data["version"] != VERSION:  # `true` passed as 1
        raise UserError(f"{where}: version {data.get('version')!r}; expected {VERSION}")
    concepts = {} if data.get("concepts") is None else data["concepts"]  # `[]` was an empty bank, then overwritten
    if not isinstance(concepts, dict):
        raise UserError(f"{where}: 'concepts' must be a mapping of name -> concept")
    for name in concepts:
        if not isinstance(name, str):  # YAML 1.1 reads off / on / yes / no / null and 0x10 as other types
            raise UserError(f"{where}: concept name {name!r} {NAME_NOT_TEXT}")
    return {name: validate_concept(name, spec, where) for name, spec in concepts.items()}


def _num(value: Any, what: str, lo: float | None = None, hi: float | None = None) -> float:
    if isinstance(value, str) and DECIMAL.fullmatch(value.strip()):  # YAML 1.1 reads `2e0` (no dot) as text
        value = float(value)
    ok = is_number(value)
    if ok and lo is not None:
        ok = float(value) >= lo
    if ok and hi is not None:
        ok = float(value) <= hi
    if not ok:
        rng = f" in [{lo}, {hi}]" if lo is not None and hi is not None else (f" >= {lo}" if lo is not None else "")
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."  # not all 400 digits of one
        raise UserError(f"{what}: {shown}; expected a finite number{rng}")
    return float(value)


@contextlib.contextmanager
def named_errors(path: str | os.PathLike | None) -> Iterator[None]:
    """A one-line error about what was read from the bank at `path` (a feature index past the SAE's, a detector
    that does not fit the hook) names the file too; None: no bank, nothing added."""
    try:
        yield
    except UserError as exc:
        if path is None or str(path) in str(exc):
            raise
        raise UserError(f"concept bank {path}: {exc}") from None


def check_concept_name(name: str, what: str = "concept name") -> None:
    """A concept name (a bank key, an OSC address part): `NAME_RE`, or one line naming it. `export nn` may still
    refuse one as an nn~ attribute (`mix`, a Python keyword, two names that both become `a_b`)."""
    if not NAME_RE.fullmatch(name):
        raise UserError(f"{what} {name!r}: expected ASCII letters, digits, '_', '-' or '.'")


def validate_concept(name: str, spec: Any, where: str) -> Concept:
    """Check one concept mapping and build the `Concept` (one-line `UserError` naming the bad field)."""
    check_concept_name(name, f"{where}: concept name")
    at = f"{where}: concept {name!r}"
    if not isinstance(spec, dict):
        raise UserError(f"{at}: expected a mapping with {', '.join(CONCEPT_KEYS)}")
    extra = sorted(set(spec) - set(CONCEPT_KEYS))
    if extra:
        raise UserError(f"{at}: unknown key {extra[0]!r}; expected {', '.join(CONCEPT_KEYS)}")
    for key in ("model", "hook", "sae", "features"):
        if key not in spec:
            raise UserError(f"{at}: missing {key!r}")
    model = spec["model"]
    if not (isinstance(model, dict) and isinstance(model.get("name"), str) and isinstance(model.get("sha256"), str)):
        raise UserError(f"{at}: model must be {{name: str, sha256: str}}")
    if extra := sorted(set(model) - {"name", "sha256"}):
        raise UserError(f"{at}: model: unknown key {extra[0]!r}; expected name, sha256")
    if not re.fullmatch(r"[0-9a-f]{64}", model["sha256"]):  # a shortened one could match no model file
        raise UserError(f"{at}: model.sha256 {model['sha256']!r}; expected 64 lowercase hex digits")
    for key in ("hook", "sae"):
        if not isinstance(spec[key], str) or not spec[key]:
            raise UserError(f"{at}: {key} must be a non-empty string")
    sae_sha = spec.get("sae_sha256")
    if sae_sha is not None and not (isinstance(sae_sha, str) and re.fullmatch(r"[0-9a-f]{64}", sae_sha)):
        raise UserError(f"{at}: sae_sha256 {sae_sha!r}; expected 64 lowercase hex digits")
    features = _features(spec["features"], at, "features")
    default = spec.get("default")
    default = {} if default is None else default
    if not isinstance(default, dict):  # `default: off` is YAML's false: it loaded as mode none, without a word
        hint = " (a bare off / on is YAML's false / true: write {mode: 'off'})" if isinstance(default, bool) else ""
        raise UserError(f"{at}: default must be {{mode, strength}}{hint}")
    if extra := sorted(set(default) - {"mode", "strength"}):  # `strenght: 4` loaded as strength 1
        raise UserError(f"{at}: default: unknown key {extra[0]!r}; expected mode, strength")
    mode = default.get("mode", ConceptDefault.mode)
    if isinstance(mode, bool):  # YAML 1.1 reads a bare on/off as a boolean (a hand-edited `mode: off`)
        mode = "on" if mode else "off"
    if mode not in ALL_MODES:
        raise UserError(f"{at}: default.mode {mode!r}; expected one of {', '.join(ALL_MODES)}")
    if mode == "scale" and "strength" not in default:  # gain 1: no edit, which render refuses as `X=scale`
        raise UserError(f"{at}: default {{mode: scale}}: expected strength G, the gain (scale alone is gain 1: "
                        "no edit)")  # fmt: skip
    strength = _num(default.get("strength", 1.0), f"{at}: default.strength")
    problem = control_problem(mode, strength, strength if mode == "scale" else 1.0)
    if problem:  # the rule every consumer (render, live, eval, nn~) applies: refused where it is written
        raise UserError(f"{at}: default {problem}")
    auroc = spec.get("auroc")
    auroc = {} if auroc is None else auroc
    if not isinstance(auroc, dict):
        raise UserError(f"{at}: auroc must be a mapping of method -> AUROC")
    if unknown := [k for k in auroc if k not in BANKED_AUROCS]:  # a typo's figure showed as "-" without a word
        raise UserError(f"{at}: auroc.{unknown[0]}: unknown method; expected {', '.join(BANKED_AUROCS)}")
    aurocs = {str(k): _num(v, f"{at}: auroc.{k}", 0.0, 1.0) for k, v in auroc.items()}
    probe = _probe(spec.get("probe"), at)
    intervals = _intervals(spec.get("auroc_interval"), aurocs, at)
    clips = _clips(spec.get("clips"), at)
    verdict = spec.get("verdict")
    if verdict is not None and verdict not in VERDICTS:
        raise UserError(f"{at}: verdict {verdict!r}; expected one of {', '.join(VERDICTS)}")
    return Concept(
        name,
        ModelRef(model["name"], model["sha256"]),
        spec["hook"],
        spec["sae"],
        features,
        ConceptDefault(mode, strength),
        aurocs,
        probe,
        _steer(spec.get("steer"), at, name),
        sae_sha,
        intervals,
        clips,
        verdict,
        _alone(spec.get("alone"), at),
    )


def _intervals(spec: Any, aurocs: dict[str, float], at: str) -> dict[str, tuple[float, float]]:
    """`auroc_interval`: method -> [lo, hi], two numbers in [0, 1] with lo <= hi, for a method `auroc` has."""
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise UserError(f"{at}: auroc_interval must be a mapping of method -> [lo, hi]")
    out: dict[str, tuple[float, float]] = {}
    for k, v in spec.items():
        what = f"{at}: auroc_interval.{k}"
        ok = isinstance(v, list | tuple) and len(v) == 2
        ok = ok and all(is_number(x) for x in v)
        if not (ok and 0.0 <= v[0] <= v[1] <= 1.0):
            raise UserError(f"{what}: {v!r}; expected [lo, hi], two numbers in [0, 1] with lo <= hi")
        if str(k) not in aurocs:
            raise UserError(f"{what}: no auroc.{k} it is the interval of")
        out[str(k)] = (float(v[0]), float(v[1]))
    return out


def _clips(spec: Any, at: str) -> ConceptClips | None:
    """`clips`: {with: N, without: M} and optionally sources: S, positive integers."""
    if spec is None:
        return None
    ok = isinstance(spec, dict) and {"with", "without"} <= set(spec) <= {"with", "without", "sources"}
    ok = ok and all(is_count(spec[k]) and spec[k] > 0 for k in spec)
    ok = ok and spec.get("sources", 0) <= spec["with"] + spec["without"]  # each source holds one clip at least
    if not ok:
        raise UserError(
            f"{at}: clips {spec!r}; expected {{with: N, without: M}} and optionally sources: S, positive integers, "
            "S at most N + M"
        )
    return ConceptClips(spec["with"], spec["without"], spec.get("sources"))


def _features(feats: Any, at: str, key: str) -> list[ConceptFeature]:
    if not isinstance(feats, list) or not feats:
        raise UserError(f"{at}: {key} must be a non-empty list of {{index, weight, typical}}")
    features: list[ConceptFeature] = []
    seen: set[int] = set()
    for i, feat in enumerate(feats):
        if not isinstance(feat, dict) or "index" not in feat:
            raise UserError(f"{at}: {key}[{i}] must be a mapping with index, weight, typical")
        index = feat["index"]
        if not is_count(index):
            raise UserError(f"{at}: {key}[{i}].index {index!r}; expected a non-negative integer")
        if index in seen:
            raise UserError(f"{at}: {key}[{i}].index {index} appears twice")
        seen.add(index)
        bad = sorted(set(feat) - {"index", "weight", "typical"})
        if bad:
            raise UserError(f"{at}: {key}[{i}] unknown key {bad[0]!r}")
        weight = _num(feat.get("weight", 1.0), f"{at}: {key}[{i}].weight")
        typical = _num(feat.get("typical", 1.0), f"{at}: {key}[{i}].typical", lo=0.0, hi=TYPICAL_LIMIT)
        if abs(weight) * typical > TYPICAL_LIMIT:  # what `on:1` adds to the feature: past it, garbage or a NaN edit
            raise UserError(f"{at}: {key}[{i}].weight {weight:g}: weight x typical ({abs(weight) * typical:.7g}) is "
                            f"what on:1 adds; expected at most {TYPICAL_LIMIT:g}")  # fmt: skip
        features.append(ConceptFeature(index, weight, typical))
    return features


def _steer(spec: Any, at: str, name: str) -> ConceptSteer | None:
    if spec is None:
        return None
    keys = {"threshold", "features", "off_left", "error_share", "spared"}
    if not isinstance(spec, dict) or not {"threshold", "features"} <= set(spec) or set(spec) - keys:
        raise UserError(f"{at}: steer must be {{threshold, features[, off_left, error_share, spared]}}")
    shares = {k: _num(spec[k], f"{at}: steer.{k}") if k in spec else None for k in ("off_left", "error_share")}
    spared = spec.get("spared", [])
    if not isinstance(spared, list) or not all(isinstance(n, str) and NAME_RE.fullmatch(n) for n in spared):
        raise UserError(f"{at}: steer.spared must be a list of concept names")
    if name in spared or len(set(spared)) < len(spared):  # another concept's features, each once
        raise UserError(f"{at}: steer.spared {spared!r}: expected other concepts' names, each once")
    return ConceptSteer(
        _num(spec["threshold"], f"{at}: steer.threshold", lo=0.0),
        _features(spec["features"], at, "steer.features"),
        shares["off_left"],
        shares["error_share"],
        tuple(spared),
    )


def _alone(spec: Any, at: str) -> ConceptAlone | None:
    if spec is None:
        return None
    keys = {"memory_s", "intercept", "coef", "threshold", "silence"}
    if not isinstance(spec, dict) or not keys <= set(spec) or set(spec) - keys - {"auroc"}:
        raise UserError(f"{at}: alone must be {{memory_s, intercept, coef, threshold, silence[, auroc]}}")
    vectors = {}
    for key in ("coef", "silence"):
        v = spec[key]
        if not isinstance(v, list) or not v:
            raise UserError(f"{at}: alone.{key} must be a non-empty list of numbers")
        limit = TYPICAL_LIMIT if key == "silence" else None  # an activation the hook takes, as `typical`
        lo = -limit if limit else None
        vectors[key] = tuple(_num(x, f"{at}: alone.{key}[{i}]", lo, limit) for i, x in enumerate(v))
    memory = _num(spec["memory_s"], f"{at}: alone.memory_s", lo=0.0)
    if memory <= 0:
        raise UserError(f"{at}: alone.memory_s {memory:g}; expected seconds > 0")
    return ConceptAlone(
        memory,
        _num(spec["intercept"], f"{at}: alone.intercept"),
        vectors["coef"],
        _num(spec["threshold"], f"{at}: alone.threshold", 0.0, 1.0),
        vectors["silence"],
        _num(spec["auroc"], f"{at}: alone.auroc", 0.0, 1.0) if "auroc" in spec else None,
    )


def _probe(spec: Any, at: str) -> ConceptProbe | None:
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) != {"intercept", "coef"} or not isinstance(spec["coef"], dict):
        raise UserError(f"{at}: probe must be {{intercept: number, coef: {{feature index: number}}}}")
    coef = {}
    for index, value in spec["coef"].items():
        if not is_count(index):
            raise UserError(f"{at}: probe.coef key {index!r}; expected a non-negative feature index")
        coef[index] = _num(value, f"{at}: probe.coef.{index}", -PROBE_LIMIT, PROBE_LIMIT)
    if not coef:
        raise UserError(f"{at}: probe.coef is empty; expected at least one feature")
    return ConceptProbe(_num(spec["intercept"], f"{at}: probe.intercept", -PROBE_LIMIT, PROBE_LIMIT), coef)
