"""A streaming RAVE export run in two parts around one inner layer (a hook), so an edit can go in between.

A hook names where the model is cut:

- `latent`: `encode_mean` | `decode` (the posterior-mean latent, as everywhere else);
- `encoder.net.N`: (resampler, PQMF) → encoder layers 0..N | layers N+1.. → posterior mean → PCA crop →
  `decode`;
- `decoder.net.N`: `encode_mean` → `pre_process_latent` (PCA back, noise fill of cropped dims) → decoder
  layers 0..N | layers N+1.. → the decoder's tail (noise and waveform branches, amplitude modulation,
  tanh) → PQMF inverse → resampler.

Every piece is a submodule of the loaded TorchScript export (`encoder.encoder.net`, `decoder.net`, their
cached convolutions hold the stream's state), called in the order the whole model calls them, so
`rest(upto(x))` equals `decode(encode_mean(x))` block after block (`check_split` measures it: ~1e-7 on the
exports tried, with `decode`'s noise seeded alike). Encoder hooks need a variational encoder (posterior
mean + PCA); decoder hooks need acids-rave's `GeneratorV2` decoder with the export's own channel count.
Other structures are refused, naming the hooks that do work.

An SAE on an inner hook sees one row per latent frame: the hook's `steps` outputs of each frame are
averaged (`pool`, as `training.rave.collect` stores them), the SAE edits the pooled rows, and the change is
added back to every step of its frame (`spread`): the pooled mean of the edited layer is exactly the
edited row, and no edit leaves the layer untouched bit for bit.

The pieces the nn~ export scripts into its file are TorchScript-able: `HookLayers` (the layers on each side of
the cut), `DecoderTail`, `project_latent`, `pool_rows` and `spread`; `RaveSplit` runs the same pieces in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sae.errors import UserError
from sae.streams import kept_streams

LATENT = "latent"
HOOK_RE = re.compile(r"^(encoder|decoder)\.net\.(\d+)$")


def _module(model: Any) -> torch.jit.ScriptModule:
    return model.module


def _name(model: Any) -> str:
    return model.path.name


def encoder_net(module: Any) -> list[Any]:
    """The encoder's layers in call order (empty when the export is not a variational RAVE encoder)."""
    try:
        enc = module.encoder
        if not hasattr(enc, "reparametrize") or not hasattr(module, "latent_pca"):
            return []
        return list(enc.encoder.net.children())
    except AttributeError:
        return []


def decoder_net(module: Any) -> list[Any]:
    """The decoder's layers in call order (empty unless the decoder is a `GeneratorV2` whose tail we know)."""
    try:
        dec = module.decoder
        if getattr(dec, "original_name", "") != "GeneratorV2" or not hasattr(module, "pre_process_latent"):
            return []
        if int(module.target_channels) != int(module.n_channels):
            return []
        return list(dec.net.children())
    except AttributeError:
        return []


def split_hooks(model: Any) -> list[str]:
    """Every hook this export can be cut at: `latent`, `encoder.net.N`, `decoder.net.N`."""
    m = _module(model)
    return (
        [LATENT]
        + [f"encoder.net.{i}" for i in range(len(encoder_net(m)))]
        + [f"decoder.net.{i}" for i in range(len(decoder_net(m)))]
    )


def describe_hooks(hooks: Sequence[str]) -> str:
    """`latent, encoder.net.0..21, decoder.net.0..20`: ranges instead of forty names."""
    groups: dict[str, list[int]] = {}
    out = []
    for h in hooks:
        m = HOOK_RE.match(h)
        if m:
            groups.setdefault(m.group(1), []).append(int(m.group(2)))
        else:
            out.append(h)
    for side, idx in groups.items():
        out.append(f"{side}.net.{min(idx)}..{max(idx)}" if len(idx) > 1 else f"{side}.net.{idx[0]}")
    return ", ".join(out)


