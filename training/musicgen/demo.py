"""`musicsae demo --musicgen`: the MusicGen path on the shipped demo MusicGen, in a few minutes on 2 cores.

1. `musicsae data make`: seeded concept clips at the model's rate, in the fonts the model was trained on.
2. the experiment (`experiment.py`) at demo sizes: every layer collected (teacher-forced clips, generated
   prompts), an SAE per layer, concept AUROC per layer, guitar `off` / `on` judged per layer on validation
   prompts beside the raw-residual mean-difference baseline, the chosen layer on test prompts.
3. renders: a guitar prompt plain and with guitar off, a prompt without guitar plain and with guitar on, at the
   chosen layer and strength.
4. the dashboard of the chosen layer's SAE, whose per-layer map shows every layer (FVU, L0, dead, AUROC).
5. OUT/report.md.

The model defaults to `training/assets/demo_musicgen` (audiocraft format; see its training.json); `--model` names
another description-trained MusicGen folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from realtime.musicgen.record import training_record
from sae.atomic import atomic_write_text
from sae.errors import UserError
from sae.jsonfile import strict_json
from training.demo import Steps

DEMO_MUSICGEN = Path(__file__).resolve().parents[1] / "assets" / "demo_musicgen"
DEMO_FONTS = ("timgm6mb", "csound")  # the fonts the demo model was trained on


@dataclass
class MusicGenDemoConfig:
    """Args:
    out: output folder.
    model: MusicGen folder (None: the shipped demo model).
    n, seed, clip_seconds: generated clips (clip_seconds None: the render duration).
    concept: the concept steered and rendered; probe: concepts mapped per layer.
    sae_steps, pairs, seeds, strengths, prompts: experiment sizes (see `experiment.ExperimentConfig`).
    edit_rows: guidance rows tried. The defaults (conditional rows, strengths 0.25 and 0.5) are what the full
    experiment chose on its validation prompts for the SAE edit on the shipped model (README, "The demo MusicGen").
    duration: seconds per render and per collected prompt (None: the LM's training segment, 3 s without one).
    k, expansion: the SAEs' active latents per row and width / input width.
    jobs: data rendering processes; device: torch device for MusicGen and the SAEs.
    """

    out: str
    model: str | None = None
    n: int = 120
    seed: int = 0
    clip_seconds: float | None = None
    concept: str = "guitar"
    probe: tuple[str, ...] = ("guitar", "drums", "piano")
    sae_steps: int = 400
    pairs: int = 4
    seeds: int = 2
    strengths: tuple[float, ...] = (0.25, 0.5)
    edit_rows: tuple[str, ...] = ("cond",)
    prompts: int = 8
    duration: float | None = None
    k: int = 8
    expansion: int = 8
    jobs: int = 2
    device: str = "cpu"


def _model(cfg: MusicGenDemoConfig) -> Path:
    """--model, else the shipped demo MusicGen. A tiny random one was the fallback, but it has no description
    vocabulary, which the demo needs, so the fallback could only fail after it was built (hunt 78)."""
    if cfg.model:
        return Path(cfg.model)
    if not (DEMO_MUSICGEN / "state_dict.bin").is_file():
        raise UserError(f"the demo MusicGen {DEMO_MUSICGEN} is not there (a partial checkout?); restore it, or give "
                        "--model a description-trained MusicGen folder")  # fmt: skip
    return DEMO_MUSICGEN


def run_musicgen_demo(
    cfg: MusicGenDemoConfig, say: Callable[[str], None] = print, data_made: Callable[[], None] = lambda: None
) -> dict[str, Any]:
    from realtime.audio_files import write_audio
    from realtime.musicgen import load_musicgen
    from realtime.musicgen.render import BankSteering, parse_set, render
    from sae.bank import ConceptBank
    from training.dashboard import DashboardConfig, build_dashboard
    from training.data.concept_clips import DataConfig, make_dataset
    from training.musicgen.adherence import prompt_pairs
    from training.musicgen.concepts import concept_files
    from training.musicgen.experiment import ExperimentConfig, run_experiment, trained_seconds

    step = Steps(say)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    model = step("model", lambda: _model(cfg))
    mg = load_musicgen(model)
    if mg.vocab is None:
        raise UserError(f"--model {model}: no descriptions.json; the MusicGen demo needs a description-trained model")
    seconds = cfg.duration or trained_seconds(model, 3.0)
    data = out / "data"
    concepts = tuple(dict.fromkeys((cfg.concept, *cfg.probe)))
    dc = DataConfig(cfg.n, cfg.seed, cfg.clip_seconds or seconds, mg.sample_rate, soundfonts=DEMO_FONTS)
    step("data", lambda: make_dataset(data, dc, jobs=cfg.jobs, concepts=concepts))
    for c in concepts:  # the experiment's own check, with what to change
        try:
            concept_files(data / "concepts" / c)
        except UserError as exc:
            raise UserError(f"--n {cfg.n}: too few clips to find {c!r} ({exc}); raise --n") from None
    data_made()  # (the CLI clears the last run's report here, before the experiment replaces its store and SAEs)
    exp_dir = out / "experiment"
    if exp_dir.exists():  # the last run's store, SAEs and banks: from scratch, as the RAVE demo (its store held
        shutil.rmtree(exp_dir)  # rows of the last run's seed, refused after this run's data had replaced its clips)
    ecfg = ExperimentConfig(
        str(model), str(data), str(exp_dir), steer=(cfg.concept,), probe=concepts, prompts=cfg.prompts,
        prompt_seconds=seconds, sae_steps=cfg.sae_steps, k=cfg.k, expansion=cfg.expansion, pairs=cfg.pairs,
        seeds=cfg.seeds, strengths=cfg.strengths, duration=seconds, folds=5, seed=cfg.seed, edit_rows=cfg.edit_rows,
        device=cfg.device,
    )  # fmt: skip
    exp = step("experiment", lambda: run_experiment(ecfg, say=lambda s: say(f"    {s}")))
    val = exp["steering"][cfg.concept]["validation"]
    layer = val["best_layer"]
    hook = mg.hook_name(layer)
    bank_path = exp_dir / "banks" / f"{hook}.yaml"
    strength = val["layers"][layer]["sae"]["strength_on"]
    rows = val["layers"][layer]["sae"]["edit_rows"]

    def renders() -> dict[str, str]:
        bank = ConceptBank.load(bank_path)
        pair = prompt_pairs(mg.vocab, cfg.concept, 1)[0]
        files = {
            f"{cfg.concept}_prompt_plain.wav": (pair[0], None),
            f"{cfg.concept}_prompt_{cfg.concept}_off.wav": (pair[0], f"{cfg.concept}=off"),
            f"no_{cfg.concept}_prompt_plain.wav": (pair[1], None),
            f"no_{cfg.concept}_prompt_{cfg.concept}_on.wav": (pair[1], f"{cfg.concept}=on:{strength:g}"),
        }
        done = {}
        for name, (prompt, edit) in files.items():
            steering = BankSteering(mg, bank, [parse_set(edit)], rows) if edit else None
            gen = render(mg, [prompt], seconds, cfg.seed, steering)
            write_audio(out / "renders" / name, gen.wav[0].T.float().cpu().numpy(), mg.sample_rate)
            done[name] = f"{prompt!r}" + (f", {edit} at layer {layer} ({rows} guidance rows)" if edit else "")
        return done

    rendered = step("render", renders)

    def map_bank() -> Path:
        """Every concept at every layer (names `<concept>_<layer hook>`), for the dashboard's per-layer map."""
        path = exp_dir / "concepts_by_layer.yaml"
        merged = ConceptBank(path)
        for i in exp["layers"]:
            b = ConceptBank.load(exp_dir / "banks" / f"{mg.hook_name(i)}.yaml")
            for c in b:
                c.name = f"{c.name}_{mg.hook_name(i)}"
                c.sae = merged.relative_sae(b.sae_dir(c))
                merged.add(c)
        merged.save()
        return path

    dash = DashboardConfig(top_n=4, max_pages=16)
    sae_dir, store, clips = exp_dir / "saes" / hook, exp_dir / "store", data / "clips"
    site = step("dashboard", lambda: build_dashboard(sae_dir, store, clips, out / "site", map_bank(), data, dash))
    summary = {
        "model": exp["model"],
        "training": _training_record(model),
        "chosen_layer": layer,
        "strength_on": strength,
        "edit_rows": rows,
        "renders": rendered,
        "dashboard": str(site),
        "experiment": str(exp_dir / "report.md"),
        "timings_s": step.timings,
        "total_s": step.total_s(),
    }
    atomic_write_text(out / "demo.json", strict_json(summary, default=str))
    report = (exp_dir / "report.md").read_text()
    lines = [
        "# musicsae MusicGen demo",
        "",
        f"Model `{model}` ({_training_line(summary['training'])}). Concept `{cfg.concept}` steered at layer {layer} "
        f"(chosen on validation prompts), `on` strength {strength:g}, {rows} guidance rows. Dashboard: `{site}` "
        "(per-layer map: layers.html).",
        "",
        "## Renders",
        "",
        *[f"- `renders/{k}`: {v}" for k, v in rendered.items()],
        "",
        report.replace("# MusicGen concept experiment", "## Experiment"),
        f"Demo total: {summary['total_s']:.0f} s ({', '.join(f'{k} {v}' for k, v in step.timings.items())}).",
        "",
    ]
    atomic_write_text(out / "report.md", "\n".join(lines))
    return summary


def _training_record(model: Path) -> dict:
    """The model folder's training.json ({} when absent), or {"unreadable": True} when damaged: it is read after the
    whole experiment, where a file cut short or edited by hand was a traceback and the report was never written."""
    try:
        return training_record(model) or {}
    except UserError:
        return {"unreadable": True}


def _training_line(rec: dict) -> str:
    if not rec:
        return "no training record: untrained"
    if rec.get("unreadable") is True:
        return "its training.json is unreadable (damaged?)"

    def part(name: str) -> str:
        got = rec.get(name) if isinstance(rec.get(name), dict) else {}
        hours = got.get("cpu_hours")
        hours = f"{hours:.1f}" if isinstance(hours, int | float) and not isinstance(hours, bool) else "?"
        return f"{got.get('step', '?')} steps / {hours} CPU h"

    return f"codec {part('codec')}, LM {part('lm')}"
