"""Save / load SAEs in the SAELens layout: `cfg.json` + `sae_weights.safetensors`.

Weights: `W_enc` [d_in, d_sae], `b_enc` [d_sae], `W_dec` [d_sae, d_in], `b_dec` [d_in]; BatchTopK adds
`threshold` [d_sae]. Input normalisation is folded in before saving, so `normalize_activations` is "none".

cfg.json follows SAELens 6 (`SAEConfig.to_dict`): `architecture` ("topk" with `k`; BatchTopK is saved the
way SAELens saves it for inference, as "jumprelu" with a per-latent `threshold`), `d_in`, `d_sae`, `dtype`,
`device`, `apply_b_dec_to_input`, `normalize_activations`, `reshape_activations`,
`rescale_acts_by_decoder_norm` and `metadata` {`model_name`, `hook_name`, `sae_lens_version`}.
`sae_lens_version` names the cfg layout (SAELens reads files older than 6.0 another way), not a SAELens
that trained it (`sae_lens_training_version` is null: SAELens did not). Our own training config and the
musicsae version that wrote the file (from the installed package's metadata) ride along under `musicsae`
(SAELens ignores unknown top-level keys); `hook_name` and `model_name` are repeated at top level for
readers of the older layout.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pickle
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from sae.atomic import atomic_write, atomic_write_text
from sae.errors import UserError, torch_file_problem
from sae.jsonfile import is_count, is_number, read_json_object, strict_json
from sae.model import SAEConfig, SparseAutoencoder
from sae.seeds import SEED_RANGE

CFG_FILE = "cfg.json"
WEIGHTS_FILE = "sae_weights.safetensors"
TRAINED_AUDIO = "trained_audio.json"  # {"sha256": [...]}: the audio files its training rows came from, where known
FORMAT_VERSION = "6.0.0"  # the SAELens cfg layout written here (metadata.sae_lens_version)


@functools.cache
def musicsae_version() -> str:
    """The version of musicsae writing the file: the installed package's metadata, else the checkout's
    pyproject.toml (running from a source tree that was never installed)."""
    from importlib import metadata

    try:
        return metadata.version("musicsae")
    except metadata.PackageNotFoundError:
        import tomllib

        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return str(tomllib.loads(pyproject.read_text())["project"]["version"])
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def sae_cfg_dict(sae: SparseAutoencoder, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = sae.cfg
    out: dict[str, Any] = {
        "architecture": "topk" if cfg.arch == "topk" else "jumprelu",
        "d_in": cfg.d_in,
        "d_sae": cfg.d_sae,
        "dtype": "float32",
        "device": "cpu",
        "apply_b_dec_to_input": True,
        "normalize_activations": "none",
        "reshape_activations": "none",
    }
    if cfg.arch == "topk":
        out["k"] = cfg.k
        out["rescale_acts_by_decoder_norm"] = False
    out["metadata"] = {
        "model_name": cfg.model_name,
        "hook_name": cfg.hook_name,
        "sae_lens_version": FORMAT_VERSION,
        "sae_lens_training_version": None,
    }
    out["model_name"] = cfg.model_name
    out["hook_name"] = cfg.hook_name
    out["musicsae"] = {"version": musicsae_version(), "config": cfg.to_dict(), **(extra or {})}
    return out


def save_sae(sae: SparseAutoencoder, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> Path:
    """Write `sae` (normalisation folded in) to directory `path`; files are replaced atomically."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    s = sae.folded().to("cpu", torch.float32)
    tensors = {
        "W_enc": s.W_enc.detach().contiguous(),
        "b_enc": s.b_enc.detach().contiguous(),
        "W_dec": s.W_dec.detach().contiguous(),
        "b_dec": s.b_dec.detach().contiguous(),
    }
    if s.cfg.arch == "batchtopk":
        tensors["threshold"] = torch.full((s.cfg.d_sae,), float(s.threshold), dtype=torch.float32)
    text = strict_json(sae_cfg_dict(s, extra))  # before any file: an `extra` JSON cannot hold changes none
    atomic_write(path / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp))
    atomic_write_text(path / CFG_FILE, text)
    return path