def parse_hook(model: Any, hook: str) -> tuple[str, int]:
    """('latent', -1) / ('encoder', N) / ('decoder', N), or one line naming the hooks the model has."""
    if hook == LATENT:
        return LATENT, -1
    m = HOOK_RE.match(hook)
    hooks = split_hooks(model)
    if m is None or hook not in hooks:
        why = ""
        if m is not None and m.group(1) == "decoder" and not decoder_net(_module(model)):
            why = " (its decoder is not a GeneratorV2 with the export's own channels: no decoder hook)"
        elif m is not None and m.group(1) == "encoder" and not encoder_net(_module(model)):
            why = " (its encoder is not variational: no encoder hook)"
        raise UserError(f"hook {hook!r}: not a hook of {_name(model)}{why}; it has {describe_hooks(hooks)}")
    return m.group(1), int(m.group(2))


def project_latent(enc_out: Tensor, latent_mean: Tensor, latent_pca: Tensor, size: int) -> Tensor:
    """The encoder net's output → the export's latent: posterior mean, centred, PCA'd, cropped to `size`
    (TorchScript-able)."""
    mean = enc_out.chunk(2, 1)[0]
    z = F.conv1d(mean - latent_mean.unsqueeze(-1), latent_pca.unsqueeze(-1))
    return z[:, :size]


def latent_of(model: Any, enc_out: Tensor) -> Tensor:
    """The encoder net's output → the export's latent (`project_latent` with the export's mean and PCA)."""
    m = _module(model)
    return project_latent(enc_out, m.latent_mean, m.latent_pca, model.latent_size)


