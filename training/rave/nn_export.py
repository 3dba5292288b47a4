"""`musicsae export nn`: one TorchScript file for IRCAM's nn~ with the RAVE, the SAE and a switch per concept.

    musicsae export nn --model M.ts --bank concepts.yaml [--concepts a,b] [--sae DIR] --out steered.ts

Every input is checked before anything is built (a streaming RAVE export, concepts of this model on one hook,
an SAE trained on that hook of this model, a model that can be cut at an inner hook (`realtime.rave_split`),
attribute names nn~ can use); the file is written to a temporary name beside `--out` and renamed, so a failure
leaves no partial file. The module (`nn_module.SteeredRave`) is scripted after its streaming state is cleared,
so the saved file starts from silence.

Concept names become attribute names (`attribute_name`: `.` and `-` become `_`, a leading digit gets `c_`);
the mapping is printed and stored in the file beside its provenance (`read_metadata`).
"""

from __future__ import annotations

import json
import keyword
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sae.controls import ALL_MODES
from sae.errors import UserError, torch_file_problem
from sae.steering import Gate

METADATA_FILE = "musicsae.json"
FORMAT = "musicsae-nn/1"
METHODS = ("forward", "encode", "decode", "meter")
# names nn~ treats specially ("none" is skipped by its attribute listing), nn_tilde reserves or the module's own
# attributes take
RESERVED = {"none", "sr", "mix", "bypass", "gate", "gate_db"}
OWN_ATTRIBUTES = ("mix", "bypass", "gate", "gate_db")


@dataclass
class NnExportConfig:
    """Args:
    model: streaming RAVE `.ts` export.
    bank: concept bank YAML.
    out: the `.ts` file to write.
    concepts: concept names to include (default: every concept of the bank found on this model).
    sae: SAE directory (default: the one the concepts were found with).
    meter_seconds: time constant of the meter method's running mean.
    gate: the file's initial `gate` / `gate_db` (where edits act: `sae.steering.Gate`).
    """

    model: Path
    bank: Path
    out: Path
    concepts: Sequence[str] | None = None
    sae: Path | None = None
    meter_seconds: float = 0.5
    gate: Gate = field(default_factory=Gate)


@dataclass
class NnExportReport:
    out: Path
    attributes: dict[str, str]  # concept name -> attribute name
    methods: dict[str, list[int]]
    meters: list[str]
    delay: int
    sample_rate: int
    ratio: int
    seconds: float
    hook: str = "latent"
    first_response: int = 0  # the first output sample an impulse changes (`delay` is where notes come out)
    notes: list[str] = field(default_factory=list)
    controls: list[str] = field(default_factory=list)  # the file's other attributes (mix, bypass, gate, ...)


_NAME_OK = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # fullmatch: `$` also matches before a final newline


def attribute_name(name: str) -> str:
    """A concept name as an nn~ attribute: `.`/`-` → `_`, `c_` before a leading digit; refuses what stays
    unusable (a Python keyword, a reserved name)."""
    attr = re.sub(r"[.\-]", "_", name)
    if attr[:1].isdigit():
        attr = "c_" + attr
    if not _NAME_OK.fullmatch(attr) or keyword.iskeyword(attr) or attr in RESERVED:
        raise UserError(
            f"concept {name!r}: cannot be an nn~ attribute ({attr!r}); rename it in the bank "
            f"(letters, digits and _, not a Python keyword, not {'/'.join(sorted(RESERVED))})"
        )
    return attr


def attribute_names(names: Sequence[str], taken: set[str]) -> dict[str, str]:
    """Concept name → attribute name, refusing clashes with `taken` (the module's own names) and between
    concepts (each attribute also makes `get_<a>`, `set_<a>` and `<a>_params`)."""
    out: dict[str, str] = {}
    owner: dict[str, str] = {}
    for name in names:
        attr = attribute_name(name)
        made = (attr, f"get_{attr}", f"set_{attr}", f"{attr}_params")
        for item in made:
            if item in taken:
                raise UserError(
                    f"concept {name!r}: its nn~ attribute {attr!r} would clash with the model's own {item!r}; "
                    "rename it in the bank"
                )
            if item in owner:
                raise UserError(
                    f"concepts {owner[item]!r} and {name!r} both become nn~ attribute names {item!r}; "
                    "rename one in the bank"
                )
        for item in made:
            owner[item] = name
        out[name] = attr
    return out


