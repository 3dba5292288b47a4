"""Tiny RAVE models in the real format: built from acids-rave's gin configs, exported by `rave export`.

`build_rave_run` writes a run folder exactly as `rave train` leaves it (`config.gin` +
`version_0/checkpoints/*.ckpt` with a `state_dict`), with the latent PCA fitted on real encodings the
way RAVE's validation does it; `export_run` then calls acids-rave's own exporter
(`rave export --run RUN --streaming`) in a subprocess, so the `.ts` is what users get from the zoo.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from sae.atomic import atomic_torch_save, atomic_write, atomic_write_text
from sae.errors import UserError


@dataclass
class RaveBuildConfig:
    """Args:
    configs: acids-rave gin configs, composed in order (like `rave train --config v2_small --config causal`).
    bindings: extra gin bindings (reduced capacity for tiny models).
    sample_rate: model rate in Hz.
    seed: torch seed for the weights.
    channels: audio channels of the model (RAVE's `n_channels`; 2 for a stereo model).
    """

    configs: tuple[str, ...] = ("v2_small", "causal")
    bindings: dict[str, object] = field(default_factory=lambda: {"CAPACITY": 4, "LATENT_SIZE": 16})
    sample_rate: int = 44100
    seed: int = 0
    channels: int = 1


def _parse_gin(cfg: RaveBuildConfig) -> None:
    import gin
    import rave

    gin.clear_config()
    bindings = [f"{k} = {v!r}" for k, v in {**cfg.bindings, "SAMPLING_RATE": cfg.sample_rate}.items()]
    # gin logs "ERROR:root:Path not found: v2_small.gin" for every search-path entry it tries before the one
    # that holds the file; a config that is really missing still raises (IOError) below
    logging.disable(logging.ERROR)
    try:
        gin.parse_config_files_and_bindings([f"{c}.gin" for c in cfg.configs], bindings)
    except OSError:
        known = sorted(p.stem for p in (Path(rave.__file__).parent / "configs").glob("*.gin"))
        raise UserError(
            f"--config {', '.join(cfg.configs)}: not all are acids-rave gin configs (known: {', '.join(known)})"
        ) from None
    finally:
        logging.disable(logging.NOTSET)


def build_model(cfg: RaveBuildConfig) -> torch.nn.Module:
    """A freshly initialised (non-streaming) RAVE from the gin configs (`cfg.channels` channels)."""
    import cached_conv as cc
    import gin
    import rave

    cc.use_cached_conv(False)
    _parse_gin(cfg)
    torch.manual_seed(cfg.seed)
    if cfg.channels == 1:
        return rave.RAVE(n_channels=1)
    with gin.unlock_config():  # recorded in config.gin, as `rave train --channels` does
        gin.bind_parameter("RAVE.n_channels", cfg.channels)
    return rave.RAVE()


@torch.no_grad()
def fit_latent_pca(model: torch.nn.Module, audio: torch.Tensor) -> None:
    """Set `latent_mean`, `latent_pca` and `fidelity` from posterior means of `audio` [B, channels, T].

    The same analysis RAVE's validation runs; the exporter crops the latent with `fidelity`.
    """
    import rave.blocks

    model.eval()
    z = model.encode(audio)
    # a variational encoder gives mean and scale; the others (wasserstein, spherical, discrete) the latent itself, as
    # acids-rave's validation reads them
    mean = z.chunk(2, 1)[0] if isinstance(model.encoder, rave.blocks.VariationalEncoder) else z
    z = mean.permute(0, 2, 1).reshape(-1, mean.shape[1]).double()
    if z.shape[0] < z.shape[1]:
        raise UserError(f"PCA needs at least {z.shape[1]} latent frames, got {z.shape[0]}: give more audio")
    mu = z.mean(0)
    _, s, vh = torch.linalg.svd(z - mu, full_matrices=False)
    var = (s**2) / (s**2).sum()
    model.latent_mean.copy_(mu.float())
    model.latent_pca.copy_(vh.float())
    model.fidelity.copy_(torch.cumsum(var, 0).float())


def run_checkpoint(run_dir: Path, name: str = "last") -> Path:
    """Where `save_run` writes its Lightning-layout checkpoint `name`, as `rave train` does."""
    return Path(run_dir) / "version_0" / "checkpoints" / f"{name}.ckpt"


def save_run(model: torch.nn.Module, run_dir: Path, name: str = "last", step: int | None = None) -> Path:
    """Write `config.gin` and a Lightning-layout checkpoint the way `rave train` does (`step` as its
    `global_step`)."""
    import gin

    path = run_checkpoint(run_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(run_dir / "config.gin", gin.operative_config_str())
    atomic_torch_save({"state_dict": model.state_dict(), **({} if step is None else {"global_step": step})}, path)
    return path


def export_run(
    run_dir: Path, out_path: Path, streaming: bool = True, fidelity: float = 0.95, python: str = sys.executable
) -> Path:
    """Export a run with acids-rave's `rave export [--streaming]` into `out_path` (a `.ts`).

    `fidelity` is the share of latent variance the export keeps (it crops the PCA'd latent to the
    smallest power of two reaching it).
    """
    out_path = Path(out_path)
    if not (Path(run_dir) / "config.gin").is_file() or next(Path(run_dir).rglob("*.ckpt"), None) is None:
        raise UserError(f"--run {run_dir}: no RAVE run here (expected config.gin and a checkpoint, *.ckpt, below it)")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        code = "import torch; torch.manual_seed(0); from scripts.main_cli import main; main()"  # seeded warm-up
        cmd = [
            python,
            "-c",
            code,
            "export",
            "--run",
            str(run_dir),
            "--output",
            tmp,
            "--name",
            "model",
            "--streaming" if streaming else "--nostreaming",
            f"--fidelity={fidelity}",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        produced = Path(tmp) / ("model_streaming.ts" if streaming else "model.ts")
        if proc.returncode != 0 or not produced.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise UserError(f"rave export failed for {run_dir}: {tail[0]}")
        atomic_write(out_path, lambda tmp_out: shutil.copyfile(produced, tmp_out))  # never half a .ts at out_path
    return out_path


def test_signal(sample_rate: int, seconds: float, seed: int) -> torch.Tensor:
    """Harmonic tones with noise bursts: enough spectral variety for a real PCA curve."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    x = np.zeros_like(t)
    for _ in range(8):
        f0 = rng.uniform(80, 1000)
        env = np.exp(-((t - rng.uniform(0, seconds)) ** 2) / 0.05)
        x += env * sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 6))
    x += 0.05 * rng.standard_normal(len(t)) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    x = 0.5 * x / np.abs(x).max()
    return torch.from_numpy(x).float().reshape(1, 1, -1)


