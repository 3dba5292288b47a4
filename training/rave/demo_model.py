"""Train the demo RAVE on generated concept music and export it.

A plain loop over acids-rave's own model (built from its gin configs, `v2_small + causal` at reduced
capacity), with its own losses. Phase 1 (the VAE): multiband + fullband spectral distances and the KL term.
Phase 2 (`--warmup N`: from step N on, as RAVE's `PHASE_1_DURATION`): the encoder is frozen and the decoder
is trained against acids-rave's discriminator (hinge loss, feature matching), the discriminator updated on
every other step, as `rave train` does. The run folder is what `rave train` leaves (config.gin + checkpoint),
so acids-rave's exporter makes the `.ts`.

The recipe (`Recipe`: sample rate, capacity, latent size, batch, length, learning rate, seed, warm start),
the training data's fingerprint and the random streams are stored in `train_state.pt` (a run stopped and resumed
trains as an uninterrupted one); a resumed run takes the recorded
recipe, and one whose data or explicitly given options differ is refused with what differs. `--data` takes a
`musicsae data make` folder and trains on its train split only (never its test split or held-out font);
clips at another rate are resampled to the recipe's. Every `--eval-every` steps the log records the
multi-scale spectral distance on fixed clips of the test split and of the held-out font, with the CPU
seconds spent so far (`train_log.jsonl`).

How the shipped training/assets/demo_rave.ts was made is in README.md ("The demo model"). A briefly trained
RAVE puts most latent variance in its first PCA dimension, so the export keeps latents up to 99.9 % of the
variance (the exporter's maximum) instead of its default 95 %.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from sae.atomic import atomic_torch_save, remove_leftovers, sole_writer
from sae.errors import UserError, differences
from sae.io import read_torch
from sae.jsonfile import trim_log
from sae.paths import check_output_dir, check_output_file
from sae.seeds import seeded
from sae.streams import RandomStreams
from sae.train import set_train_threads
from training.cli.args import (
    Parser,
    add_device,
    kept_variance,
    nonneg_float,
    nonneg_int,
    positive_float,
    positive_int,
    seed_int,
    thread_count,
)
from training.cli.main import HeldStop
from training.data.crops import crop_start
from training.rave.tiny_model import (
    RaveBuildConfig,
    build_model,
    export_run,
    fit_latent_pca,
    run_checkpoint,
    save_run,
)

if TYPE_CHECKING:
    from realtime.rave import RaveModel


@dataclass(frozen=True)
class Recipe:
    """What a demo RAVE run is: the model and the optimisation. A resumed run must keep all of it."""

    sample_rate: int = 22050
    capacity: int = 16
    latent_size: int = 16
    batch: int = 4
    length: int = 32768
    lr: float = 1e-3
    seed: int = 0
    kl_weight: float = 0.01
    configs: tuple[str, ...] = ("v2_small", "causal")
    init: str = ""  # sha256 of the export the weights were warm-started from ("" = random init)
    warmup: int | None = None  # step where phase 2 (adversarial) starts; None: phase 1 only
    adversarial_lr: float = 1e-4  # the decoder's rate in phase 2 (where acids-rave's schedule ends)

    def build(self) -> RaveBuildConfig:
        return RaveBuildConfig(
            configs=self.configs,
            bindings={"CAPACITY": self.capacity, "LATENT_SIZE": self.latent_size},
            sample_rate=self.sample_rate,
            seed=self.seed,
        )


MIN_LENGTH = 16 * 1024 + 16  # v2_small: 16 bands, each more than its loss's 1024-frame reflection padding
V2_RECIPE = Recipe(sample_rate=44100, length=32768)  # the shipped v2 (trained on one soundfont)
RECIPE_OPTIONS = (
    "sample_rate", "capacity", "latent_size", "batch", "length", "lr", "seed", "kl_weight", "warmup", "adversarial_lr"
)  # fmt: skip
CHECKPOINT = Path("version_0/checkpoints/last.ckpt")  # the `rave train`-style checkpoint (`save_run`)
PHASE_2_OPTIONS = ("warmup", "adversarial_lr")  # may change on resume while the run is still in phase 1
DISCRIMINATOR_LR = 1e-4  # acids-rave's


# ---------------------------------------------------------------- data


def _read(path: Path, sample_rate: int) -> np.ndarray:
    """A training file as mono float32 at `sample_rate` (the project's one reader; an unusable file is one line)."""
    from realtime.audio_files import read_audio

    return read_audio(path, sample_rate, 1, what="training audio")[0][:, 0]


def clip_files(audio: Path | None, data: Path | None, split: str = "train") -> list[Path]:
    """Training files: the audio files under `audio` (`list_audio`), or the clips of `split` in a `data make` folder."""
    if data is not None:
        from training.data.concept_clips import read_manifest

        files = [Path(data) / r["file"] for r in read_manifest(Path(data)) if r["split"] == split]
        if not files:
            raise UserError(f"--data {data}: no clips in the {split} split")
        return files
    if audio is None:
        raise UserError("--audio or --data is needed to train (or pass --export)")
    from realtime.audio_files import list_audio

    return list_audio(audio, "--audio")  # every audio file below it, as the collectors list them


def fingerprint(files: list[Path]) -> dict:
    """Identity of a training set: clip count and a sha256 over the names and bytes of the clips."""
    h = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        h.update(os.fsencode(path.name) + b"\0")  # a name not in UTF-8 (a Latin-1 system's) as its bytes
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return {"clips": len(files), "sha256": h.hexdigest()}


def load_clips(files: list[Path], sample_rate: int) -> list[np.ndarray]:
    """The training clips; a set of nothing but silence is refused (`batches` would never find a sound)."""
    from realtime.audio_files import SILENCE_PEAK

    clips = [_read(p, sample_rate) for p in files]
    if not any(len(c) and float(np.abs(c).max()) >= SILENCE_PEAK for c in clips):
        where = files[0].parent if len({f.parent for f in files}) == 1 else f"{len(files)} files"
        raise UserError(f"training audio {where}: every clip is silent (peak below {SILENCE_PEAK:g}); nothing to learn")
    return clips


def batches(clips: list[np.ndarray], batch: int, length: int, rng: np.random.Generator):
    """Endless [batch, 1, length] crops of random clips. A batch of nothing but silence (every crop in the gaps of
    stems) is drawn again: its spectral distances divide by zero, and every weight would turn NaN."""
    from realtime.audio_files import SILENCE_PEAK

    while True:
        out = np.zeros((batch, 1, length), np.float32)
        for b in range(batch):
            clip = clips[rng.integers(len(clips))]
            start = crop_start(rng, len(clip), length)
            piece = clip[start : start + length]
            out[b, 0, : len(piece)] = piece
        if float(np.abs(out).max()) >= SILENCE_PEAK:
            yield torch.from_numpy(out)


# ---------------------------------------------------------------- model


def reconstruct_batch(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """A batch [B, 1, T] through the model as phase 1 trains it: (input bands, output bands, output [B, 1, T],
    KL term)."""
    from rave.model import _pqmf_decode

    z, x_mb = model.encode(x, return_mb=True)
    z, kl = model.encoder.reparametrize(z)[:2]
    y_mb = model.decoder(z)
    y = _pqmf_decode(model.pqmf, y_mb, batch_size=x.shape[:-2], n_channels=1)[..., : x.shape[-1]]
    return x_mb, y_mb[..., : x_mb.shape[-1]], y, kl


def loss_terms(
    model: torch.nn.Module, x: torch.Tensor, kl_weight: float = 0.01
) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """RAVE phase-1 generator losses for a batch [B, 1, T], and the reconstruction [B, 1, T]."""
    x_mb, y_mb, y, kl = reconstruct_batch(model, x)
    terms = {f"multiband_{k}": v for k, v in model.multiband_audio_distance(x_mb, y_mb).items()}
    terms.update({f"fullband_{k}": v for k, v in model.audio_distance(x, y).items()})
    terms["kl"] = kl_weight * kl
    return terms, y


def adversarial_terms(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """RAVE phase 2 for real `x` and reconstructed `y` [B, 1, T]: the discriminator's loss, and the generator's
    feature-matching and adversarial terms, weighted as acids-rave's training step weighs them (its weight is
    applied when the term is made and again when the loss is summed)."""
    real, fake = model.split_features(model.discriminator(torch.cat([x, y], 0)))
    skip = model.num_skipped_features
    matching, dis, adv = x.new_zeros(()), x.new_zeros(()), x.new_zeros(())
    for r, f in zip(real, fake, strict=True):
        matching = matching + sum(map(model.feature_matching_fun, r[skip:], f[skip:])) / len(r[skip:])
        d, a = model.gan_loss(r[-1], f[-1])
        dis, adv = dis + d, adv + a
    w = model.weights
    gen = {
        "feature_matching": w["feature_matching"] ** 2 * matching / len(real),
        "adversarial": w["adversarial"] ** 2 * adv,
    }
    return dis, gen


@torch.no_grad()
def reconstruct(model: torch.nn.Module, audio: np.ndarray) -> np.ndarray:
    """The (non-streaming) model's reconstruction from posterior means: encode, decode, same length."""
    x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).reshape(1, 1, -1)
    pad = (-x.shape[-1]) % 2048
    z = model.encode(torch.nn.functional.pad(x, (0, pad)))
    mean = z.chunk(2, 1)[0]
    return model.decode(mean).reshape(-1)[: x.shape[-1]].numpy()


def read_init(ts_path: Path, sample_rate: int) -> RaveModel:
    """The streaming export `--init` names, read before any model is built (a wrong file is refused at once). An
    export made at another rate is allowed (the weights do not depend on it; its bands then sit an octave away),
    with a note."""
    from realtime.rave import RaveModel

    if not Path(ts_path).is_file():
        raise UserError(f"--init {ts_path}: no such file (expected a streaming RAVE export, .ts)")
    rave = RaveModel(ts_path, label="--init")  # one line naming --init for a file that is not a RAVE export
    if rave.sr != sample_rate:
        print(f"note: --init {ts_path} is a {rave.sr} Hz model; its weights start a {sample_rate} Hz one")
    return rave


def warm_start(model: torch.nn.Module, rave: RaveModel) -> str:
    """Copy the encoder / decoder weights of a streaming export (`read_init`) into `model` (weight norm re-applied).

    Returns the export's sha256. Refused when any weight's shape differs.
    """
    ts_path = rave.path
    src = rave.module.state_dict()
    own = model.state_dict()
    new, missing = {}, []
    for key, value in own.items():
        if not key.startswith(("encoder.", "decoder.")):
            continue
        if key in src and src[key].shape == value.shape:
            new[key] = src[key]
        elif key.endswith("weight_v") and src.get(key[:-2], torch.empty(0)).shape == value.shape:
            w = src[key[:-2]]
            new[key] = w
            new[key[:-1] + "g"] = torch.linalg.vector_norm(w.flatten(1), dim=1).reshape(own[key[:-1] + "g"].shape)
        elif not key.endswith("weight_g"):
            missing.append(key)
    if missing:
        raise UserError(f"--init {ts_path}: {len(missing)} weights do not fit the recipe (first: {missing[0]})")
    model.load_state_dict(new, strict=False)
    return rave.identity.sha256


# ---------------------------------------------------------------- training


def resolve_recipe(
    run_dir: Path, given: dict, data_id: dict, init: Path | None, new_data: bool = False
) -> tuple[Recipe, dict | None]:
    """The run's recipe: the recorded one when resuming (explicitly given options must agree), else defaults
    updated with `given`. Returns (recipe, saved state or None). Refuses a resumed run whose data changed, unless
    `new_data` (said, and the new data recorded from its next checkpoint on)."""
    state_path = run_dir / "train_state.pt"
    if not state_path.exists():
        if new_data:
            raise UserError(f"--new-data: resumes a run on other data, and {run_dir} holds no run (train_state.pt)")
        return dataclasses.replace(Recipe(), **given), None
    state = read_torch(state_path)
    if "recipe" not in state or "data" not in state:
        raise UserError(f"{state_path}: no recipe / data record (an older run); start a new --run")
    recorded = {**dataclasses.asdict(Recipe()), **state["recipe"]}  # options added since take their defaults
    recorded["configs"] = tuple(recorded["configs"])
    switchable = [w for w in (recorded["warmup"], given.get("warmup")) if w is not None]
    if switchable and state["step"] <= min(switchable):  # every step so far is phase 1 under either recipe
        recorded.update({k: given[k] for k in PHASE_2_OPTIONS if k in given})
    options = differences({k: recorded[k] for k in given}, given, "recorded")
    if options and any(k in given for k in PHASE_2_OPTIONS) and switchable:
        options += f" (phase 2 can be set until its step; the run is at step {state['step']})"
    diffs = [options] if options else []
    if init is not None:
        diffs.append(f"--init {init} (a resumed run keeps its weights)")
    if state["data"] != data_id:
        data = (
            f"{state['data']['clips']} clips (sha256 {state['data']['sha256'][:12]}) recorded, "
            f"{data_id['clips']} clips (sha256 {data_id['sha256'][:12]}) now"
        )
        if not new_data:
            diffs.append(f"data: {data} (--new-data resumes on it)")
        elif not diffs:
            print(f"note: resuming at step {state['step']} on other data: {data}", flush=True)
    elif new_data:
        print("note: --new-data: the data is the run's own", flush=True)
    if diffs:
        raise UserError(f"{state_path}: resuming with a different setup is refused: {'; '.join(diffs)}")
    return Recipe(**recorded), state


@torch.no_grad()
def evaluate(model: torch.nn.Module, sets: dict[str, list[np.ndarray]]) -> dict[str, float]:
    """Mean multi-scale spectral distance of reconstructions per named clip set."""
    from training.rave.fidelity_metrics import spectral_distance

    model.eval()
    out = {n: float(np.mean([spectral_distance(c, reconstruct(model, c)) for c in clips])) for n, clips in sets.items()}
    model.train()
    return out


def eval_sets(data: Path | None, sample_rate: int, n: int = 8, seconds: float = 2.0) -> dict[str, list[np.ndarray]]:
    """Fixed evaluation clips: the first `n` of the test split and of the held-out font (when there is one)."""
    if data is None:
        return {}
    from training.data.concept_clips import HOLDOUT_SPLIT, read_manifest

    rows = read_manifest(Path(data))
    sets = {}
    for name, split in (("test", "test"), ("holdout_font", HOLDOUT_SPLIT)):
        files = [Path(data) / r["file"] for r in rows if r["split"] == split][:n]
        if files:
            sets[name] = [c[: int(seconds * sample_rate)] for c in load_clips(files, sample_rate)]
    return sets


def check_run_dir(run_dir: Path) -> None:
    """`--run` is new or a demo RAVE run folder: a file, or a MusicGen recipe's run, is refused before any work."""
    check_output_dir(run_dir, "--run")
    if (run_dir / "run.json").exists():
        raise UserError(f"--run {run_dir}: it holds a MusicGen recipe run (run.json), not a demo RAVE run; "
                        "use a new --run folder")  # fmt: skip


def train(
    run_dir: Path,
    files: list[Path],
    given: dict,
    minutes: float,
    max_steps: int | None = None,
    device: str = "cpu",
    init: Path | None = None,
    data: Path | None = None,
    eval_every: int = 1000,
    threads: int | None = None,
    new_data: bool = False,
) -> int:
    """Train (or resume) until `max_steps` or the time budget; returns the step reached. The run folder is held
    for this training alone (a second one started on it is refused: the two would overwrite each other's
    checkpoints), and the temporary files of a training killed mid-checkpoint are removed."""
    check_run_dir(run_dir)
    with sole_writer(run_dir, "demo RAVE training", flag="--run"):
        for path in (run_dir / "train_state.pt", run_dir / "config.gin", run_dir / CHECKPOINT):
            remove_leftovers(path)
        set_train_threads(threads)
        return _train(run_dir, files, given, minutes, max_steps, device, init, data, eval_every, new_data)


def _train(
    run_dir: Path,
    files: list[Path],
    given: dict,
    minutes: float,
    max_steps: int | None,
    device: str,
    init: Path | None,
    data: Path | None,
    eval_every: int,
    new_data: bool = False,
) -> int:
    """`train` holding the run folder."""
    data_id = fingerprint(files)
    recipe, state = resolve_recipe(run_dir, given, data_id, init, new_data)
    if recipe.length < MIN_LENGTH:
        raise UserError(f"--length {recipe.length}: expected at least {MIN_LENGTH} samples (16 PQMF bands, each "
                        "longer than the 1024 frames the largest spectral loss window pads)")  # fmt: skip
    source = read_init(init, recipe.sample_rate) if init is not None else None
    model = build_model(recipe.build())
    if source is not None:
        recipe = dataclasses.replace(recipe, init=warm_start(model, source))
    model.to(device)
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    opts = {
        "opt": torch.optim.Adam(params, recipe.lr, betas=(0.5, 0.9)),
        "dis_opt": torch.optim.Adam(model.discriminator.parameters(), DISCRIMINATOR_LR, betas=(0.5, 0.9)),
    }
    step, cpu_s, wall_s = 0, 0.0, 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        for name, opt in opts.items():
            if name in state:  # a run from before phase 2 existed has no discriminator optimiser yet
                opt.load_state_dict(state[name])
        step, cpu_s, wall_s = state["step"], state.get("cpu_s", 0.0), state.get("wall_s", 0.0)
        trim_log(run_dir / "train_log.jsonl", step)  # the steps logged after that checkpoint are trained again
        if max_steps is not None and step >= max_steps:  # it printed "trained to step N" and nothing else
            print(f"note: {run_dir} is at step {step}, which --steps {max_steps} does not pass: nothing to train")
    else:  # a start killed before its first checkpoint logged steps this one trains again (twice in the log)
        (run_dir / "train_log.jsonl").unlink(missing_ok=True)
    clips = load_clips(files, recipe.sample_rate)
    sets = eval_sets(data, recipe.sample_rate)
    rng = seeded(recipe.seed, step)
    streams = RandomStreams(rng)  # the batches and the KL's noise: a resumed run draws on as if it had not stopped
    streams.restore(state.get("rng") if state is not None else None)
    batch_iter = batches(clips, recipe.batch, recipe.length, rng)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = run_dir / "train_log.jsonl"
    meta = {"recipe": dataclasses.asdict(recipe), "data": data_id}
    model.train()
    t_end = time.monotonic() + 60 * minutes  # the wall clock stepped by NTP ended a run, or gave it an hour
    cpu0, wall0 = time.process_time(), time.monotonic()

    def spent() -> tuple[float, float]:
        return cpu_s + time.process_time() - cpu0, wall_s + time.monotonic() - wall0

    saved = state["step"] if state is not None else None

    def save() -> None:  # at the step reached, with the random streams as they are now
        nonlocal saved
        checkpoint(model, opts, step, run_dir, clips, recipe, {**meta, "rng": streams.state()}, *spent())
        saved = step

    last: dict[str, torch.Tensor] = {}
    with HeldStop() as held:  # a Ctrl-C or SIGTERM ends the step in progress, checkpoints there, then stops
        while time.monotonic() < t_end and (max_steps is None or step < max_steps):
            if held.due():
                save()
                held.stop()
            terms = train_step(model, opts, next(batch_iter).to(device), recipe, step)
            if bad := [k for k, v in terms.items() if not bool(torch.isfinite(v).all())]:
                kept = f"train_state.pt keeps step {saved}" if saved is not None else "nothing was saved"
                raise UserError(f"--run {run_dir}: step {step + 1}'s loss is not finite ({', '.join(bad)}); "
                                f"stopped without saving its weights ({kept}); resumed, the run meets this step "
                                "again: start a new --run with a lower --lr")  # fmt: skip
            last.update(terms)
            step += 1
            if step % 50 == 0 or (eval_every and step % eval_every == 0):
                cpu, wall = spent()
                record = {"step": step, "time": time.time(), "cpu_s": cpu, "wall_s": wall}
                record.update({k: float(v.detach()) for k, v in last.items()})
                if sets and eval_every and step % eval_every == 0:
                    record["eval_spectral_distance"] = evaluate(model.cpu(), sets)
                    model.to(device)
                with log.open("a") as f:
                    f.write(json.dumps(record) + "\n")
            if step % 500 == 0:
                save()
    save()
    cpu, wall = spent()
    print(f"trained to step {step} ({cpu / 3600:.2f} CPU hours, {wall / 3600:.2f} wall hours in all)")
    return step


def train_step(
    model: torch.nn.Module, opts: dict[str, torch.optim.Optimizer], x: torch.Tensor, recipe: Recipe, step: int
) -> dict[str, torch.Tensor]:
    """One optimisation step at `step`; returns its loss terms. Phase 1 updates encoder and decoder on the
    spectral distances and the KL term; from `recipe.warmup` on, the encoder is frozen, even steps update the
    discriminator and odd ones the decoder (with the feature-matching and adversarial terms added)."""
    adversarial = recipe.warmup is not None and step >= recipe.warmup
    model.encoder.set_warmed_up(adversarial)  # acids-rave's switch: the encoder's output is detached
    model.decoder.set_warmed_up(adversarial)
    if adversarial and step % 2 == 0:
        with torch.no_grad():  # the reconstruction alone: the distances train the decoder, not the discriminator
            y = reconstruct_batch(model, x)[2]
        dis = adversarial_terms(model, x, y)[0]
        opts["dis_opt"].zero_grad()
        dis.backward()
        opts["dis_opt"].step()
        return {"discriminator": dis}
    terms, y = loss_terms(model, x, recipe.kl_weight)
    if adversarial:
        terms.update(adversarial_terms(model, x, y)[1])
        for group in opts["opt"].param_groups:
            group["lr"] = recipe.adversarial_lr
    opts["opt"].zero_grad()
    sum(terms.values()).backward()
    opts["opt"].step()
    return terms


def checkpoint(model, opts, step, run_dir, clips, recipe: Recipe, meta: dict, cpu_s: float, wall_s: float) -> None:
    """Resumable state, then the latent PCA and a `rave train`-style run folder (on the CPU, for the exporter)."""
    state = {"model": model.state_dict(), "step": step, "cpu_s": cpu_s, "wall_s": wall_s}
    state.update({name: opt.state_dict() for name, opt in opts.items()})
    atomic_torch_save({**state, **meta}, run_dir / "train_state.pt")
    device = next(model.parameters()).device
    sr = recipe.sample_rate
    sample = torch.from_numpy(np.concatenate([c[: 2 * sr] for c in clips[:40]])).reshape(1, 1, -1)
    with torch.no_grad():
        fit_latent_pca(model.cpu(), sample)
    save_run(model, run_dir, step=step)
    model.to(device).train()


def check_checkpoints_agree(run_dir: Path) -> None:
    """A run whose exporter checkpoint (`last.ckpt`) holds another step than `train_state.pt` is refused: a kill
    between the two writes of a checkpoint left the exporter's 500 steps behind, and `--export` exported those
    weights without a word. (Checkpoints from before the step was recorded are not checked.)"""
    ckpt = run_checkpoint(run_dir)
    if not (run_dir / "train_state.pt").is_file() or not ckpt.is_file():
        return
    exported = read_torch(ckpt).get("global_step")
    state = read_torch(run_dir / "train_state.pt")["step"]
    if exported is not None and exported != state:
        raise UserError(f"--run {run_dir}: {ckpt.relative_to(run_dir)} holds step {exported} and train_state.pt "
                        f"step {state} (a checkpoint cut short); resume the run to write both again, then "
                        "export")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = Parser(description="train / export the demo RAVE")
    parser.add_argument("--data", type=Path, help="a `musicsae data make` folder: train on its train split")
    parser.add_argument("--audio", type=Path, help="folder of training .wav clips (instead of --data)")
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--minutes", type=positive_float, default=60, help="wall-clock budget of this call")
    parser.add_argument("--steps", type=positive_int, help="stop at this total step count (resumed runs count on)")
    parser.add_argument(
        "--sr", dest="sample_rate", type=positive_int, help=f"model rate (default {Recipe.sample_rate})"
    )
    parser.add_argument("--capacity", type=positive_int, help=f"RAVE CAPACITY (default {Recipe.capacity})")
    parser.add_argument("--latent-size", type=positive_int, help=f"full latent size (default {Recipe.latent_size})")
    parser.add_argument("--batch", type=positive_int, help=f"default {Recipe.batch}")
    parser.add_argument("--length", type=positive_int, help=f"samples per batch item (default {Recipe.length})")
    parser.add_argument("--lr", type=positive_float, help=f"default {Recipe.lr}")
    parser.add_argument("--seed", type=seed_int, help=f"default {Recipe.seed}")
    parser.add_argument("--kl-weight", type=nonneg_float, help=f"weight of the KL term (default {Recipe.kl_weight})")
    parser.add_argument("--init", type=Path, help="warm-start a new run from this streaming export's weights")
    parser.add_argument(
        "--warmup", type=nonneg_int, help="start phase 2 (adversarial, encoder frozen) at this step (default: never)"
    )
    parser.add_argument(
        "--adversarial-lr", type=positive_float, help=f"the decoder's rate in phase 2 (default {Recipe.adversarial_lr})"
    )
    parser.add_argument(
        "--eval-every", type=nonneg_int, default=1000, help="steps between held-out evaluations (0: none)"
    )
    parser.add_argument("--threads", type=thread_count, help="torch threads (default $MUSICSAE_TRAIN_THREADS or 1)")
    parser.add_argument(
        "--new-data",
        action="store_true",
        help="resume the run on other data than it recorded (weights, optimiser and step go on; refused otherwise)",
    )
    parser.add_argument("--export", type=Path, help="export the run's checkpoint to this .ts and stop")
    parser.add_argument("--fidelity", type=kept_variance, default=0.999, help="kept latent variance (max 0.999)")
    add_device(parser, "training")
    args = parser.parse_args(argv)
    from training.cli.main import guarded, resumable

    def run() -> None:
        if args.export:  # a .ts: `--export RUN/train_state.pt` replaced the run's own state with the export
            out = check_output_file(args.export, (".ts",), "--export")
            check_checkpoints_agree(args.run)
            export_run(args.run, out, fidelity=args.fidelity)
            print(f"exported {args.export}")
            return
        files = clip_files(args.audio, args.data)
        given = {k: getattr(args, k) for k in RECIPE_OPTIONS if getattr(args, k) is not None}
        train(args.run, files, given, args.minutes, args.steps, args.device, args.init, args.data, args.eval_every,
              args.threads, args.new_data)  # fmt: skip

    return guarded("demo_model", run, "" if args.export else resumable(args.run / "train_state.pt"))


if __name__ == "__main__":
    raise SystemExit(main())
