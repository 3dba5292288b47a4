"""A streaming RAVE TorchScript export (`rave export --streaming`), driven with `torch.jit.load` only.

The cached convolutions of a streaming export keep their state inside the loaded module, so one
`RaveModel` is one stream: call `new_stream()` for another. Blocks must be a multiple of `ratio`
samples (the export would pad a shorter block to a full frame): other shapes are refused before they reach the
caches.
"""

from __future__ import annotations

import copy
import hashlib
import io
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from realtime import measured
from sae.errors import UserError, torch_file_problem
from sae.jsonfile import is_count

if TYPE_CHECKING:
    from realtime.alignment import Alignment

REQUIRED = ("encode", "decode", "forward")
# What was measured on a model file (streaming check, delays; JSON values), per (sha256, device): every load of the
# same file (each step of a command, each stream, a live restart, the next command: `realtime.measured` keeps it on
# disk) reuses it instead of measuring for seconds again.
_MEASURED: dict[tuple[str, str], dict[str, Any]] = {}
# Each CPU model file's module as loaded, never run, per sha256 (the few most recent RAVE exports): a stream is a deep
# copy of it (~40 ms for the tiny model), not a second parse of the file (~200 ms; judges and renders open a stream per
# clip). Copies share TorchScript's compiled methods, so a copy's first call may run the plan another stream optimised:
# on the CPU the same numbers (no fuser; tests/foundation/test_rave_format.py), on a GPU fused kernels could differ in
# the last bit and put two streams compared in lockstep (`measure_delay`) out of step, so other devices parse anew.
_PRISTINE: OrderedDict[str, torch.jit.ScriptModule] = OrderedDict()
_PRISTINE_KEPT = 4
_PRISTINE_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelIdentity:
    """What an activation store, SAE or concept bank records about the RAVE model it came from."""

    name: str
    sha256: str
    sample_rate: int
    ratio: int
    latent_size: int

    def as_dict(self) -> dict:
        return {
            "kind": "rave",
            "name": self.name,
            "sha256": self.sha256,
            "sample_rate": self.sample_rate,
            "ratio": self.ratio,
            "latent_size": self.latent_size,
        }


