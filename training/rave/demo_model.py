"""Train the demo RAVE on generated concept music (phase 1 of RAVE: the VAE, no GAN) and export it.

A plain loop over acids-rave's own model (built from its gin configs, `v2_small + causal` at reduced
capacity), with its own losses: multiband + fullband spectral distances and the KL term. The run folder
is what `rave train` leaves (config.gin + checkpoint), so acids-rave's exporter makes the `.ts`.

The shipped training/assets/demo_rave.ts is step 10172, made on 2 CPU cores (about 2.5 hours) by

    musicsae data make --out runs/demo_train_data --n 300 --seed 1000 --concepts none
    python -m training.rave.demo_model --audio runs/demo_train_data/clips --run runs/demo_rave \
        --length 32768 --steps 1795
    python -m training.rave.demo_model --audio runs/demo_train_data/clips --run runs/demo_rave \
        --length 32768 --steps 5500
    MUSICSAE_TRAIN_THREADS=2 python -m training.rave.demo_model --audio runs/demo_train_data/clips \
        --run runs/demo_rave --length 32768 --steps 10172
    python -m training.rave.demo_model --run runs/demo_rave --export training/assets/demo_rave.ts

(the first and the third calls stopped at their time budget, at steps 1795 and 10172; each call resumes).

A briefly trained RAVE puts most latent variance in its first PCA dimension, so the export keeps
latents up to 99.9 % of the variance (the exporter's maximum) instead of its default 95 %.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from training.rave.tiny_model import RaveBuildConfig, build_model, export_run, fit_latent_pca, save_run

DEMO_CONFIG = RaveBuildConfig(
    configs=("v2_small", "causal"), bindings={"CAPACITY": 16, "LATENT_SIZE": 16}, sample_rate=44100, seed=0
)


def load_clips(folder: Path, sample_rate: int) -> list[np.ndarray]:
    clips = []
    for path in sorted(folder.glob("*.wav")):
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        if sr != sample_rate:
            raise SystemExit(f"{path}: {sr} Hz, the demo model trains at {sample_rate} Hz")
        clips.append(audio.mean(1))
    if not clips:
        raise SystemExit(f"{folder}: no .wav clips")
    return clips


def batches(clips: list[np.ndarray], batch: int, length: int, rng: np.random.Generator):
    while True:
        out = np.zeros((batch, 1, length), np.float32)
        for b in range(batch):
            clip = clips[rng.integers(len(clips))]
            start = rng.integers(0, max(1, len(clip) - length))
            piece = clip[start : start + length]
            out[b, 0, : len(piece)] = piece
        yield torch.from_numpy(out)


def loss_terms(model: torch.nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """RAVE phase-1 generator losses for a batch [B, 1, T]."""
    from rave.model import _pqmf_decode

    z, x_mb = model.encode(x, return_mb=True)
    z, kl = model.encoder.reparametrize(z)[:2]
    y_mb = model.decoder(z)
    y = _pqmf_decode(model.pqmf, y_mb, batch_size=x.shape[:-2], n_channels=1)[..., : x.shape[-1]]
    y_mb = y_mb[..., : x_mb.shape[-1]]
    terms = {f"multiband_{k}": v for k, v in model.multiband_audio_distance(x_mb, y_mb).items()}
    terms.update({f"fullband_{k}": v for k, v in model.audio_distance(x, y).items()})
    terms["kl"] = 0.01 * kl
    return terms


def train(
    audio: Path,
    run_dir: Path,
    minutes: float,
    batch: int,
    length: int,
    lr: float,
    seed: int,
    max_steps: int | None = None,
    device: str = "cpu",
) -> None:
    torch.set_num_threads(int(os.environ.get("MUSICSAE_TRAIN_THREADS", "1")))
    model = build_model(DEMO_CONFIG).to(device)
    opt = torch.optim.Adam(list(model.encoder.parameters()) + list(model.decoder.parameters()), lr, betas=(0.5, 0.9))
    state_path = run_dir / "train_state.pt"
    step = 0
    if state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        step = state["step"]
    clips = load_clips(audio, DEMO_CONFIG.sample_rate)
    rng = np.random.default_rng(seed + step)
    data = batches(clips, batch, length, rng)
    model.train()
    t_end = time.time() + 60 * minutes
    log = run_dir / "train_log.jsonl"
    run_dir.mkdir(parents=True, exist_ok=True)
    while time.time() < t_end and (max_steps is None or step < max_steps):
        terms = loss_terms(model, next(data).to(device))
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        if step % 50 == 0:
            record = {"step": step, "time": time.time(), **{k: float(v.detach()) for k, v in terms.items()}}
            with log.open("a") as f:
                f.write(json.dumps(record) + "\n")
        if step % 500 == 0:
            checkpoint(model, opt, step, run_dir, clips)
    checkpoint(model, opt, step, run_dir, clips)
    print(f"trained to step {step}")


def checkpoint(model, opt, step: int, run_dir: Path, clips: list[np.ndarray]) -> None:
    """Resumable state, then the latent PCA and a `rave train`-style run folder (on the CPU, for the exporter)."""
    tmp = run_dir / "train_state.tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step}, tmp)
    os.replace(tmp, run_dir / "train_state.pt")
    device = next(model.parameters()).device
    sample = torch.from_numpy(np.concatenate([c[: 2 * 44100] for c in clips[:40]])).reshape(1, 1, -1)
    with torch.no_grad():
        fit_latent_pca(model.cpu(), sample)
    save_run(model, run_dir)
    model.to(device).train()


def main() -> None:
    parser = argparse.ArgumentParser(description="train / export the demo RAVE")
    parser.add_argument("--audio", type=Path, help="folder of training .wav clips")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=60, help="wall-clock budget of this call")
    parser.add_argument("--steps", type=int, help="stop at this total step count (resumed runs count on)")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--length", type=int, default=16384)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--export", type=Path, help="export the run's checkpoint to this .ts and stop")
    parser.add_argument("--fidelity", type=float, default=0.999, help="kept latent variance (max 0.999)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    args = parser.parse_args()
    if args.export:
        export_run(args.run, args.export, fidelity=args.fidelity)
        print(f"exported {args.export}")
        return
    if not args.audio:
        parser.error("--audio is needed to train (or pass --export)")
    train(args.audio, args.run, args.minutes, args.batch, args.length, args.lr, args.seed, args.steps, args.device)


if __name__ == "__main__":
    main()