def _first(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def build_tiny_rave(
    out_path: str | Path,
    seed: int = 0,
    cfg: RaveBuildConfig | None = None,
    streaming: bool = True,
    fidelity: float = 0.95,
) -> Path:
    """Build an untrained tiny causal RAVE and export it as a `.ts` (a few seconds on CPU); `fidelity`: the share
    of latent variance the export keeps (`export_run`)."""
    cfg = cfg or RaveBuildConfig(seed=seed)
    channels = [test_signal(cfg.sample_rate, 6.0, seed + c) for c in range(cfg.channels)]
    try:  # gin takes any composition of configs; some need a base config, another package or another latent
        model = build_model(cfg)
    except (TypeError, RuntimeError, ImportError, ValueError, AttributeError, KeyError) as exc:
        raise UserError(
            f"--config {', '.join(cfg.configs)}: acids-rave cannot build this builder's model from them "
            f"({_first(exc)}); start from v2_small or v2 (e.g. --config v2_small --config causal)"
        ) from None
    try:
        fit_latent_pca(model, torch.cat(channels, dim=1))
    except (TypeError, RuntimeError, ValueError) as exc:  # built, but it does not run on the test signal
        raise UserError(
            f"--config {', '.join(cfg.configs)}: the model acids-rave built does not encode a test signal "
            f"({_first(exc)})"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp) / "tiny_rave"
        save_run(model, run_dir)
        return export_run(run_dir, Path(out_path), streaming, fidelity=fidelity)