class RaveModel:
    """One stream through a streaming RAVE export.

    Args:
        path: the `.ts` file.
        device: torch device to run on.
        label: how errors name the file, before its path (e.g. the option that gave it: "--init").
    """

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", label: str = "RAVE model") -> None:
        self.path = Path(path)
        self.label = label
        self.device = torch.device(device)
        try:
            self._bytes = self.path.read_bytes()
        except OSError as exc:
            raise UserError(f"{self.label} {self.path}: cannot read ({exc.strerror})") from None
        self._sha256 = hashlib.sha256(self._bytes).hexdigest()
        self.module = self._pristine()  # checked before it is kept or run
        missing = [m for m in REQUIRED if not hasattr(self.module, m)]
        if missing or not hasattr(self.module, "encode_params"):
            what = ", ".join(missing) or "encode_params"
            raise UserError(f"{self.label} {self.path}: not a RAVE export (missing {what})")
        if hasattr(self.module, "concept_mask"):  # `export nn`'s file: it passes for a RAVE, its edits built in
            raise UserError(
                f"{self.label} {self.path}: a musicsae nn~ export (its concept edits and dry delay, built in, would "
                "play under this command's own); expected the RAVE export it was made from"
            )
        in_ch, _, latent, ratio = (int(v) for v in self.module.encode_params)
        if in_ch not in (1, 2):  # the engine, renders and nn~ export play one or two channels
            raise UserError(
                f"{self.label} {self.path}: {in_ch} audio channels; expected a mono or stereo model (1 or 2)"
            )
        if hasattr(getattr(self.module, "encoder", None), "rvq"):  # acids-rave's DiscreteEncoder
            raise UserError(
                f"{self.label} {self.path}: a discrete export (its latents are codebook indices); expected a RAVE with "
                "continuous latents (variational or wasserstein: v1, v2, v3, raspberry, ...)"
            )
        self.channels = in_ch
        self.ratio = ratio
        self.latent_size = latent
        self.sr = int(self.module.sr)
        self.full_latent_size = int(getattr(self.module, "full_latent_size", latent))
        self.identity = ModelIdentity(self.path.name, self._sha256, self.sr, ratio, latent)
        self.module = self._own(self.module)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu", check_streaming: bool = True) -> RaveModel:
        """Load and validate; refuses a non-streaming export (it clicks at block edges)."""
        model = cls(path, device)
        if check_streaming and not model._remembered("streaming", lambda: model.new_stream().is_streaming()):
            raise UserError(
                f"{model.label} {model.path}: not a streaming export (re-export it with `rave export --streaming`)"
            )
        return model

    def _pristine(self) -> torch.jit.ScriptModule:
        """The file's module as parsed, with silent caches, never run: the one kept from an earlier load of these
        bytes, else parsed now."""
        if self.device.type == "cpu":
            with _PRISTINE_LOCK:
                if self._sha256 in _PRISTINE:
                    _PRISTINE.move_to_end(self._sha256)
                    return _PRISTINE[self._sha256]
        try:
            module = torch.jit.load(io.BytesIO(self._bytes), map_location=self.device)
        except Exception as exc:  # torch raises RuntimeError / ValueError with multi-line messages
            why = torch_file_problem(exc, self._bytes)
            raise UserError(f"{self.label} {self.path}: not a TorchScript file ({why})") from None
        _silence_caches(module)
        return module.eval()

    def _own(self, pristine: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
        """A stream's module from a checked pristine one: on the CPU it is kept (the most recent few) and the stream
        gets a copy; elsewhere the stream takes it."""
        if self.device.type != "cpu":
            return pristine
        with _PRISTINE_LOCK:
            _PRISTINE[self._sha256] = pristine
            _PRISTINE.move_to_end(self._sha256)
            while len(_PRISTINE) > _PRISTINE_KEPT:
                _PRISTINE.popitem(last=False)
        return copy.deepcopy(pristine)

    def _load(self) -> torch.jit.ScriptModule:
        """A module of its own, as the file holds it with silent caches."""
        return self._own(self._pristine())

    def reset(self) -> None:
        """Forget the stream's history: the cached convolutions start from silence again."""
        _silence_caches(self.module)

    def new_stream(self) -> RaveModel:
        """A fresh instance of the same model, with its own (empty) streaming caches."""
        clone = object.__new__(RaveModel)
        clone.__dict__.update(self.__dict__)
        clone.module = self._load()
        return clone

    # --- forward paths ---------------------------------------------------------------------------------
    def _audio(self, x: torch.Tensor) -> torch.Tensor:
        """Audio checked before it reaches the caches (a failed call had already moved them): [B, channels, T]
        floats, T a multiple of the ratio (the export pads a short frame without a word); float32 on the device."""
        x = torch.as_tensor(x)
        if x.ndim != 3 or x.shape[1] != self.channels or x.shape[-1] == 0 or x.shape[-1] % self.ratio:
            raise UserError(f"{self.label} {self.path.name}: audio of shape {tuple(x.shape)}; expected [batch, "
                            f"{self.channels} channel(s), a multiple of {self.ratio} samples]")  # fmt: skip
        if not x.is_floating_point():
            raise UserError(f"{self.label} {self.path.name}: audio of {x.dtype}; expected floats in [-1, 1]")
        return x.to(self.device, torch.float32)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, T] audio -> [B, latent_size, T / ratio] latents, sampled from the posterior (RAVE's own)."""
        return self.module.encode(self._audio(x))

    @torch.no_grad()
    def encoder_input(self, x: torch.Tensor) -> torch.Tensor:
        """What the export's encoder net sees for audio x [B, C, T]: resampled, then PQMF bands or mel."""
        m = self.module
        x = self._audio(x)
        if getattr(m, "resampler", None) is not None:
            x = m.resampler.to_model_sampling_rate(x)
        if m.input_mode == "pqmf":
            batch = x.shape[:-2]
            x = m.pqmf(x.reshape(-1, 1, x.shape[-1]))
            x = x.reshape((*batch, -1, x.shape[-1]))
        elif m.input_mode == "mel":
            x = torch.log1p(m.spectrogram(x)[..., :-1])
        return x

    @torch.no_grad()
    def encode_mean(self, x: torch.Tensor) -> torch.Tensor:
        """Deterministic latents: the posterior mean, projected like the export's own `encode`."""
        m = self.module
        if not hasattr(m, "latent_pca") or not hasattr(m.encoder, "reparametrize"):
            return self.encode(x)  # discrete / non-variational exports are deterministic already
        mean = m.encoder(self.encoder_input(x)).chunk(2, 1)[0]
        z = F.conv1d(mean - m.latent_mean.unsqueeze(-1), m.latent_pca.unsqueeze(-1))
        return z[:, : self.latent_size]

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """[B, latent_size, N] -> [B, C, N * ratio] audio (unused latent dims are filled with noise)."""
        z = torch.as_tensor(z)
        if z.ndim != 3 or z.shape[1] != self.latent_size or z.shape[-1] == 0 or not z.is_floating_point():
            raise UserError(f"{self.label} {self.path.name}: latents of shape {tuple(z.shape)} ({z.dtype}); expected "
                            f"floats of [batch, {self.latent_size}, frames >= 1]")  # fmt: skip
        return self.module.decode(z.to(self.device, torch.float32))

    # --- properties measured on a fresh stream ---------------------------------------------------------
    def is_streaming(self, seconds: float = 3.0) -> bool:
        """True if the module carries state between calls (cached convolutions), measured on this stream: the
        same block fed again and again gives other latents once the first one has come through. A non-causal
        export's delay spans many frames (~0.25-0.6 s), so a stateless export is told apart only after that long."""
        g = torch.Generator().manual_seed(0)
        block = self.ratio * max(1, 4096 // self.ratio)
        x = 0.1 * torch.randn(1, self.channels, block, generator=g)
        first = self.encode_mean(x)
        calls = max(1, round(seconds * self.sr / block))
        return any(not torch.equal(self.encode_mean(x), first) for _ in range(calls))  # stops at the first change

    def _measured(self) -> dict[str, Any]:
        key = (self.identity.sha256, str(self.device))
        if key not in _MEASURED:
            kept = measured.read(*key)
            _MEASURED[key] = kept if _plausible(kept) else {}  # a hand-edited file: measured again
        return _MEASURED[key]

    def _remember(self, name: str, value: Any) -> None:
        figures = self._measured()
        figures[name] = value
        measured.write(self.identity.sha256, str(self.device), figures)

    def has_measured(self, name: str) -> bool:
        """Whether `name`'s figure (`delay`, `alignment`, ...) is kept for this model file and device."""
        return name in self._measured()

    def _remembered(self, name: str, measure: Callable[[], Any]) -> Any:
        """`name`'s figure for this model file and device, measured (and kept) only where none is kept."""
        figures = self._measured()
        if name not in figures:
            self._remember(name, measure())
        return figures[name]

    def delay(self) -> int:
        """The model's own delay in samples (encode + decode), measured on fresh streams once per model file and
        device (then kept: `realtime.measured`).

        An impulse at a frame boundary first changes the output `delay` samples later; before that the
        output equals the output for silence (causality of the streaming caches).
        """
        return int(self._remembered("delay", lambda: measure_delay(self)))

    def alignment(self) -> Alignment:
        """First response and aligned delay (where the model's notes come out): `realtime.alignment`, measured
        once per model file and device (then kept: `realtime.measured`). The aligned delay is the one dry/wet
        mixing, latency and renders use."""
        from realtime.alignment import Alignment, measure_alignment

        return Alignment(**self._remembered("alignment", lambda: asdict(measure_alignment(self))))

    def remember_alignment(self, alignment: Alignment) -> None:
        """Take delays measured before on this model file (carried across a `live --reconnect` restart)."""
        self._remember("alignment", asdict(alignment))


def refuse_replacing_a_rave(out: Path, what: str = "--out") -> None:
    """Refuse to write an export over a RAVE model (hunt 197: `sae export --out model.ts` replaced a trained RAVE,
    hours to days of work, where `models rave` refuses any file already there). musicsae's own exports may be
    written over: an nn~ export (`concept_mask`) or an SAE's (no `encode_params`)."""
    if not out.is_file():
        return
    try:
        module = torch.jit.load(str(out), map_location="cpu")
    except Exception:  # not TorchScript: nothing of a model's to lose here
        return
    if hasattr(module, "encode_params") and not hasattr(module, "concept_mask"):
        raise UserError(f"{what} {out}: a RAVE model; the export would replace it: write it elsewhere")


def _plausible(figures: dict[str, Any]) -> bool:
    """Figures read from disk have the names and types this code writes: delays and counts are integers >= 0, the
    spread a finite number >= 0 (a hand-edited NaN or 848.5-sample delay is measured again)."""
    from realtime.alignment import plausible_alignment

    checks = {"streaming": lambda v: isinstance(v, bool), "delay": is_count, "alignment": plausible_alignment}
    return all(name in checks and checks[name](value) for name, value in figures.items())


@torch.no_grad()
def _silence_caches(module: torch.jit.ScriptModule) -> None:
    """Zero the cached-convolution state (an export carries the exporter's warm-up in it)."""
    for name, buf in module.named_buffers():
        if name.endswith((".cache", ".pad")):
            buf.zero_()


def broken_output(model: RaveModel, when: str) -> str:
    """The one line for a model whose output holds NaN/inf before any edit (`when`: what it was doing)."""
    return f"{model.label} {model.path}: NaN/inf in its output ({when}); the model weights are broken (or overflowed)"


def measure_delay(model: RaveModel, block: int | None = None, max_blocks: int = 64) -> int:
    """Samples between an input impulse and the first output sample it changes.

    Two fresh streams run side by side, one fed silence and one an impulse at the start of the second
    block (a frame boundary); decode's noise fill draws the same numbers in both. Stops at the first
    block whose outputs differ at all.
    """
    block = block or model.ratio * max(1, 2048 // model.ratio)
    silent, impulse = model.new_stream(), model.new_stream()
    zeros = torch.zeros(1, model.channels, block)
    click = zeros.clone()
    click[..., 0] = 1.0
    for i in range(max_blocks):
        torch.manual_seed(i)
        a = silent.decode(silent.encode_mean(zeros))
        torch.manual_seed(i)
        b = impulse.decode(impulse.encode_mean(click if i == 1 else zeros))
        if not (torch.isfinite(a).all() and torch.isfinite(b).all()):  # NaN never compares as changed
            raise UserError(broken_output(model, "measuring its delay"))
        changed = torch.nonzero((a - b).abs().amax(dim=(0, 1)) > 0)
        if len(changed):
            return i * block + int(changed[0, 0]) - block
    raise UserError(f"{model.label} {model.path}: output never responds to an impulse within {max_blocks} blocks")


def sae_hook(cfg: dict) -> str:
    """The hook an SAE config names (`latent` when it names none)."""
    from sae.io import cfg_hook

    return cfg_hook(cfg) or "latent"


def check_sae_for_model(sae_dir: str | Path, cfg: dict, model, hook: str = "latent") -> None:
    """One line when the SAE was not trained on this model's `hook` (hook, dim or provenance)."""
    from realtime.rave_split import hook_shape

    trained_on = sae_hook(cfg)
    if trained_on != hook:
        raise UserError(f"SAE {sae_dir} was trained on hook {trained_on!r}, not {hook!r}")
    width = hook_shape(model, hook)[0]  # an unknown hook: one line listing the model's hooks
    d_in = cfg.get("d_in")
    if d_in != width:
        what = f"{model.latent_size} latents" if hook == "latent" else f"{width} channels at {hook}"
        raise UserError(f"SAE {sae_dir} takes {d_in}-dim inputs; {model.path.name} has {what} (another model's SAE?)")
    from sae.io import cfg_model

    ident, sha = cfg_model(cfg)
    if sha and sha != model.identity.sha256:
        raise UserError(
            f"SAE {sae_dir} was trained on {ident.get('name', '?')} ({sha[:12]}), not "
            f"{model.path.name} ({model.identity.sha256[:12]})"
        )
    name = cfg.get("model_name") or (cfg.get("metadata") or {}).get("model_name") or ""
    if not sha and name and name != model.path.name:
        raise UserError(f"SAE {sae_dir} was trained on latents of {name}, not {model.path.name}")
