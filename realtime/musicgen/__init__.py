"""MusicGen backends (audiocraft, transformers) behind one small adapter, with residual-stream hooks.

mg = load_musicgen("facebook/musicgen-small")            # or a local folder; backend auto/explicit
with mg.hooks({3: Recorder(rows=2)}):
    wav = mg.generate(["lofi piano", "rock guitar"], duration=4, seed=0)
"""

from __future__ import annotations

import pickle
from pathlib import Path

from safetensors import SafetensorError

from realtime.musicgen.base import MusicGenBackend, Recorder, parse_layers
from realtime.musicgen.record import TRAINING_FILE, is_package, training_record
from sae.errors import UserError

BACKENDS = ("audiocraft", "transformers")
EXPECTED_FOLDER = (
    "expected a MusicGen folder (audiocraft: state_dict.bin + compression_state_dict.bin; transformers: "
    "config.json + model.safetensors + tokenizer) or a hub id like facebook/musicgen-small"
)
# what transformers' tokenizers load from (without one, AutoTokenizer builds an empty T5 vocabulary: every word <unk>)
TOKENIZER_FILES = ("tokenizer.json", "spiece.model", "tokenizer.model", "vocab.json")


def hub_snapshot(source: str) -> str:
    """A hub cache folder (`models--facebook--musicgen-small`, as huggingface_hub lays it out) → its snapshot
    folder (`snapshots/<refs/main>`, or the only snapshot); any other source unchanged."""
    path = Path(source)
    if not (path.name.startswith("models--") and (path / "snapshots").is_dir()):
        return source
    ref = path / "refs" / "main"
    revision = ref.read_text().strip() if ref.is_file() else ""
    snapshots = sorted(p for p in (path / "snapshots").iterdir() if p.is_dir())
    if revision and (path / "snapshots" / revision).is_dir():
        return str(path / "snapshots" / revision)
    if len(snapshots) == 1:
        return str(snapshots[0])
    raise UserError(
        f"--model {source}: a hub cache folder with {len(snapshots)} snapshots and no refs/main naming one; "
        "pass the snapshot folder (snapshots/<revision>)"
    )


def trained_seconds(source: str | Path) -> float | None:
    """The LM's training segment in seconds, from `training.json` in a local model folder (as the demo
    MusicGen's package writes it): generation past it runs on positions the LM never saw. None when there is
    no such record (hub ids, tiny models, folders of other origin); a damaged one is refused in one line (read as
    none, it silently made 10 s the default of a model trained on 2 s)."""
    folder = hub_snapshot(str(source))
    record = training_record(folder)
    if record is None:
        return None
    try:
        segment = record["lm"]["run"]["sizes"]["segment"]
    except (KeyError, TypeError):
        segment = None
    ok = isinstance(segment, int | float) and not isinstance(segment, bool) and 0 < segment < float("inf")
    if not ok and is_package(record):  # a package records its LM's segment: a damaged one is not "none" (hunt 152)
        raise UserError(f"{Path(folder) / TRAINING_FILE}: lm.run.sizes.segment {segment!r}: expected the LM's "
                        "training segment in seconds; restore the file from the package")  # fmt: skip
    return float(segment) if ok else None


def duration_note(name: str, trained: float | None, seconds: float) -> str | None:
    """A note when `seconds` of generation run past the LM's training segment `trained`, else None."""
    if trained is None or seconds <= trained + 1e-9:
        return None
    return (
        f"{name}'s LM was trained on {trained:g} s segments: {seconds:g} s at a time runs on positions past "
        f"{trained:g} s, which it never saw (expect drift or noise there)"
    )


def detect_backend(source: str) -> str:
    """Backend of a local folder from its files; a hub id defaults to audiocraft (the user's stack)."""
    source = hub_snapshot(source)
    path = Path(source)
    if path.is_dir():
        if (path / "state_dict.bin").exists() or (path / "compression_state_dict.bin").exists():
            for name in ("state_dict.bin", "compression_state_dict.bin"):
                if not (path / name).is_file():
                    raise UserError(f"--model {source}: {name} is missing (an audiocraft MusicGen folder needs both)")
            return "audiocraft"
        weights = any(path.glob("*.safetensors")) or any(path.glob("pytorch_model*.bin"))
        if (path / "config.json").exists():
            if not weights:
                raise UserError(f"--model {source}: model.safetensors is missing (a transformers folder needs it)")
            if not any((path / name).is_file() for name in TOKENIZER_FILES):
                raise UserError(
                    f"--model {source}: the tokenizer is missing (a transformers MusicGen folder needs "
                    f"{' or '.join(TOKENIZER_FILES[:2])} beside the model, as save_pretrained and hub repos have it)"
                )
            return "transformers"
        if (path / "cfg.json").is_file() and (path / "sae_weights.safetensors").is_file():
            raise UserError(f"--model {source}: this is an SAE folder, not MusicGen weights; {EXPECTED_FOLDER}")
        if any(path.glob("model*.safetensors")) or any(path.glob("pytorch_model*.bin")):
            raise UserError(f"--model {source}: config.json is missing (a transformers folder needs it)")
        raise UserError(
            f"--model {source}: folder has neither state_dict.bin (audiocraft) nor config.json (transformers)"
        )
    if path.is_file():
        what = "a TorchScript file (a RAVE export?)" if path.suffix == ".ts" else "a file"
        raise UserError(f"--model {source}: {what}, not MusicGen weights; {EXPECTED_FOLDER}")
    if path.exists() or source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise UserError(f"--model {source}: expected a MusicGen folder or a hub id like facebook/musicgen-small")
    return "audiocraft"


def load_musicgen(source: str | Path, backend: str = "auto", device: str = "cpu") -> MusicGenBackend:
    """Load a MusicGen by hub id or local folder through the backend's real loader."""
    source = hub_snapshot(str(source))
    if backend == "auto":
        backend = detect_backend(source)
    elif backend not in BACKENDS:
        raise UserError(f"--backend {backend!r}: expected auto or one of {', '.join(BACKENDS)}")
    else:
        found = detect_backend(source)  # same checks on the source
        if Path(source).is_dir() and found != backend:
            raise UserError(
                f"--backend {backend}: {source} is a {found} MusicGen folder; pass --backend {found} or auto"
            )
    if not Path(source).exists():  # a hub id: from the cache, or from a hub that answers; refused in seconds
        from realtime.musicgen.hub import check_hub

        check_hub(source, backend)
    try:
        if backend == "audiocraft":
            from realtime.musicgen.audiocraft_backend import AudiocraftMusicGen

            return AudiocraftMusicGen(source, device)
        from realtime.musicgen.transformers_backend import TransformersMusicGen

        return TransformersMusicGen(source, device)
    except (pickle.UnpicklingError, EOFError):  # a .bin weight file that torch cannot read
        raise UserError(
            f"--model {source}: could not load it as {backend} MusicGen weights (a .bin weight file is not a "
            "readable torch file: damaged, truncated or of another kind)"
        ) from None
    except (OSError, ValueError, KeyError, RuntimeError, SafetensorError) as exc:
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()] or [type(exc).__name__]
        # torch's load_state_dict says what is wrong on its second line (missing / unexpected keys, shapes)
        first = next((x for x in lines if x.startswith(("Missing key", "Unexpected key", "size mismatch"))), lines[0])
        first = first if len(first) <= 200 else first[:197] + "..."
        raise UserError(f"--model {source}: could not load it as {backend} MusicGen weights ({first})") from None


__all__ = ["BACKENDS", "MusicGenBackend", "Recorder", "detect_backend", "load_musicgen", "parse_layers"]
