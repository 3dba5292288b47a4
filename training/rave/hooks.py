"""Which RAVE hook should an SAE steer? Latent SAE vs inner-layer SAEs vs the raw-latent baseline, side by side.

    musicsae eval hooks --data DATA --model M.ts --out OUT --hooks latent,encoder.net.20,decoder.net.1

For every hook: collect the activations of the SAE clips (the `train` and `test` splits of a `musicsae data
make` folder; the held-out font's clips never reach the SAE), train an SAE with the defaults that fit the
hook's width, find each concept on the train-split folders (probe AUROC beside raw baselines, steering
features by effect), and run the outside judge on the held-out clips (`--split holdout_font` by default when
the data has a held-out soundfont): `off`, `on` and `clamp` over their strength sweeps, every edit acting at
that hook. The raw-latent difference-of-means baseline is judged once, on the same clips.

The hook is chosen on validation clips and reported on test clips: with `--split holdout_font` the in-font
`test` split validates (`--validation-split`, judged into OUT/<hook>/judge/<split>), so the pick is never
made on the clips it is reported on; with `--validation-split none` the pick is made on the reported clips
and the report says so.

Figures carry intervals: probe AUROC with the interval `concept find` reports (Newcombe's score interval
when none is recorded); for drop, rise and drift the difference SAE − baseline on the same clips with a paired
95 % interval (Newcombe's for the drop's and rise's 0/1 outcomes, `sae.stats.paired_diff`; a bootstrap of 2000
resamples of the clips for the worst drift). An SAE edit *beats* the baseline on a measure
when that interval excludes 0 in its favour and the exact sign test on the clips where the two differ agrees
(p < 0.05, `judge.ahead`), where every other concept's drift under that edit lies within 10 points with its
95 % interval (Newcombe's, as the judge's drift goal: 12 clips where nothing moved reach ±24, 24 clips ±14). The
best hook is the one
with the most such wins (ties: the larger mean margin). As in the judge, the `on` / `clamp` strength is
chosen on half of the clips without the concept and reported on the other half.

Each stage is skipped when its output exists (SAE `metrics.json`, bank, `judge.json`), so an interrupted run
resumes; `comparison.json` and `report.md` are rewritten at the end; before/after renders of one held-out
clip per concept land in OUT/<hook>/renders (named for the dashboard's concept pages).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sae.atomic import atomic_write, atomic_write_text, remove_folder_leftovers
from sae.errors import UserError, differences
from sae.jsonfile import measured, strict_json
from sae.stats import auroc_score_interval, paired_diff, sign_test
from sae.store import whole_store
from training.judge import ahead, drift_reach, none_where_on

GOAL_DRIFT = 10.0


@dataclass
class HookCompareConfig:
    """Args:
    data: a `musicsae data make` folder (concept folders, manifest with splits).
    model: streaming RAVE `.ts`.
    out: output folder.
    hooks: hooks to compare (`latent`, `encoder.net.N`, `decoder.net.N`).
    concepts: manifest concepts to find and judge.
    store: an activation store holding every hook already (default: collected into OUT/store).
    split: judged clips (None: `holdout_font` when the data has one, else `test`).
    validation_split: clips the hook is chosen on (None: `test` when `split` is `holdout_font`; "none": the
        reported clips themselves).
    sae_steps: SAE training steps per hook (batch 1024, defaults k = d_in/4, d_sae = 8 d_in, decoder rows
        started at sample rows, 20 % of the store held out for the metrics).
    strengths, clamp_strengths: `on` and `clamp` sweeps.
    max_clips: held-out clips per side and concept each figure is on (0: all; `training.rave.judge.EvalConfig`).
    steer_threshold: share of the concept's mean difference a feature must carry to be steered
        (`concept find --steer-threshold`).
    seed: SAE seed, judge noise seeds, bootstrap seed.
    device: torch device for RAVE and the SAEs.
    spare: each concept spares the concepts found before it (order of `concepts`; `concept find --spare`): its
        edits leave their steering features alone.
    alone: each concept with a folder of clips of it alone in the data (`concepts/<c>/alone`, `data make`) gets
        its detector of playing alone at each hook (`concept find --alone`): `off` silences a solo; the
        baseline's `off` gets the same silence.
    watch: manifest concepts judged for the drift only (`eval steering --watch`). A concept judged with no other
        has no drift measured, and then no win counts (a win needs drift <= 10).
    """

    data: str
    model: str
    out: str
    hooks: tuple[str, ...] = ("latent", "decoder.net.1")
    concepts: tuple[str, ...] = ("guitar", "drums", "piano")
    store: str | None = None
    split: str | None = None
    sae_steps: int = 1500
    strengths: tuple[float, ...] = (2.0, 8.0)
    clamp_strengths: tuple[float, ...] = (2.0, 4.0)
    max_clips: int = 12
    steer_threshold: float = 0.02
    seed: int = 0
    validation_split: str | None = None
    device: str = "cpu"
    spare: bool = False
    alone: bool = True
    watch: tuple[str, ...] = ()


def _interval(found: dict | None, a: float, n_pos: int, n_neg: int) -> tuple[float, float]:
    """The interval `concept find` recorded, else Newcombe's score interval (`sae.stats.auroc_score_interval`)."""
    if found and "lo" in found and "hi" in found:
        return float(found["lo"]), float(found["hi"])
    return auroc_score_interval(a, n_pos, n_neg)


def _best(sweep: list[dict]) -> dict:
    within = [e for e in sweep if e["max_drift"] <= GOAL_DRIFT] or sweep
    return max(within, key=lambda e: e["rise"])