def _read_weights(wfile: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The tensors of a weights file; a damaged one, or a Git LFS pointer in its place, refused in one line."""
    try:
        return load_file(str(wfile))
    except (SafetensorError, OSError) as exc:
        with contextlib.suppress(OSError), open(wfile, "rb") as fh:
            if fh.read(40).startswith(b"version https://git-lfs"):
                raise UserError(
                    f"{wfile}: a Git LFS pointer, not the weights: fetch them with `git lfs pull`"
                ) from None
        raise UserError(f"{wfile}: unreadable ({exc})") from None


def sae_weights_sha256(path: str | os.PathLike) -> str:
    """The SAE's identity: sha256 over its weight tensors (sorted by name; name, dtype, shape and bytes of each).

    Independent of the safetensors header and of cfg.json, so re-saving the same weights keeps it and retraining
    in place changes it (the concept bank records it per concept and refuses a mismatch).
    """
    wfile = Path(path) / WEIGHTS_FILE
    try:
        stat = wfile.stat()
    except OSError:
        raise UserError(f"SAE {path}: " + (f"no {WEIGHTS_FILE}" if Path(path).is_dir() else "no such folder")) from None
    return _weights_sha256(str(wfile.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _weights_sha256(wfile: str, mtime_ns: int, size: int) -> str:
    import hashlib

    tensors = _read_weights(wfile)
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def cfg_hook(cfg: dict[str, Any]) -> str | None:
    """The hook an SAE's cfg.json names (at the top, or under SAELens' `metadata`), or None."""
    return cfg.get("hook_name") or (cfg.get("metadata") or {}).get("hook_name") or None


def cfg_model(cfg: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The model identity an SAE's cfg.json records from its activation store (`musicsae.model`) and that model's
    sha256 (None where it records none)."""
    ident = (cfg.get("musicsae") or {}).get("model")
    ident = ident if isinstance(ident, dict) else {}
    sha = ident.get("sha256")
    return ident, sha if isinstance(sha, str) else None


def read_sae_cfg(path: str | os.PathLike) -> dict[str, Any]:
    """cfg.json of an SAE directory as a dict (UserError when missing or unreadable)."""
    folder = Path(path)
    if not folder.exists():
        raise UserError(f"SAE {path}: no such directory")
    if folder.is_file():
        if folder.name in (CFG_FILE, WEIGHTS_FILE):
            raise UserError(f"SAE {path} is a file; pass its folder ({folder.parent})")
        exported = " (a `sae export` .ts is for torch.jit.load outside musicsae)" if folder.suffix == ".ts" else ""
        raise UserError(f"SAE {path}: a file; expected an SAE directory ({CFG_FILE} + {WEIGHTS_FILE}){exported}")
    f = folder / CFG_FILE
    if not f.exists():
        inside = sorted(p.parent.name for p in folder.glob(f"*/{CFG_FILE}"))  # `sae train --out`'s parent
        if inside:
            raise UserError(f"SAE {path}: no {CFG_FILE}; it holds SAE folders {', '.join(inside)}: pass one of them")
        if (folder / "checkpoint.pt").is_file():  # `sae train`'s CHECKPOINT (hunt 203)
            raise UserError(f"SAE {path}: no {CFG_FILE}: a training run stopped before it ended (checkpoint.pt); "
                            "finish it with the same sae train command and --resume")  # fmt: skip
        raise UserError(f"SAE {path}: no {CFG_FILE} (expected an SAELens-layout directory)")
    cfg = read_json_object(f, "SAE config")
    for key in ("metadata", "musicsae"):  # what readers look into before load_sae checks the rest
        _object(cfg, key, f)
    ours = cfg.get("musicsae") or {}
    for key in ("train_config", "metrics", "collect"):  # `sae eval`, the MusicGen concepts read them (a
        _object(ours, key, f"{f}: musicsae")  # hand-edited 5 was a traceback)
    for kind, settings in (ours.get("collect") or {}).items():
        _object({kind: settings}, kind, f"{f}: musicsae.collect")
    seed = (ours.get("train_config") or {}).get("seed")  # `sae eval` draws its interval's resamples with it
    if seed is not None and not (is_count(seed) and seed < SEED_RANGE[1]):
        raise UserError(f"{f}: musicsae.train_config.seed {seed!r}: expected an integer in [0, 2**63)")
    return cfg


def read_torch(path: str | os.PathLike, map_location: Any = "cpu", weights_only: bool = False) -> Any:
    """`torch.load` of a checkpoint or package; a truncated or damaged file is refused in one line naming it."""
    try:
        return torch.load(path, map_location=map_location, weights_only=weights_only)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        why = torch_file_problem(exc)
        raise UserError(f"{path}: cannot read it ({why}); truncated or damaged: restore it or remove it") from None


def _object(d: dict[str, Any], key: str, where: Any) -> dict[str, Any]:
    """`d[key]` when it is a JSON object, {} when absent or null; anything else is refused naming it."""
    value = d.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise UserError(f"{where}: {key} is {type(value).__name__}: expected an object")
    return value