class DecoderTail(nn.Module):
    """After the decoder net: `GeneratorV2`'s noise / waveform branches, amplitude modulation and tanh, then the
    export's PQMF inverse, resampler and crop to `frames` latent frames (ScriptedRAVE.decode), made of the
    export's own submodules (TorchScript-able: the nn~ export scripts it).

    Args:
        module: the loaded export (its decoder a `GeneratorV2`, `decoder_net`).
    """

    def __init__(self, module: Any):
        super().__init__()
        dec = module.decoder
        self.noise_module = getattr(dec, "noise_module", None)
        self.waveform_module = dec.waveform_module if self.noise_module is not None else None
        self.amplitude_modulation = bool(dec.amplitude_modulation)
        self.n_channels = int(module.n_channels)
        self.pqmf = getattr(module, "pqmf", None)
        self.resampler = getattr(module, "resampler", None)
        self.ratio = int(module.decode_params[1])

    def forward(self, h: Tensor, frames: int) -> Tensor:
        noise: Optional[Tensor] = None  # noqa: UP045 (TorchScript reads typing.Optional)
        noise_module = self.noise_module
        if noise_module is not None:
            waveform_module = self.waveform_module
            if waveform_module is not None:
                noise = noise_module(h)
                h = waveform_module(h)
        if self.amplitude_modulation:
            x, amplitude = h.split(h.shape[1] // 2, 1)
            h = x * torch.sigmoid(amplitude)
        if noise is not None:
            h = h + noise
        y = torch.tanh(h)
        batch = y.shape[:-2]
        pqmf = self.pqmf
        if pqmf is not None:
            y = y.reshape(y.shape[0] * self.n_channels, -1, y.shape[-1])
            y = pqmf.inverse(y)
            y = y.reshape(list(batch) + [self.n_channels, -1])  # noqa: RUF005 (no * unpacking in TorchScript)
        resampler = self.resampler
        if resampler is not None:
            y = resampler.from_model_sampling_rate(y)
        return y[..., : frames * self.ratio]


def decoder_tail(model: Any, h: Tensor, frames: int) -> Tensor:
    """`DecoderTail` of the model's export applied to the decoder net's output `h`."""
    return DecoderTail(_module(model))(h, frames)


class HookLayers(nn.Module):
    """The encoder's or the decoder's layers cut after layer `index`: `upto` runs layers 0..index, `after` the
    rest. They are the export's own cached layers (their caches are the stream's state); TorchScript-able.

    Args:
        module: the loaded export.
        side: "encoder" or "decoder" (`parse_hook`).
        index: the hook's layer.
    """

    def __init__(self, module: Any, side: str, index: int):
        super().__init__()
        layers = encoder_net(module) if side == "encoder" else decoder_net(module)
        self.head = nn.ModuleList(layers[: index + 1])
        self.tail = nn.ModuleList(layers[index + 1 :])

    def upto(self, h: Tensor) -> Tensor:
        for layer in self.head:
            h = layer(h)
        return h

    def after(self, h: Tensor) -> Tensor:
        for layer in self.tail:
            h = layer(h)
        return h


def pool_rows(h: Tensor, steps: int) -> Tensor:
    """[B, C, F·steps] → [B, F, C]: the mean of each latent frame's `steps` outputs (TorchScript-able; `pool`
    checks the length first)."""
    return h.reshape(h.shape[0], h.shape[1], -1, steps).mean(-1).transpose(1, 2)


def pool(h: Tensor, steps: int) -> Tensor:
    """`pool_rows`, refusing an output that does not divide into frames of `steps`."""
    if h.shape[-1] % steps:
        raise UserError(f"layer output of {h.shape[-1]} steps does not divide into frames of {steps}")
    return pool_rows(h, steps)


def spread(delta: Tensor, steps: int) -> Tensor:
    """[B, F, C] → [B, C, F·steps]: each frame's change on every step of the frame."""
    return delta.transpose(1, 2).repeat_interleave(steps, dim=-1)


class RaveSplit:
    """One stream of a RAVE export, cut at `hook`: `upto(x)` → the hook's output, `rest(h)` → audio.

    Args:
        model: a `realtime.rave.RaveModel` (or `RaveStream`): its streaming caches are the split's state;
            use a fresh stream per split.
        hook: where to cut (`split_hooks(model)` lists them).
        check: measure once that the two parts equal the whole model (`check_split`) and refuse if not.
    """

    def __init__(self, model: Any, hook: str, check: bool = True):
        self.model = model
        self.hook = hook
        self.side, self.index = parse_hook(model, hook)
        self.layers = HookLayers(_module(model), self.side, self.index) if self.side != LATENT else None
        self.width, self.steps = hook_shape(model, hook)
        if check and self.side != LATENT:
            err = check_split(model, hook)
            if not err <= 1e-4:
                raise UserError(
                    f"hook {hook!r}: {_name(model)} run in two parts there differs from the whole model by "
                    f"{err:.2g} of its peak; its structure does not allow a split at this hook (try {LATENT!r})"
                )

    # -- the two parts -----------------------------------------------------------------------------------
    @torch.no_grad()
    def upto(self, x: Tensor) -> Tensor:
        """Audio [B, C, T] (T a multiple of the ratio) → the hook's output [B, width, T / ratio · steps]."""
        model = self.model
        if self.side == LATENT:
            return model.encode_mean(x)
        if self.side == "encoder":
            return self.layers.upto(model.encoder_input(x))
        return self.layers.upto(_module(model).pre_process_latent(model.encode_mean(x)))

    @torch.no_grad()
    def rest(self, h: Tensor) -> Tensor:
        """The hook's output → the model's audio [B, C, frames · ratio]."""
        model = self.model
        if self.side == LATENT:
            return model.decode(h)
        frames = h.shape[-1] // self.steps
        h = self.layers.after(h)
        if self.side == "encoder":
            return model.decode(latent_of(model, h))
        return decoder_tail(model, h, frames)

    @torch.no_grad()
    def __call__(self, x: Tensor, edit: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """Audio → audio, with `edit` ([B, F, width] pooled rows → edited rows) applied at the hook.

        `edit` returning its input object unchanged (the identity edit) leaves the layer untouched.
        """
        h = self.upto(x)
        if edit is not None:
            rows = pool(h, self.steps)
            new = edit(rows)
            if new is not rows:
                h = h + spread((new - rows).to(h.dtype), self.steps)
        return self.rest(h)


_SHAPES: dict[tuple[str, str], tuple[int, int]] = {}
_CHECKS: dict[tuple[str, str], float] = {}


def _key(model: Any, hook: str) -> tuple[str, str]:
    return (model.identity.sha256, hook)


@torch.no_grad()
def hook_shape(model: Any, hook: str) -> tuple[int, int]:
    """(channels, steps per latent frame) of a hook's output, measured once per model file on a fresh
    stream (two frames), with the caller's random stream left as it was (a decoder probe runs the model's noise
    fill of cropped latents: the first seeded render at that hook came out unlike the next)."""
    key = _key(model, hook)
    if key not in _SHAPES:
        if hook == LATENT:
            _SHAPES[key] = (int(model.latent_size), 1)
        else:
            probe = RaveSplit.__new__(RaveSplit)
            probe.model = model.new_stream()
            probe.hook = hook
            probe.side, probe.index = parse_hook(model, hook)
            probe.layers = HookLayers(_module(probe.model), probe.side, probe.index)
            probe.steps = 1
            x = torch.zeros(1, model.channels, 2 * model.ratio)
            with kept_streams(model.device):
                h = probe.upto(x)
            _SHAPES[key] = (int(h.shape[1]), int(h.shape[-1]) // 2)
    return _SHAPES[key]


@torch.no_grad()
def check_split(model: Any, hook: str, blocks: int = 3, seed: int = 0) -> float:
    """Largest |whole − pieces| over `blocks` streamed blocks of seeded noise, on two fresh streams, relative
    to the whole model's peak (at least 1e-3: a near-silent output is compared in absolute terms).

    Whole: `decode(encode_mean(x))`; pieces: `rest(upto(x))`; `decode`'s noise is seeded alike per block.
    Measured once per model file and hook.
    """
    key = _key(model, hook)
    if key in _CHECKS:
        return _CHECKS[key]
    whole = model.new_stream()
    pieces = RaveSplit(model.new_stream(), hook, check=False)
    g = torch.Generator().manual_seed(seed)
    block = model.ratio * max(2, 2048 // model.ratio)
    err, peak = 0.0, 1e-3
    with kept_streams(model.device):  # the caller's random streams are left as they were
        for i in range(blocks):
            x = 0.2 * torch.randn(1, model.channels, block, generator=g)
            torch.manual_seed(seed + i)
            a = whole.decode(whole.encode_mean(x))
            torch.manual_seed(seed + i)
            b = pieces.rest(pieces.upto(x))
            err = max(err, float((a - b).abs().max())) if a.shape == b.shape else float("inf")
            peak = max(peak, float(a.abs().max()))
    err /= peak
    _CHECKS[key] = err
    return err


@torch.no_grad()
def trace(model: Any, x: Tensor, hooks: Sequence[str]) -> dict[str, Tensor]:
    """The outputs [B, C, T_hook] of several hooks for one block, in one pass through `model`'s stream.

    Runs the encoder layer by layer (→ the latent), then the decoder up to the deepest decoder hook asked
    for; the caches of the layers run advance exactly as one `encode_mean` (plus a decoder pass up to that
    layer) would advance them. The decoder layers past it do not run, so ask every block of a stream for the
    same hooks: a deeper hook asked for later finds its layers' caches behind.
    """
    wanted = {h: parse_hook(model, h) for h in hooks}
    m = _module(model)
    out: dict[str, Tensor] = {}
    enc = {i: h for h, (side, i) in wanted.items() if side == "encoder"}
    dec = {i: h for h, (side, i) in wanted.items() if side == "decoder"}
    if enc:
        h = model.encoder_input(x)
        for i, layer in enumerate(encoder_net(m)):
            h = layer(h)
            if i in enc:
                out[enc[i]] = h
        z = latent_of(model, h)
    else:
        z = model.encode_mean(x)
    if LATENT in wanted:
        out[LATENT] = z
    if dec:
        h = m.pre_process_latent(z)
        for i, layer in enumerate(decoder_net(m)[: max(dec) + 1]):
            h = layer(h)
            if i in dec:
                out[dec[i]] = h
    return out