def arm_numbers(entry: dict, arm: dict, name: str, sweep_key: str | None = None) -> dict[str, Any]:
    """Per-clip outcomes of one arm on the concept's held-out clips, in points: `drop` (no edit − off, on the
    clips with it), `rise` (on − no edit, on the clips without it, at the arm's best strength) and the change
    of every other concept under that `on` (`drift_on`); `did`: per edit, 1 on each clip where it worked (the
    concept gone after `off`, heard after `on`); `reach`: per edit, the farthest end from 0 of the other concepts'
    drift intervals (Newcombe's, `training.judge.drift_reach`), which a win needs within the drift goal.

    Args:
        entry: the judge's entry for the concept (its `per_clip` holds the no-edit detections).
        arm: `entry` itself (the SAE edit) or `entry["baseline"]`.
        sweep_key: None for `on`, "clamp" for the clamp sweep (its `off` is the SAE's).
    """
    pc = entry["per_clip"]
    off_with = (arm.get("per_clip") or pc)["off_with"][name]
    sub = arm if sweep_key is None else arm[sweep_key]
    on = sub["per_clip_on"] if "per_clip_on" in sub else _best(sub["sweep"])["per_clip"]
    n_all = len(pc["none_without"][name])
    # the judge reports `on` on the test half of the clips without the concept (the other half chose the
    # strength), or on all of them when there was nothing to choose
    pick = slice(None) if len(on[name]) == n_all else slice(1, None, 2)

    def none(o: str) -> np.ndarray:
        return np.array(pc["none_without"][o], float)[pick]

    offs = (arm.get("per_clip") or pc)["off_with"]
    off_iv = {
        o: paired_diff(np.array(pc["none_with"][o], float), np.array(offs[o], float)).as_dict()
        for o in offs
        if o != name
    }
    on_iv = {o: paired_diff(none(o), np.array(on[o], float)).as_dict() for o in on if o != name}
    return {
        "drop": 100.0 * (np.array(pc["none_with"][name], float) - np.array(off_with, float)),
        "rise": 100.0 * (np.array(on[name], float) - none(name)),
        "drift_on": {o: 100.0 * (np.array(on[o], float) - none(o)) for o in on if o != name},
        "did": {"drop": 1.0 - np.array(off_with, float), "rise": np.array(on[name], float)},  # 1: the edit worked
        "reach": {"off": drift_reach(off_iv), "on": drift_reach(on_iv)},
        "strength": sub["strength_on"] if "strength_on" in sub else _best(sub["sweep"])["strength"],
    }


def compare_arms(sae: dict, base: dict, seed: int) -> dict[str, Any]:
    """SAE − baseline per measure, paired clip by clip: drop and rise with Newcombe's interval of the two arms'
    success rates (`sae.stats.paired_diff`, as `training.judge.baseline_vs_sae`); the drift as each arm's worst
    other concept's (each its own), with a paired bootstrap of the two worst absolute rates and the sign test on the
    clips where only one arm moved its worst concept.
    Raises UserError when the two arms were judged on different clips (judges made with other settings)."""
    res: dict[str, Any] = {}
    for key in ("drop", "rise"):
        if key in sae and key in base and len(sae[key]) != len(base[key]):
            raise UserError(
                f"the SAE edit's {key} was judged on {len(sae[key])} clips and the baseline's on {len(base[key])}: "
                "judges made with other settings (--max-clips, --strength); delete the older judge folder and rerun"
            )
    for key in ("drop", "rise"):
        if key in sae and key in base:
            diff = sae[key] - base[key]
            iv = paired_diff(base["did"][key], sae["did"][key])  # a bootstrap had no width where every clip moved
            lo, hi = iv.lo, iv.hi
            # led as the judge's own comparison leads (`training.judge.baseline_vs_sae`): on the interval alone 4
            # clips to none made a lead here and a tie there
            p = sign_test(int((diff > 0).sum()), int((diff < 0).sum()))
            lead = ahead(lo, hi, p)
            res[key] = {"sae": float(sae[key].mean()), "baseline": float(base[key].mean()), "diff": float(diff.mean())}
            res[key] |= {"interval": [lo, hi], "sign_test_p": p, "beats": lead == "SAE", "loses": lead == "baseline"}
    if sae["drift_on"]:
        # each arm's own most-moved other concept (the baseline's may be another than the SAE's), its |drift|
        # bootstrapped as the worst over every concept of the same resampled clips
        sae_worst, base_worst = _worst(sae["drift_on"]), _worst(base["drift_on"])
        rng = np.random.default_rng(seed)
        n = len(sae["drift_on"][sae_worst])
        idx = rng.integers(0, n, (2000, n))
        boot = _worst_rate(sae["drift_on"], idx) - _worst_rate(base["drift_on"], idx)
        lo, hi = float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
        # the sign test on the clips where only one arm moved its most-moved concept, as drop and rise have it
        s_moved = sae["drift_on"][sae_worst] != 0
        b_moved = base["drift_on"][base_worst] != 0 if base_worst is not None else np.zeros(n, bool)
        p = sign_test(int((~s_moved & b_moved).sum()), int((s_moved & ~b_moved).sum()))
        lead = ahead(-hi, -lo, p)  # less drift leads
        d_sae = float(abs(sae["drift_on"][sae_worst].mean()))
        d_base = float(abs(base["drift_on"][base_worst].mean())) if base_worst is not None else 0.0
        res["drift"] = {
            "concept": sae_worst,
            "baseline_concept": base_worst,
            "sae": d_sae,
            "baseline": d_base,
            "diff": d_sae - d_base,
            "interval": [lo, hi],
            "sign_test_p": p,
            "beats": lead == "SAE",
            "loses": lead == "baseline",
        }
    return res


def _worst(drift_on: dict[str, np.ndarray]) -> str | None:
    """The other concept an edit moved most (largest |mean change|), or None where none was judged."""
    return max(drift_on, key=lambda o: abs(drift_on[o].mean()), default=None)


def _worst_rate(drift_on: dict[str, np.ndarray], idx: np.ndarray) -> np.ndarray:
    """Per row of clip indices `idx` [R, n], the largest |mean change| over every other concept (0 with none)."""
    if not drift_on:
        return np.zeros(len(idx))
    return np.max([np.abs(v[idx].mean(-1)) for v in drift_on.values()], axis=0)


SETTINGS_FILE = "settings.json"
PER_HOOK_FREE = ("out", "hooks", "device")
"""What may change between runs into one --out: where it is, which hooks (each has its own stages), where it runs."""
PATH_SETTINGS = ("data", "model", "store")
"""Settings that name a file or folder: the same one however it is spelled (`data`, `./data`, `/work/data`)."""
PLACES = "relative to out"
"""settings.json's `places`: its `PATH_SETTINGS` are written relative to the --out folder, and resolved under
`resolved` (before: as given)."""