def export_name_note(bank: Any, concept: Any) -> list[str]:
    """Where `export nn` would refuse `concept`'s name beside the bank's other concepts of its model and hook (a
    reserved name such as `mix`, or one that becomes another's attribute): the line to say at `concept find`, where
    the name is still easy to change, else nothing."""
    names = [c.name for c in bank if c.hook == concept.hook and c.model.sha256 == concept.model.sha256]
    try:
        attribute_names(names, module_names())
    except UserError as exc:
        return [f"`export nn` (Max/Pd) will refuse this bank: {exc}"]
    return []


def module_names() -> set[str]:
    """Every name the nn~ module already uses: methods, attributes, `<method>_params`, reserved names."""
    from training.rave.nn_module import INSTANCE_NAMES, SteeredVariationalRave

    return (
        set(dir(SteeredVariationalRave))
        | set(vars(torch.nn.Module()))
        | set(INSTANCE_NAMES)
        | set(METHODS)
        | {f"{m}{s}" for m in METHODS for s in ("_params", "_input_labels", "_output_labels")}
        | {f"{a}_params" for a in OWN_ATTRIBUTES}
        | RESERVED
    )


def _meter_spec(concepts: dict[str, Any], attrs: dict[str, str], frame_rate: float, seconds: float):
    """Probes of the concepts that carry one (`sae.meter`), or None when none does."""
    from sae.meter import MeterParams, ema_weight
    from training.rave.nn_module import MeterSpec

    params = MeterParams.from_concepts(concepts)
    if len(params) == 0:  # probes reading features the SAE lacks were refused by `load_steering`
        return None
    return MeterSpec(
        [attrs[n] for n in params.names], params.idx, params.coef, params.intercept, ema_weight(1, frame_rate, seconds)
    )


def build_module(cfg: NnExportConfig, say: Callable[[str], None] = print) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Check every input and build the (unscripted) nn~ module; returns it with the file's metadata."""
    from realtime.rave import RaveModel
    from realtime.rave_split import LATENT, RaveSplit
    from realtime.render_rave import load_steering, other_model
    from sae.bank import ConceptBank
    from sae.export import ScriptSAE
    from training.rave.nn_module import ConceptSpec, SteeredRave, SteeredVariationalRave

    for what, path in (("RAVE model", cfg.model), ("concept bank", cfg.bank)):
        if not Path(path).is_file():
            raise UserError(f"{what} {path}: {'a folder, not a file' if Path(path).is_dir() else 'no such file'}")
    model = RaveModel.load(cfg.model)
    bank = ConceptBank.load(cfg.bank)
    names = list(cfg.concepts) if cfg.concepts else None
    hooks: dict[str, list[str]] = {}
    for name in names or [c.name for c in bank if c.model.sha256 == model.identity.sha256]:
        hooks.setdefault(bank.get(name).hook, []).append(name)
    if len(hooks) > 1:
        which = "; ".join(f"{hook}: {', '.join(group)}" for hook, group in sorted(hooks.items()))
        raise UserError(
            f"the concepts sit on {len(hooks)} hooks ({which}); one nn~ file steers one hook with one SAE "
            "(choose with --concepts)"
        )
    steering = load_steering(cfg.bank, model, cfg.sae, names, choose="choose one with --sae or --concepts")
    for c in bank if names is None else []:  # every concept asked for: each left out is named (a patch's switch for
        if c.name not in steering.concepts:  # it would fail on stage), as live names them
            say(f"skipped concept {c.name} ({other_model(c, model) or f'SAE {c.sae}'})")
    hook = steering.hook
    steps = 1
    if hook != LATENT:
        say(f"checking that {model.path.name} runs in two parts around {hook}")
        steps = RaveSplit(model.new_stream(), hook).steps  # refuses a model that cannot be cut there
    attrs = attribute_names(list(steering.concepts), module_names())
    specs = []
    for name in steering.concepts:
        control = steering.state.controls[name]
        if control.mode not in ALL_MODES:
            raise UserError(
                f"concept {name!r} defaults to {control.mode!r}; the nn~ model steers {', '.join(ALL_MODES)} "
                "(change its default in the bank)"
            )
        value = control.gain if control.mode == "scale" else control.strength
        feats = tuple((f.index, f.weight, f.typical) for f in steering.state.concepts[name])  # the engine's choice
        alone = steering.state.alone.get(name)
        specs.append(ConceptSpec(attrs[name], name, feats, control.mode, float(value), alone))
    frame_rate = model.sr / model.ratio
    meter = _meter_spec(steering.concepts, attrs, frame_rate, cfg.meter_seconds)
    if not model.has_measured("alignment"):
        say(f"measuring where the model's notes come out ({model.path.name})")
    found = model.alignment()  # the aligned delay, as live and render rave line dry and wet up
    delay = int(found.aligned)
    rave = model.new_stream().module
    variational = hasattr(rave, "latent_pca") and hasattr(rave.encoder, "reparametrize")
    cls = SteeredVariationalRave if variational else SteeredRave
    module = cls(rave, ScriptSAE(steering.sae), specs, delay, meter, hook, steps, cfg.gate).eval()
    metadata = {
        "format": FORMAT,
        "model": model.identity.as_dict(),
        "hook": hook,
        "gate": {"enabled": cfg.gate.enabled, "lo_db": cfg.gate.lo_db, "hi_db": cfg.gate.hi_db},
        "sae": {
            "dir": steering.sae_dir.name,
            "arch": steering.sae.cfg.arch,
            "k": steering.sae.cfg.k,
            "d_sae": steering.sae.cfg.d_sae,
        },
        "bank": Path(cfg.bank).name,
        "concepts": [
            {
                "name": s.name,
                "attribute": s.attr,
                "default": [s.mode, s.value],
                "features": [list(f) for f in s.features],
                "alone": s.alone is not None,
            }
            for s in specs
        ],
        "meters": list(meter.names) if meter else [],
        "meter_seconds": cfg.meter_seconds if meter else None,
        "delay": delay,
        "first_response": int(found.first_response),
        "sample_rate": model.sr,
        "ratio": model.ratio,
        "methods": {m: [int(v) for v in getattr(module, f"{m}_params")] for m in module.get_methods()},
        "torch": torch.__version__,
        "variational": variational,
    }
    return module, metadata