def _flag(cfg: dict[str, Any], key: str, default: bool, where: Any) -> bool:
    """A true/false field (a string "false" would be truthy)."""
    value = cfg.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise UserError(f"{where}: {key} {value!r}: expected true or false")
    return value


def _our_config(ours: dict[str, Any], where: Any) -> dict[str, Any]:
    """musicsae.config with each SAEConfig field of the type it declares; a null field takes the default (it was a
    TypeError in SAEConfig, a traceback from every command loading the SAE)."""
    kinds = {"int": (int,), "float": (int, float), "str": (str,)}
    for f in fields(SAEConfig):
        value = ours.get(f.name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kinds[str(f.type)])):
            raise UserError(f"{where}: musicsae.config: {f.name} {value!r}: expected {f.type}")
    return {key: value for key, value in ours.items() if value is not None}


def load_sae(path: str | os.PathLike, device: str | torch.device = "cpu") -> SparseAutoencoder:
    """Load an SAE directory written by `save_sae`, or one SAELens saved with its default settings.

    SAELens's own layouts are mapped onto the same computation, exactly (bench/saelens_roundtrip.py checks it
    against the real package):
    - TopK with `rescale_acts_by_decoder_norm: true` (SAELens's training default): its pre-activations are
      scaled by each decoder row's norm and its decoder divides by it; folded here into W_enc, b_enc and unit
      decoder rows.
    - `jumprelu` with one threshold for every latent: what SAELens's BatchTopK becomes when saved for
      inference; read as BatchTopK (`k` from `metadata.training_architecture_details`). JumpReLU SAEs with
      per-latent thresholds are refused.
    - `batchtopk` training checkpoints (`topk_threshold`), and `apply_b_dec_to_input: false` (b_dec folded
      into b_enc).
    - the layout before SAELens 6.0: TopK as `architecture: "standard"` with `activation_fn_str: "topk"` and k in
      `activation_fn_kwargs`.
    """
    path = Path(path)
    cfg = read_sae_cfg(path)
    arch = cfg.get("architecture")
    where = path / CFG_FILE
    ours = _our_config(_object(_object(cfg, "musicsae", where), "config", f"{where}: musicsae"), where)
    meta = _object(cfg, "metadata", where)
    details = _object(meta, "training_architecture_details", f"{where}: metadata")
    for key in ("d_in", "d_sae"):
        if not isinstance(cfg.get(key), int) or isinstance(cfg[key], bool):
            said = f"{key!r} is {cfg[key]!r}; expected an integer" if key in cfg else f"missing integer {key!r}"
            raise UserError(f"{where}: {said}")
    fn_kwargs = _object(cfg, "activation_fn_kwargs", where)  # SAELens before 6.0: TopK is "standard" + "topk"
    if arch == "topk" or (arch == "standard" and cfg.get("activation_fn_str", cfg.get("activation_fn")) == "topk"):
        kind = "topk"
    elif arch in ("jumprelu", "batchtopk"):
        kind = "batchtopk"
    else:
        raise UserError(f"{where}: architecture {arch!r}: expected topk, batchtopk, or jumprelu saved from BatchTopK")
    k = cfg.get("k", ours.get("k", details.get("k", fn_kwargs.get("k"))))
    if not is_number(k) or k < 1:
        what = "missing k (active latents per row)"
        if k is not None:  # NaN or Infinity (json reads both), 0, a string
            what = f"k={k!r}: expected a number >= 1 (active latents per row)"
        if arch == "jumprelu" and k is None:
            what = "a JumpReLU SAE without k: only JumpReLU saved from BatchTopK (with its k) can be read"
        raise UserError(f"{where}: {what}")
    if kind == "topk" and k != int(k):
        raise UserError(f"{where}: k={k}: expected a whole number of active latents per row (TopK)")
    if k > cfg["d_sae"]:
        raise UserError(f"{where}: k={k}: expected at most d_sae={cfg['d_sae']} (active latents of all latents)")
    names = {key: cfg.get(key) or meta.get(key) or "" for key in ("hook_name", "model_name")}  # as `cfg_hook`
    for key, value in names.items():
        if not isinstance(value, str):
            raise UserError(f"{where}: {key} {value!r}: expected a string")
    apply_b_dec = _flag(cfg, "apply_b_dec_to_input", True, where)
    rescale = _flag(cfg, "rescale_acts_by_decoder_norm", False, where)
    if _flag(cfg, "finetuning_scaling_factor", False, where):
        raise UserError(f"{where}: finetuning_scaling_factor true (a fine-tuned SAELens SAE): expected false")
    if cfg.get("normalize_activations", "none") != "none":
        raise UserError(f"{where}: normalize_activations {cfg['normalize_activations']!r}: expected 'none' (folded)")
    if cfg.get("reshape_activations", "none") != "none":
        raise UserError(f"{where}: reshape_activations {cfg['reshape_activations']!r}: expected 'none'")
    sae_cfg = SAEConfig.from_dict(
        {
            **ours,
            "d_in": cfg["d_in"],
            "d_sae": cfg["d_sae"],
            "k": max(1, round(k)),
            "arch": kind,
            **names,
        }
    )
    wfile = path / WEIGHTS_FILE
    if not wfile.exists():
        raise UserError(f"SAE {path}: no {WEIGHTS_FILE}")
    tensors = _read_weights(wfile)
    d_in, d_sae = sae_cfg.d_in, sae_cfg.d_sae
    shapes = {"W_enc": (d_in, d_sae), "b_enc": (d_sae,), "W_dec": (d_sae, d_in), "b_dec": (d_in,)}
    if kind == "batchtopk":
        shapes["topk_threshold" if arch == "batchtopk" else "threshold"] = () if arch == "batchtopk" else (d_sae,)
    missing = [k for k in shapes if k not in tensors]
    if missing:
        raise UserError(f"{wfile}: missing tensors {', '.join(missing)} (has {', '.join(sorted(tensors)) or 'none'})")
    for key, shape in shapes.items():
        if tuple(tensors[key].shape) != shape:
            raise UserError(
                f"{wfile}: {key} has shape {list(tensors[key].shape)}, cfg.json (d_in={d_in}, d_sae={d_sae}) "
                f"expects {list(shape)}"
            )
    for key in shapes:
        if not tensors[key].is_floating_point():
            raise UserError(f"{wfile}: {key} is {tensors[key].dtype}: expected floating-point weights")
    damaged = [key for key in shapes if not bool(torch.isfinite(tensors[key]).all())]
    if damaged:
        raise UserError(f"{wfile}: NaN/inf in {', '.join(damaged)}: expected finite weights (diverged or damaged)")
    W_enc, b_enc, W_dec, b_dec = (tensors[key].to(torch.float64) for key in ("W_enc", "b_enc", "W_dec", "b_dec"))
    if not apply_b_dec:  # SAELens then encodes x, not x - b_dec
        b_enc = b_enc + b_dec @ W_enc
    if rescale:  # pre * ‖W_dec_i‖, decode f / ‖W_dec_i‖: fold both
        norms = W_dec.norm(dim=1)
        if not bool((norms > 0).all()):
            raise UserError(f"{wfile}: a decoder row has norm 0; cannot fold rescale_acts_by_decoder_norm")
        W_enc, b_enc, W_dec = W_enc * norms, b_enc * norms, W_dec / norms[:, None]
    sae = SparseAutoencoder(sae_cfg)
    with torch.no_grad():
        for key, value in (("W_enc", W_enc), ("b_enc", b_enc), ("W_dec", W_dec), ("b_dec", b_dec)):
            getattr(sae, key).copy_(value.to(torch.float32))
        if kind == "batchtopk":
            th = tensors["topk_threshold" if arch == "batchtopk" else "threshold"].to(torch.float64).reshape(-1)
            if not torch.allclose(th, th[0].expand_as(th)):
                raise UserError(
                    f"{wfile}: per-latent thresholds differ (a JumpReLU SAE); only a global BatchTopK threshold is "
                    "supported"
                )
            if float(th[0]) < 0:
                raise UserError(f"{wfile}: threshold {float(th[0]):g}: expected >= 0")
            sae.threshold.fill_(float(th[0]))
    try:
        return sae.to(device).eval()
    except (RuntimeError, AssertionError) as exc:  # a CPU build of torch asserts; a bad ordinal is a RuntimeError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: cannot load the SAE on device {str(device)!r}: {first}") from None


def read_trained_audio(sae_dir: str | os.PathLike) -> set[str] | None:
    """The sha256 of the audio an SAE was trained on (`TRAINED_AUDIO`, written by `sae train`), or None where its
    folder has no such record (an SAE trained before it, or on rows that name no file)."""
    path = Path(sae_dir) / TRAINED_AUDIO
    if not path.is_file():
        return None
    digests = read_json_object(path, "trained audio").get("sha256")
    if not isinstance(digests, list) or not all(isinstance(d, str) for d in digests):
        raise UserError(f"{path}: sha256: expected a list of hex digests")
    return set(digests)