def _places(settings: dict[str, Any], out: str) -> tuple[dict[str, Any], dict[str, str]]:
    """`settings` as the command line gives them (from this working directory) with each of `PATH_SETTINGS`
    relative to the --out folder `out`, and those places resolved."""
    base = Path(out).resolve()
    resolved = {k: str(Path(v).resolve()) for k, v in settings.items() if k in PATH_SETTINGS and isinstance(v, str)}
    return {**settings, **{k: os.path.relpath(v, base) for k, v in resolved.items()}}, resolved


def _stored_places(old: dict[str, Any], out: str) -> tuple[dict[str, Any], dict[str, str]]:
    """`_places` of a settings.json: written so (`places`), else as given (read from this working directory)."""
    if old.get("places") != PLACES:
        return _places({k: v for k, v in old.items() if k not in ("places", "resolved")}, out)
    resolved = old.get("resolved") if isinstance(old.get("resolved"), dict) else {}
    return {k: v for k, v in old.items() if k not in ("places", "resolved")}, resolved


def same_settings(cfg: HookCompareConfig) -> None:
    """A run resumed into `cfg.out` reuses every finished stage: one made with other settings is refused, naming
    them (the rerun rewrote the report with the new settings over the old figures). The first run records them.
    A file or folder is the same one where its place relative to --out is (a project moved whole: data, model and
    runs) or its resolved place is (--out moved alone, beside shared data and models): spelled `./data` or given from
    another working directory, it was "other settings" (hunts 214, 215, 218)."""
    path = Path(cfg.out) / SETTINGS_FILE
    recorded: Any = None
    now, resolved = _places({k: v for k, v in json.loads(json.dumps(asdict(cfg))).items() if k not in PER_HOOK_FREE},
                            cfg.out)  # fmt: skip
    if path.exists():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            recorded = None
        if not isinstance(recorded, dict):
            raise UserError(f"{path}: not readable; remove it and the stages beside it, or use another --out")
        old, was = _stored_places(recorded, cfg.out)
        old = {**old, **{k: now[k] for k, v in was.items() if k in now and resolved.get(k) == v}}  # the same place
        if old != now:
            said = differences(old, now, "stored")
            said += "; places relative to --out" if any(old.get(k) != now.get(k) for k in PATH_SETTINGS) else ""
            raise UserError(
                f"--out {cfg.out}: its stages were made with other settings ({said}); rerun with those or use another "
                "--out"
            )
    record = {**now, "places": PLACES, "resolved": resolved}
    if record != recorded:  # a new run (or one of before settings were recorded: taken as made with these), or the
        atomic_write_text(path, json.dumps(record, indent=1))  # same files in their places now


def clips_in_store(store: Any, hooks: Sequence[str], data: Path, rows: list[dict], splits: set[str]) -> list[str]:
    """The clips of `splits` (manifest rows of `data`) that `store` collected for any of `hooks`: the same bytes as a
    file it recorded (its origins), or the same file, followed through links, under the folder it collected
    (recorded in store.json; stores of before origins), not one of the same name. Matched by path alone, a project
    moved elsewhere matched none (hunt 214). Empty where the store says neither."""
    from sae.bank import file_sha256

    if not splits:
        return []
    hooks = [h for h in hooks if h in store.hooks]
    judged = {(data / r["file"]).resolve(): r["file"] for r in rows if r["split"] in splits}
    origins = [o for h in hooks for o in store.manifest(h).get("origins", {}).values()]
    sizes, digests = {o["bytes"] for o in origins}, {o["sha256"] for o in origins}
    found = {f for p, f in judged.items() if p.is_file() and p.stat().st_size in sizes and file_sha256(p) in digests}
    if root := ((store.info.get("collect") or {}).get("rave") or {}).get("audio"):
        sources = set().union(*(store.sources(h) for h in hooks))
        found |= {judged[p] for s in sources if (p := (Path(root) / s).resolve()) in judged}
    return sorted(found)