def script_module(module: torch.nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():  # torch 2.13 marks torch.jit deprecated; nn~ still loads TorchScript
        warnings.simplefilter("ignore")
        return torch.jit.script(module)


def save_atomic(scripted: torch.jit.ScriptModule, out: Path, metadata: dict[str, Any]) -> None:
    """`atomic_write`: `out` is either complete or untouched; the temporary files of exports killed mid-write are
    removed first, under a lock beside `out` (`.OUT.lock`, gone after), so a second export to `out` waits instead of
    taking the first's temporary file for a dead one's."""
    from sae.atomic import atomic_write, flocked, remove_leftovers, temp_stem, through_handle

    def save(fh) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.jit.save(scripted, fh, _extra_files={METADATA_FILE: json.dumps(metadata, indent=1)})

    try:
        out = out.resolve() if out.is_symlink() else out  # where `atomic_write` writes: its leftovers and lock
        out.parent.mkdir(parents=True, exist_ok=True)
        lock = out.with_name(f".{temp_stem(out.name, room=len('..lock'))}.lock")
        with flocked(lock):
            try:
                remove_leftovers(out)
                atomic_write(out, through_handle(save))
            finally:
                lock.unlink(missing_ok=True)  # `flocked` opens a lock file unlinked under a waiter again
    except OSError as exc:
        raise UserError(f"--out {out}: cannot write it ({exc.strerror or exc})") from None


def export_nn(cfg: NnExportConfig, say: Callable[[str], None] = print) -> NnExportReport:
    """Build, script and save the nn~ model of `cfg`."""
    t0 = time.perf_counter()
    from realtime.rave import refuse_replacing_a_rave
    from sae.paths import check_not_source, check_output_file

    if not 0 < cfg.meter_seconds <= 60:  # the CLI's rule (training.cli.args.meter_seconds), for API callers
        raise UserError(f"meter_seconds {cfg.meter_seconds}: expected a time constant in seconds, > 0 and at most 60")
    out = check_output_file(cfg.out, (".ts",))  # nn~ looks for NAME.ts
    check_not_source(out, cfg.model, "--out", "--model", "the export would replace the RAVE model it is made from")
    refuse_replacing_a_rave(out)  # another RAVE than --model (a sibling .ts)
    module, metadata = build_module(cfg, say)
    scripted = script_module(module)
    save_atomic(scripted, out, metadata)
    attrs = {c["name"]: c["attribute"] for c in metadata["concepts"]}
    return NnExportReport(
        out,
        attrs,
        metadata["methods"],
        metadata["meters"],
        metadata["delay"],
        metadata["sample_rate"],
        metadata["ratio"],
        time.perf_counter() - t0,
        metadata["hook"],
        metadata["first_response"],
        controls=[a for a in scripted.get_attributes() if a not in attrs.values()],
    )


def read_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The musicsae metadata stored in an exported nn~ file."""
    files = {METADATA_FILE: ""}
    try:
        torch.jit.load(str(path), _extra_files=files)
    except Exception as exc:
        raise UserError(f"nn~ model {path}: not a TorchScript file ({torch_file_problem(exc)})") from None
    if not files[METADATA_FILE]:
        raise UserError(f"nn~ model {path}: no musicsae metadata (not made by `musicsae export nn`)")
    return json.loads(files[METADATA_FILE])