def run_hook_compare(cfg: HookCompareConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every stage for every hook (skipping finished ones), then the side-by-side comparison."""
    from realtime.rave import RaveModel
    from realtime.rave_split import hook_shape
    from sae.store import ActivationStore
    from sae.train import TrainConfig, train_hook
    from training.data.concept_clips import link_trainable_clips, read_manifest
    from training.rave.alone import alone_folder
    from training.rave.collect import RaveCollectConfig, collect_rave
    from training.rave.concepts import FindConfig, find_concept
    from training.rave.judge import EvalConfig, evaluate_steering

    t0 = time.perf_counter()
    data, out = Path(cfg.data), Path(cfg.out)
    rows = read_manifest(data)
    split = cfg.split or ("holdout_font" if any(r["split"] == "holdout_font" for r in rows) else "test")
    model = RaveModel.load(cfg.model, cfg.device)
    for hook in cfg.hooks:
        hook_shape(model, hook)  # an unknown hook: one line listing the model's hooks, before any work
    validation = cfg.validation_split or ("test" if split == "holdout_font" else "none")
    if validation == split:
        raise UserError(f"validation split {validation!r}: expected another split than the reported {split!r}")
    if validation != "none" and not any(r["split"] == validation for r in rows):
        raise UserError(f"data {data}: no clips in the validation split {validation!r}")
    for name in cfg.concepts:
        if not (data / "concepts" / name / "with").is_dir():
            raise UserError(f"data {data}: no concepts/{name}/with folder (make the data with --concepts {name})")
    if cfg.store:  # another model's rows would train SAEs that no concept of this model can use: found out last
        held = ActivationStore(cfg.store).info.get("model") or {}
        if held.get("sha256") not in (None, model.identity.sha256):
            raise UserError(
                f"--store {cfg.store}: holds activations of {held.get('name', '?')} ({str(held['sha256'])[:12]}), "
                f"not {model.path.name} ({model.identity.sha256[:12]}); collect with this model or leave --store out"
            )
        judged = {split, validation} & {"holdout_font"}
        if leaked := clips_in_store(ActivationStore(cfg.store), cfg.hooks, data, rows, judged):
            raise UserError(
                f"--store {cfg.store}: holds {len(leaked)} clip(s) of the held-out font the report is judged on "
                f"(first: {leaked[0]}), which would train the SAE; collect the train and test clips only, or leave "
                "--store out"
            )
    if split == "holdout_font" and not any(r["split"] == split for r in rows):
        raise UserError(f"data {data}: no clips in the holdout_font split (make the data with --holdout-font FONT)")
    out.mkdir(parents=True, exist_ok=True)
    for folder in [out, *(d for d in out.rglob("*") if d.is_dir() and not d.is_symlink())]:
        remove_folder_leftovers(folder)  # what a run killed mid-write left (the caller holds --out)
    same_settings(cfg)
    store_dir = Path(cfg.store) if cfg.store else out / "store"
    if cfg.store is None:
        clips = out / "sae_clips"
        linked = link_trainable_clips(data, rows, clips)
        say(f"collect {', '.join(cfg.hooks)} from {linked} clips (train + test splits)")
        with whole_store(store_dir) as into:
            collect_rave(
                RaveCollectConfig(cfg.model, str(clips), str(into), layers=tuple(cfg.hooks), device=cfg.device)
            )
    store = ActivationStore(store_dir)
    results: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    baseline_done: dict[str, set[str]] = {split: set(), validation: set()}
    judges: dict = {}  # one judge per concept set, trained once for every hook and split
    for hook in cfg.hooks:
        hook_dir = out / hook
        sae_dir = hook_dir / "sae"
        if not (sae_dir / "metrics.json").exists():
            say(f"{hook}: train the SAE ({cfg.sae_steps} steps)")
            if sae_dir.exists():
                shutil.rmtree(sae_dir)
            train_hook(
                store,
                hook,
                sae_dir,
                TrainConfig(
                    steps=cfg.sae_steps,
                    batch_size=1024,
                    seed=cfg.seed,
                    checkpoint_every=0,
                    log_every=50,
                    eval_fraction=0.2,
                    decoder_init="data",
                    device=cfg.device,
                ),
            )
        metrics = json.loads((sae_dir / "metrics.json").read_text())
        bank = hook_dir / "concepts.yaml"
        find_json = hook_dir / "find.json"
        if not find_json.exists():
            tmp = hook_dir / "concepts.partial.yaml"
            tmp.unlink(missing_ok=True)
            found: dict[str, Any] = {}
            for name in cfg.concepts:
                say(f"{hook}: find {name}")
                try:
                    res = find_concept(
                        FindConfig(
                            name,
                            str(data / "concepts" / name / "with"),
                            str(data / "concepts" / name / "without"),
                            cfg.model,
                            str(sae_dir),
                            str(tmp),
                            seed=cfg.seed,
                            hook=hook,
                            steer_threshold=cfg.steer_threshold,
                            spare=tuple(n for n in found if "not_found" not in found[n]) if cfg.spare else (),
                            device=cfg.device,
                            alone_dir=alone_folder(data / "concepts" / name / "alone") if cfg.alone else None,
                        )
                    )
                    found[name] = {
                        "n_with": res.report.n_with,
                        "n_without": res.report.n_without,
                        "intervals": res.report.intervals,
                        "verdict": res.report.verdict,
                        "notes": res.notes,
                    }
                except UserError as exc:  # recorded; the other concepts and hooks carry on
                    found[name] = {"not_found": str(exc)}
                    say(f"    not found: {exc}")
            if tmp.exists():
                os.replace(tmp, bank)
            atomic_write_text(find_json, json.dumps(found, indent=1))
        found = json.loads(find_json.read_text())
        names = [n for n in cfg.concepts if "not_found" not in found.get(n, {"not_found": ""})]
        judged: dict[str, Any] = {"concepts": {}}
        sae_cell = {k: metrics.get(k) for k in ("fvu", "l0", "dead_fraction", "k", "d_sae", "d_in")}
        checks[hook] = {"sae": sae_cell, "found": found, "bank": str(bank), "judge": {"concepts": {}}}
        for on_split, judge_dir in ((split, hook_dir / "judge"), (validation, hook_dir / "judge" / validation)):
            if on_split == "none":
                continue
            if names and not (judge_dir / "judge.json").exists():
                need = tuple(n for n in names if n not in baseline_done[on_split])
                say(
                    f"{hook}: judge on the {on_split} clips"
                    + (f" (and the baseline for {', '.join(need)})" if need else "")
                )
                evaluate_steering(
                    EvalConfig(
                        str(data),
                        cfg.model,
                        str(bank),
                        str(judge_dir),
                        tuple(names),
                        tuple(cfg.strengths),
                        cfg.max_clips,
                        seed=cfg.seed,
                        baseline=bool(need),
                        baseline_for=need,
                        clamp_strengths=tuple(cfg.clamp_strengths),
                        split=on_split,
                        device=cfg.device,
                        watch=cfg.watch,
                    ),
                    say,
                    judges,
                )
            got = json.loads((judge_dir / "judge.json").read_text()) if names else {"concepts": {}}
            baseline_done[on_split] |= {n for n, e in got["concepts"].items() if "baseline" in e}
            if on_split == split:
                judged = got
            else:
                checks[hook]["judge"] = got
        results[hook] = {
            "sae": sae_cell,
            "bank": str(bank),
            "found": found,
            "judge": judged,
        }
    render_examples(cfg, results, split, rows, say)
    summary = summarize(cfg, results, split)
    choose_on_validation(summary, summarize(cfg, checks, validation) if validation != "none" else None)
    summary["seconds"] = round(time.perf_counter() - t0, 1)
    summary["config"] = asdict(cfg)
    atomic_write_text(out / "comparison.json", strict_json(summary, indent=1))
    atomic_write_text(out / "report.md", report_markdown(summary))
    return summary


def render_examples(
    cfg: HookCompareConfig, results: dict[str, Any], split: str, rows: list[dict], say: Callable[[str], None]
) -> None:
    """Before/after audio of one judged clip with and one without each concept, per hook (the SAE's off, on
    and clamp at the judge's strengths) and for the baseline, in OUT/<hook>/renders and OUT/baseline/renders
    (file names the dashboard's concept pages pick up). Files already there are kept."""
    import torch

    from realtime.audio_files import write_audio
    from realtime.audio_io import read_audio
    from realtime.rave import RaveModel
    from realtime.render_rave import RaveStream, load_steering, model_delay, render_array
    from sae.steering import Gate
    from training.data.concept_clips import CONCEPTS
    from training.rave.judge import latent_mean

    data, out = Path(cfg.data), Path(cfg.out)
    model = RaveModel.load(cfg.model, cfg.device)
    stream = RaveStream(model)
    delay: int | None = None
    directions: dict[str, torch.Tensor] = {}
    for name in cfg.concepts:
        held = [r for r in rows if r["split"] == split]
        with_c = next((r for r in held if CONCEPTS[name](r)), None)
        without_c = next((r for r in held if not CONCEPTS[name](r)), None)
        if with_c is None or without_c is None:
            continue
        clips = {
            k: read_audio(data / r["file"], model.sr, 1)[:, 0] for k, r in (("with", with_c), ("without", without_c))
        }
        rendered = False  # a concept found at no hook has no renders to name
        for hook in [*cfg.hooks, "baseline"]:
            if hook == "baseline":
                entry = next(
                    (
                        r["judge"]["concepts"][name]
                        for r in results.values()
                        if "baseline" in r["judge"]["concepts"].get(name, {})
                    ),
                    None,
                )
                if entry is None:
                    continue
                base = entry["baseline"]
                if name not in directions:
                    if "direction" in base:
                        directions[name] = torch.tensor(base["direction"])
                    else:  # an older judge.json: the same difference of means, from the train clips
                        train = [r for r in rows if r["split"] == "train"]
                        means = torch.stack(
                            [latent_mean(stream, read_audio(data / r["file"], model.sr, 1)[:, 0]) for r in train]
                        )
                        has = torch.tensor([bool(CONCEPTS[name](r)) for r in train])
                        directions[name] = means[has].mean(0) - means[~has].mean(0)
                d = directions[name]
                plan = {
                    f"{name}_clip_{name}_off_baseline.wav": ("with", None, -d),
                    f"no_{name}_clip_{name}_on_baseline.wav": ("without", None, base["strength_on"] * d),
                }
                sae = edit_of = None
            else:
                entry = results[hook]["judge"]["concepts"].get(name)
                if entry is None:
                    continue
                steering = load_steering(results[hook]["bank"], model, names=[name])
                sae, edit_of = steering.sae, steering.edit_for
                plan = {
                    f"{name}_clip_original.wav": ("with", "copy", None),
                    f"{name}_clip_plain.wav": ("with", [], None),
                    f"{name}_clip_{name}_off.wav": ("with", [(name, "off")], None),
                    f"no_{name}_clip_original.wav": ("without", "copy", None),
                    f"no_{name}_clip_{name}_on.wav": ("without", [(name, f"on:{entry['strength_on']:g}")], None),
                }
                if "clamp" in entry:
                    plan[f"no_{name}_clip_{name}_clamp.wav"] = (
                        "without",
                        [(name, f"clamp:{entry['clamp']['strength_on']:g}")],
                        None,
                    )
            folder = out / hook / "renders"
            folder.mkdir(parents=True, exist_ok=True)
            rendered = True
            for file, (side, sets, shift) in plan.items():
                if (folder / file).exists():
                    continue
                if sets == "copy":
                    source = data / (with_c if side == "with" else without_c)["file"]
                    atomic_write(folder / file, lambda tmp, source=source: shutil.copyfile(source, tmp))
                    continue
                delay = model_delay(model) if delay is None else delay
                edit = edit_of(sets) if sets else None
                hook_at = steering.hook if sets and hook != "baseline" else "latent"
                y = render_array(  # gated as the judge's renders are (ungated, an `off` made sound of silence)
                    stream, clips[side], sae, edit, None, delay, cfg.seed, shift=shift, hook=hook_at, gate=Gate()
                )
                write_audio(folder / file, y, model.sr)
        if rendered:
            say(f"renders of {name}: {with_c['file']} and {without_c['file']}")


def win_labels(name: str, arm: str, beaten: list[str]) -> list[str]:
    """What an arm (`on` or `clamp`) won, named by the edit that did it: a drop is `off`'s, whichever arm it was
    compared under ("drums off: drop", "guitar clamp: rise, drift")."""
    out = [f"{name} off: drop"] if "drop" in beaten else []
    rest = [m for m in beaten if m != "drop"]
    return out + ([f"{name} {arm}: {', '.join(rest)}"] if rest else [])


def summarize(cfg: HookCompareConfig, results: dict[str, Any], split: str) -> dict[str, Any]:
    """Per concept and hook: AUROCs with intervals, SAE arms vs the baseline; the pick and its reason."""
    from sae.bank import ConceptBank

    table: dict[str, dict[str, Any]] = {}
    wins: dict[str, list[str]] = {h: [] for h in cfg.hooks}
    margins: dict[str, list[float]] = {h: [] for h in cfg.hooks}
    held_back: dict[str, dict[str, str]] = {h: {} for h in cfg.hooks}  # concept → why its beating is no win
    model = next((r["judge"]["model"] for r in results.values() if "model" in r["judge"]), {"name": cfg.model})
    for name in cfg.concepts:
        judged = [r["judge"]["concepts"][name] for r in results.values() if name in r["judge"]["concepts"]]
        with_base = [e for e in judged if "baseline" in e]
        if not with_base:
            table[name] = {"not_found": {h: results[h]["found"].get(name, {}).get("not_found") for h in cfg.hooks}}
            continue
        base_entry = with_base[0]
        base = arm_numbers(base_entry, base_entry["baseline"], name)
        row: dict[str, Any] = {
            "baseline": {
                "drop": float(base["drop"].mean()),
                "rise": float(base["rise"].mean()),
                "strength_on": base["strength"],
                "max_drift": float(base_entry["baseline"]["max_drift"]),  # off's and the reported on's, as the SAE's
                "none_on": none_where_on(base_entry),  # the plain rate on the clips the rises are reported on
                "held_out": [base_entry["held_out_with"], base_entry["held_out_without"]],
                "none": base_entry["none"],
                "clean": base_entry.get("clean"),
                "alone": base_entry["baseline"].get("alone", "none"),
            }
        }
        for hook in cfg.hooks:
            if name not in results[hook]["judge"]["concepts"]:
                row[hook] = {"not_found": results[hook]["found"].get(name, {}).get("not_found", "not judged")}
                continue
            entry = results[hook]["judge"]["concepts"][name]
            concept = ConceptBank.load(results[hook]["bank"]).get(name)
            counts = results[hook]["found"].get(name, {})
            npw, npo = counts.get("n_with", entry["held_out_with"]), counts.get("n_without", entry["held_out_without"])
            cell: dict[str, Any] = {
                "auroc": {
                    k: [v, *_interval(counts.get("intervals", {}).get(k), v, npw, npo)]
                    for k, v in concept.auroc.items()
                },
                "probe_verdict": counts.get("verdict"),
                "steer_features": len(concept.steer.features) if concept.steer else len(concept.features),
                # the probe's features where none carried --steer-threshold (or it is 0): said, not shown as a choice
                "steered": "by effect" if concept.steer else "the probe's",
                "off_left": concept.steer.off_left if concept.steer else None,
                "error_share": concept.steer.error_share if concept.steer else None,
                "alone": concept.alone is not None,
            }
            for label, key in (("on", None), ("clamp", "clamp")):
                if key is not None and key not in entry:
                    continue
                sae = arm_numbers(entry, entry, name, key)
                cmp = compare_arms(sae, base, cfg.seed)
                on_drift = max((abs(v.mean()) for v in sae["drift_on"].values()), default=0.0)
                drift_off = entry["drift"]["off"]
                worst_off = max(drift_off, key=lambda o: abs(drift_off[o]), default=None)
                off_drift = abs(drift_off[worst_off]) if worst_off is not None else 0.0
                cmp["on_drift"], cmp["off_drift"] = float(on_drift), float(off_drift)
                cmp["off_worst"] = worst_off
                cmp["off_moved"] = entry.get("off_moved", {}).get(worst_off)  # where that drift is (judge.json)
                cmp["max_drift"] = float(max(on_drift, off_drift))
                cmp["off_reach"], cmp["on_reach"] = sae["reach"]["off"], sae["reach"]["on"]
                cmp["off_clips"], cmp["on_clips"] = len(sae["drop"]), len(sae["rise"])
                cmp["drift_measured"] = measured = entry.get("drift_measured", True)
                cmp["strength"] = sae["strength"]
                # a win counts at the drift of the edit it measures (`off` for drop, `on` / `clamp` for the rest),
                # as the judge's drift goal does: where its 95 % intervals lie within the goal, not its point alone
                within = {  # an unmeasured drift (no other concept judged) is not within the goal
                    "drop": measured and cmp["off_reach"] <= GOAL_DRIFT,
                    "rise": measured and cmp["on_reach"] <= GOAL_DRIFT,
                    "drift": measured and cmp["on_reach"] <= GOAL_DRIFT,
                }
                beaten = [m for m in ("drop", "rise", "drift") if cmp.get(m, {}).get("beats") and within[m]]
                cmp["beats"] = beaten
                cell[label] = cmp
                if {"drop", "rise"} & set(beaten):  # less drift alone is no win: an edit that does nothing has none
                    wins[hook] += [w for w in win_labels(name, label, beaten) if w not in wins[hook]]
                elif beat := [m for m in ("drop", "rise") if cmp.get(m, {}).get("beats")]:
                    edit = "off" if beat[0] == "drop" else "on"
                    drift, reach = cmp[f"{edit}_drift"], cmp[f"{edit}_reach"]
                    held_back[hook].setdefault(name, (
                        "no drift measured: no other concept judged, --watch adds some" if not measured
                        else f"its drift {drift:.0f} > {GOAL_DRIFT:g}" if drift > GOAL_DRIFT
                        else f"its drift interval reaches {reach:.0f} > {GOAL_DRIFT:g}: more clips narrow it"
                    ))  # fmt: skip
                margins[hook].append(sum(cmp[m]["diff"] for m in ("drop", "rise") if m in cmp))
            row[hook] = cell
        table[name] = row
    concepts_won = {h: len({w.split()[0] for w in wins[h]}) for h in cfg.hooks}
    pick = max(cfg.hooks, key=lambda h: (concepts_won[h], float(np.mean(margins[h] or [-1e9]))))
    margin = f"mean margin on drop + rise {np.mean(margins[pick] or [0.0]):+.0f} points"
    reason = (
        f"{pick}: its SAE edit beats the raw-latent baseline beyond the 95 % interval and the sign test for "
        f"{concepts_won[pick]} concept(s) at drift <= {GOAL_DRIFT:g} with its interval ({'; '.join(wins[pick])}); "
        f"{margin}"
        if concepts_won[pick]
        else f"{pick}: no hook's SAE edit beats the raw-latent baseline for any concept; {pick} has the best {margin}"
    )
    held = [f"{h} {c} ({why})" for h in cfg.hooks for c, why in sorted(held_back[h].items())]
    if not concepts_won[pick] and held:  # hunt 184: "no SAE edit beats" beside a ✓ in the table
        reason = (
            f"{pick}: no hook's SAE edit wins within the drift goal; it beats the raw-latent baseline beyond the 95 % "
            f"interval and the sign test, held back by drift, at {'; '.join(held)}; {pick} has the best {margin}"
        )
    if not any(margins.values()):  # not one concept judged at any hook: no margin to pick by
        pick, reason = None, "no concept was found at any hook, so none was judged: no hook is picked"
    return {
        "model": model,
        "split": split,
        "hooks": {h: results[h]["sae"] for h in cfg.hooks},
        "concepts": table,
        "wins": wins,
        "concepts_won": concepts_won,
        "pick": pick,
        "pick_here": pick,
        "margins": {h: float(np.mean(margins[h])) if margins[h] else None for h in cfg.hooks},
        "reason": reason,
        "goal_met": pick is not None and concepts_won[pick] >= 2,
    }


def choose_on_validation(summary: dict[str, Any], chosen: dict[str, Any] | None) -> dict[str, Any]:
    """The hook picked on the validation summary `chosen` (None: on the reported clips themselves), the goal
    judged for that hook on the reported clips, and, when it is not met, what stopped each concept."""
    if summary["pick"] is None and (chosen is None or chosen["pick"] is None):  # nothing judged anywhere
        summary |= {"pick": None, "pick_on": None, "goal_met": False, "why_not": []}
        return summary
    if chosen is not None:
        keep = ("split", "wins", "concepts_won", "pick", "reason", "margins", "concepts")
        summary["validation"] = {k: chosen[k] for k in keep}
        summary["pick"] = chosen["pick"]
        summary["reason"] = f"chosen on the {chosen['split']} clips: {chosen['reason']}"
    else:  # no validation split: the clips the hook is picked on are the ones it is reported on, said so
        said = f"chosen on the {summary['split']} clips it is reported on (no validation split)"
        summary["reason"] = f"{said}: {summary['reason']}"
    summary["pick_on"] = chosen["split"] if chosen is not None else summary["split"]
    summary["goal_met"] = summary["pick"] is not None and summary["concepts_won"][summary["pick"]] >= 2
    summary["why_not"] = [] if summary["goal_met"] else why_not(summary)
    return summary


def why_not(s: dict[str, Any]) -> list[str]:
    """Per concept and measure, the SAE arm closest to a win and what stopped it: its drift above the goal,
    the baseline already at the ceiling of any edit (how often the judge hears the concept in the model's
    plain reconstructions), nothing to beat (the baseline's drift is 0), or an interval that includes 0."""
    lines = []
    for name, row in s["concepts"].items():
        if "baseline" not in row:
            lines.append(f"{name}: not found on any hook")
            continue
        b = row["baseline"]
        ceiling = {"drop": b["none"]["with"], "rise": 100.0 - b.get("none_on", b["none"]["without"])}
        parts = []
        for m in ("drop", "rise", "drift"):
            best = None
            for hook, cell in row.items():
                if hook == "baseline" or "not_found" in cell:
                    continue
                for arm in ("on", "clamp") if m != "drop" else ("on",):  # both arms share one `off`
                    c = cell.get(arm)
                    if c and m in c:
                        score = (
                            (c[m]["interval"][0], c[m]["diff"])
                            if m != "drift"
                            else (-c[m]["interval"][1], -c[m]["diff"])
                        )
                        if best is None or score > best[0]:
                            best = (score, hook, "off" if m == "drop" else arm, c)
            if best is None:
                continue
            _, hook, arm, c = best
            x, drift = c[m], c["off_drift"] if m == "drop" else c["on_drift"]
            lo, hi = x["interval"]
            head = f"{m}: {hook} {arm} {x['sae']:+.0f} vs baseline {x['baseline']:+.0f} (Δ [{lo:+.0f}, {hi:+.0f}])"
            if x["beats"] and not c.get("drift_measured", True):
                why = (
                    "a win beyond the interval, but no drift was measured (no other concept judged: --watch adds some)"
                )
            elif x["beats"] and drift > GOAL_DRIFT:
                why = f"a win, but its drift is {drift:.0f} > {GOAL_DRIFT:g}" + (
                    where_off_drifts(name, c) if m == "drop" else ""
                )
            elif x["beats"] and (reach := c.get("off_reach" if m == "drop" else "on_reach", 0.0)) > GOAL_DRIFT:
                n = c.get("off_clips" if m == "drop" else "on_clips")
                why = (f"a win, but its drift of {drift:.0f}, with its 95 % intervals, reaches ±{reach:.0f} at {n} "
                       f"clips: too few to show a drift within {GOAL_DRIFT:g}")  # fmt: skip
            elif x["beats"]:
                why = "a win"
            elif m in ceiling and x["baseline"] >= ceiling[m] - 0.5:
                why = f"the baseline already reaches the ceiling of any edit ({ceiling[m]:+.0f})"
            elif m == "drift" and x["baseline"] < 0.5:
                why = "the baseline does not drift: nothing to beat"
            elif x["loses"]:
                why = "the baseline is better beyond the interval"
            elif lo > 0 or hi < 0:  # `judge.ahead`: the sign test on the clips where they differ must agree
                who = "the SAE" if lo > 0 else "the baseline"
                why = (f"{who} is ahead beyond the interval, but not by the sign test on the clips where they differ "
                       f"(p {x.get('sign_test_p', 1.0):.2f} ≥ 0.05)")  # fmt: skip
            else:
                why = "the interval includes 0"
            if m in ceiling:
                head += f", ceiling {ceiling[m]:+.0f}"
            parts.append(f"{head}: {why}")
        lines.append(f"{name}: " + "; ".join(parts))
    return lines


def where_off_drifts(name: str, c: dict[str, Any]) -> str:
    """` (guitar moved on 6 of 24 clips, 6 of them drums solos)`: the clips behind an `off`'s drift, when known."""
    moved = c.get("off_moved")
    if not moved:
        return ""
    return (
        f" ({c['off_worst']} moved on {moved['moved']} of {moved['clips']} clips, {moved['solos']} of them "
        f"{name} solos)"
    )


def _iv(x: list[float]) -> str:
    return f"{x[0]:.2f} [{x[1]:.2f}, {x[2]:.2f}]"


def _reach(c: dict, edit: str) -> str:
    """`, ±24`: how far the edit's drift intervals reach (a win needs it within the goal), where recorded."""
    reach = c.get(f"{edit}_reach")
    return f", ±{reach:.0f}" if reach is not None and c.get("drift_measured", True) else ""


def _cmp(c: dict | None, key: str) -> str:
    if not c or key not in c:
        return "–"
    m = c[key]
    mark = " ✓" if m["beats"] else (" ✗" if m["loses"] else "")
    lo, hi = m["interval"]
    return f"{m['sae']:+.0f} vs {m['baseline']:+.0f} (Δ {m['diff']:+.0f} [{lo:+.0f}, {hi:+.0f}]){mark}"


def alone_sentence(row: dict[str, Any]) -> str:
    """Where `off` silences the concept playing alone (`concept find --alone`), and whether the baseline's does."""
    hooks = [h for h, c in row.items() if h != "baseline" and c.get("alone")]
    if not hooks:
        return ""
    return (
        f" `off` silences it where its detector of playing alone calls it so at {', '.join(hooks)}; the detector of "
        f"the baseline's `off`: {row['baseline'].get('alone', 'none')}."
    )


def report_markdown(s: dict[str, Any]) -> str:
    """The side-by-side report: SAE quality per hook, then per concept every hook's SAE arms vs the baseline."""
    lines = [
        f"# Which hook should the SAE steer? ({s['model']['name']}, judged on the {s['split']} clips)",
        "",
        "| hook | d_in | d_sae / k | FVU | L0 | never fired |",
        "|---|---|---|---|---|---|",
    ]
    for h, m in s["hooks"].items():
        lines.append(
            f"| {h} | {m['d_in']} | {m['d_sae']} / {m['k']} | {measured(m, 'fvu'):.3f} | {measured(m, 'l0'):.1f} | "
            f"{100 * measured(m, 'dead_fraction'):.1f} % |"
        )
    lines += [
        "",
        "Probe AUROC (5-fold, out of fold, train-split folders) with 95 % intervals. Edits on the "
        "held-out clips: SAE vs raw-latent difference of means, Δ = SAE − baseline with a paired 95 % interval "
        "(Newcombe's for drop and rise, a bootstrap for drift); ✓ the SAE wins beyond it and by the sign test on "
        "the clips where they differ (p < 0.05), ✗ it "
        "loses so; a win counts when the edit's own drift is within ±10 with its 95 % intervals (Newcombe's, every "
        "other concept; `off`'s for the drop, `on`'s / `clamp`'s for rise and drift). Drift: |change| of the "
        "most-moved other concept; the strength is chosen on half of the clips without the concept and reported on "
        "the other half. "
        "Steered features: those `off` / `on` edit; off leaves: the share of the concept's mean difference at the "
        "hook (the found-on clips with − without it) left after `off` (0: all removed; below 0: pushed past the clips "
        "without it); in error: the share the SAE's error term carries, which no edit touches.",
    ]
    if s.get("config", {}).get("spare"):
        lines += [
            "",
            "Spared: each concept's edits leave alone the steering features of the concepts found before it "
            f"({', '.join(s['config']['concepts'])}, in that order; `concept find --spare`).",
        ]
    for name, row in s["concepts"].items():
        if "baseline" not in row:
            lines += ["", f"## {name}: not found on any hook ({'; '.join(str(v) for v in row['not_found'].values())})"]
            continue
        b = row["baseline"]
        lines += [
            "",
            f"## {name} (held out: {b['held_out'][0]} with, {b['held_out'][1]} without; baseline drop "
            f"{b['drop']:+.0f}, rise {b['rise']:+.0f} at {b['strength_on']:g}, drift {b['max_drift']:.0f})",
            "",
            f"The judge hears {name} in {b['none']['with']:.0f} % of the model's plain reconstructions of the clips "
            f"with it and {b['none']['without']:.0f} % of those without"
            + (
                f" (in {b['clean']['with']:.0f} % / {b['clean']['without']:.0f} % of the originals)"
                if b.get("clean")
                else ""
            )
            + ": no edit can drop more than the first or raise more than 100 minus the second."
            + alone_sentence(row),
            "",
            "| hook | SAE probe AUROC | diff. means (raw, this hook) | steered features / off leaves / in error "
            "| off drop (its drift, ±its interval's reach) | on rise (strength) | on drift (, ±reach) "
            "| clamp rise (strength) | clamp drift (, ±reach) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for hook, cell in row.items():
            if hook == "baseline":
                continue
            if "not_found" in cell:
                lines.append(f"| {hook} | not found: {cell['not_found']} | | | | | | | |")
                continue
            a = cell["auroc"]
            left = (
                f"{cell['steer_features']} / {100 * cell['off_left']:.0f} % / {100 * cell['error_share']:.0f} %"
                if cell["off_left"] is not None
                else f"{cell['steer_features']} (the probe's: none reached --steer-threshold, or it is 0) / – / –"
            )
            on, cl = cell.get("on"), cell.get("clamp")
            off_drift = f"{on['off_drift']:.0f}" if on.get("drift_measured", True) else "drift not measured"
            lines.append(
                f"| {hook} | {_iv(a['sae_probe'])} | {_iv(a['diff_means'])} | {left} | {_cmp(on, 'drop')} "
                f"({off_drift}{_reach(on, 'off')}) | "
                f"{_cmp(on, 'rise')} ({on['strength']:g}) | {_cmp(on, 'drift')}{_reach(on, 'on')} | "
                + (
                    f"{_cmp(cl, 'rise')} ({cl['strength']:g}) | {_cmp(cl, 'drift')}{_reach(cl, 'on')} |"
                    if cl
                    else "– | – |"
                )
            )
    lines += ["", f"**Pick: {s['reason']}.**", ""]
    if "validation" in s:
        v = s["validation"]
        lines += [
            f"Wins on the {v['split']} clips (validation; the hook is chosen there, reported above on the "
            f"{s['split']} clips):",
            "",
            "| hook | concepts won (validation) | wins (validation) | concepts won (reported) | wins (reported) |",
            "|---|---|---|---|---|",
        ]
        for h in s["hooks"]:
            lines.append(
                f"| {h} | {v['concepts_won'][h]} | {'; '.join(v['wins'][h]) or '–'} | {s['concepts_won'][h]} | "
                f"{'; '.join(s['wins'][h]) or '–'} |"
            )
        lines.append("")
    lines.append(
        f"Goal (on the {s['split']} clips, the chosen hook's SAE edit beats the baseline beyond its interval for two "
        "concepts at drift ≤ 10 with its intervals): " + ("met." if s["goal_met"] else "not met.")
    )
    if s.get("why_not"):
        lines += ["", "What stopped it, per concept (the SAE arm closest to a win on each measure):", ""]
        lines += [f"- {line}" for line in s["why_not"]]
    return "\n".join(lines) + "\n"
