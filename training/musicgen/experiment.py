"""The MusicGen concept experiment: SAEs on every layer, concepts per layer, steering judged per layer.

    python -m training.musicgen.experiment --model training/assets/demo_musicgen --data DATA --out OUT

1. **collect** (`musicsae collect musicgen`'s collector): every layer's residual stream, teacher-forced over
   the data folder's clips (null description) and generated from prompts (the conditional rows), into
   OUT/store.
2. **SAEs** (`musicsae sae train`'s loop): one TopK SAE per layer, OUT/saes/<layer>.
3. **concepts per layer**: clip-pooled SAE features vs the raw residual (`training/musicgen/concepts.py`,
   train-split concept folders, out-of-fold scores), AUROC with its 95 % score interval per layer;
   a bank per layer, OUT/banks/<layer>.yaml.
4. **steering per layer**, judged from outside (`training/judge.py`, trained on the clean train clips): for
   each steered concept C, prompt pairs that differ by C (`adherence.prompt_pairs`) split into validation and
   test halves. `off` on the prompts with C (the drop), `on:S` on the prompts without C for every strength
   S (the rise), the same prompts and seeds as the plain renders; the drift of every other judged concept.
   Beside every SAE edit, the same edit along the raw-residual difference of means at the same layer
   (teacher-forced clip frames with C minus without; off = −d, on:S = S·d), as a baseline. Each edit is tried
   on both guidance rows and on the conditional rows only (`edit_rows`, realtime/musicgen/render.py). The best
   layer, rows and strengths are chosen on validation prompts; the report gives the test prompts
   (`test_seeds` renders per prompt there), with two references measured on the same prompts:
   - `resample`: no edit, the same prompts from other seeds: how far sampling alone moves every figure (the
     floor under any drift);
   - `prompt`: the prompt itself as the edit (with C → without C for `off`, the reverse for `on`): what the
     model does when told, the drift included.

Goals (the issue's): off drop ≥ 50 points and on rise ≥ 30 points at drift ≤ 10 on at least one layer, each met
only with a margin of one render, where its 95 % interval allows it (`training.judge.goals_met`), and on at least
12 renders per side (`sae.examples.MIN_EXAMPLES`). Every figure
carries its render count and a 95 % interval (Newcombe's paired interval with the prompt pair as the unit:
`sae.stats.paired_diff`'s groups; below 12 pairs each counts as one outcome, so the demo model's 3 test pairs
can meet neither the `off` nor the `on` goal whatever the seeds: a perfect edit reads at least +20).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from realtime.audio_files import AudioNotes
from sae.atomic import atomic_write_text
from sae.controls import plain_float
from sae.errors import UserError
from sae.examples import MIN_EXAMPLES
from sae.jsonfile import measured, strict_json
from sae.stats import MIN_GROUPS, Interval, paired_diff, runs_of, verdict, wilson_groups
from sae.store import whole_store
from training.cli.args import (
    Parser,
    add_device,
    add_threads,
    comma_names,
    nonneg_int,
    positive_float,
    positive_int,
    seed_int,
)
from training.data.concept_clips import CONCEPTS
from training.demo import Steps
from training.judge import DEGRADED_COPIES, drift_reach, goals_met, unreachable_goals
from training.musicgen.adherence import fit_judge, prompt_pairs
from training.musicgen.judge import GOALS

if TYPE_CHECKING:
    from training.musicgen.collect import CollectConfig

RESAMPLE_SEED = 100_000
"""Offset of the `resample` reference's seeds from the plain renders' (other draws of the same prompts)."""
PROBE_CONCEPTS = ("guitar", "drums", "piano", "bass", "strings", "brass", "voice")


@dataclass
class ExperimentConfig:
    """Args:
    model: MusicGen folder with `descriptions.json` (the demo model or one like it).
    data: a `musicsae data make` folder at any rate (clips, concept folders, the judge's train clips).
    out: output folder (every stage resumes or reuses what is there).
    steer: concepts steered and judged per layer; probe: concepts whose AUROC is mapped per layer.
    layers: 'all' or indices.
    prompts: generated prompts collected into the store (the most-trained descriptions); prompt_seconds each.
    sae_steps, k, expansion: SAE training per layer.
    pairs: prompt pairs per steered concept (the first half validates, the second tests); seeds per prompt.
    strengths: strengths of `on` swept on validation.
    edit_rows: guidance rows tried on validation (`both`, `cond`; realtime/musicgen/render.py).
    test_seeds: renders per test prompt (0: `seeds`); the test runs one layer, so it can afford more.
    seed: the collection's, the SAEs' and the renders' seed; render_seed: the renders' alone (None: `seed`), so a
        run on the same `out` with another render seed reuses its store, SAEs and banks: other draws of the same
        experiment.
    """

    model: str
    data: str
    out: str
    steer: tuple[str, ...] = ("guitar",)
    probe: tuple[str, ...] = PROBE_CONCEPTS
    layers: str = "all"
    prompts: int = 48
    prompt_seconds: float = 4.0
    sae_steps: int = 1500
    k: int = 16
    expansion: int = 8
    pairs: int = 8
    seeds: int = 3
    strengths: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    duration: float = 4.0
    folds: int = 5
    seed: int = 0
    backend: str = "auto"
    device: str = "cpu"
    edit_rows: tuple[str, ...] = ("both", "cond")
    test_seeds: int = 0
    render_seed: int | None = None


def trained_seconds(model: str | Path, default: float = 4.0) -> float:
    """The LM's training segment from the model folder's `training.json` (generation past it is untrained), or
    `default` for a model without a training record."""
    from realtime.musicgen import trained_seconds as segment

    seconds = segment(model)
    return default if seconds is None else seconds


def store_config(cfg: ExperimentConfig, store: Path, layers: list[int]) -> CollectConfig:
    """How the experiment collects its store: clips teacher-forced in the LM's training segment, as the concept
    stage reads them (`clip_activations`); 10 s chunks fed the SAEs positions the probes never saw."""
    from training.musicgen.collect import CollectConfig

    chunk = trained_seconds(cfg.model, 10.0)
    return CollectConfig(store, layers, duration=cfg.prompt_seconds, seed=cfg.seed, chunk=chunk)


UNCHANGED = ("checkpoint_every", "log_every", "device")
"""SAE training settings that do not change the SAE (how often it saves and logs, where it runs)."""


def finished_sae(sae_dir: Path, tc, data: dict) -> dict | None:
    """The metrics of the SAE an earlier run finished in `sae_dir` (None: none); one trained with other settings than
    `tc` (`--k`, `--expansion`, `--sae-steps`, `--seed`), or on other rows than the store's now (`data`,
    `sae.train.data_identity`: a rerun with more `--prompts` adds rows), is refused, naming what differs, instead of
    reused."""
    from sae.errors import differences
    from sae.jsonfile import read_json_object

    if not (sae_dir / "metrics.json").is_file():
        return None
    old = (read_json_object(sae_dir / "cfg.json", "SAE config").get("musicsae") or {}).get("train_config") or {}
    diff = differences(*({k: v for k, v in c.items() if k not in UNCHANGED} for c in (old, asdict(tc))), "there")
    if diff:
        raise UserError(f"{sae_dir}: an SAE trained with other settings ({diff}); run with the same, or another --out")
    metrics = read_json_object(sae_dir / "metrics.json", "SAE metrics")
    trained_on = metrics.get("data")  # absent in runs before 3 December: not checked
    if isinstance(trained_on, dict) and trained_on.get("digest") != data["digest"]:
        raise UserError(
            f"{sae_dir}: an SAE trained on other rows than the store holds now ({trained_on.get('rows')} rows then, "
            f"{data['rows']} now: a rerun with other --prompts?); run with the same settings, or another --out"
        )
    return metrics


def refuse_rows_beside_finished_saes(out: Path, prompts: list[str], hooks: list[str]) -> None:
    """Refuse, before the store changes, a collection that would add prompts' rows to the store under an SAE an
    earlier run finished on it (a rerun with more `--prompts`): the rows went in first and `finished_sae` refused
    after, so the first command itself could no longer resume ("other rows than the store holds now"). Only `hooks`,
    the layers this run collects, count: another layer's store and SAE are left as they are. The data's
    clips are not compared: a file too short to use is never complete, and the data folder is the same."""
    from sae.store import ActivationStore
    from training.musicgen.collect import prompt_sources

    hooks = [h for h in hooks if (out / "saes" / h / "metrics.json").is_file()]  # the layers this run collects
    if not hooks or not (out / "store" / "store.json").is_file():
        return
    store = ActivationStore(out / "store")
    planned = prompt_sources(prompts)
    for hook in hooks:
        done = store.complete_sources(hook) if hook in store.hooks else set()
        new = [s for s in planned if s not in done]
        if new:
            raise UserError(
                f"--out {out}: its SAE {hook} was trained on the store as it is, and this run would add rows of "
                f"{len(new)} prompt(s) it lacks ({new[0]}: other --prompts than the first run's); run with the same "
                "settings, or another --out"
            )


def collection_prompts(vocab, n: int) -> list[str]:
    """The n most-trained known descriptions (the `unknown` one excluded)."""
    ranked = sorted((-c, d) for d, c in vocab.descriptions.items() if d != vocab.unknown)
    return [d for _, d in ranked[:n]]


class ShiftSteering:
    """The raw-residual baseline: add `vector` to the guidance rows `edit_rows` of `layer` at every step (as
    BankSteering edits)."""

    def __init__(self, layer: int, vector: torch.Tensor, edit_rows: str = "cond"):
        self.layer, self.vector, self.edit_rows = layer, vector, edit_rows

    def layer_fns(self, batch: int | None = None):
        from realtime.musicgen.render import guidance_rows

        v = self.vector
        return {self.layer: guidance_rows(lambda x, start: x + v.to(x.device, x.dtype), self.edit_rows, batch)}


def mean_difference(acts: dict[Path, dict[int, torch.Tensor]], with_files, without_files, layer: int) -> torch.Tensor:
    """The baseline's direction at `layer`: the mean frame of the clips with the concept minus that of those
    without, over the usable clips as the probe's (a silent clip is noted and left out: it was a KeyError)."""

    def frames(files) -> torch.Tensor:
        return torch.cat([acts[p][layer] for f in files if (p := Path(f).resolve()) in acts])

    return frames(with_files).mean(0) - frames(without_files).mean(0)


def _render_seed(cfg: ExperimentConfig) -> int:
    return cfg.seed if cfg.render_seed is None else cfg.render_seed


def _render(mg, prompts: list[str], seeds: int, seed0: int, duration: float, steering=None) -> list[np.ndarray]:
    """Each prompt rendered `seeds` times (prompt j uses seed seed0 + j, its rows differ by sampling)."""
    out = []
    for j, p in enumerate(prompts):
        hooks = steering.layer_fns(seeds) if steering is not None else {}
        with mg.hooks(hooks):
            gen = mg.generate([p] * seeds, duration, seed=seed0 + j)
        out += [w.mean(0).cpu().numpy() for w in gen.wav]
    return out


def _prompt_of(renders: int, seeds: int) -> np.ndarray:
    """The prompt (pair) index of each of `_render`'s renders: the unit of every interval (hunt 184)."""
    return runs_of(renders // seeds, seeds)


def _arm(names, concept, plain_with, plain_without, detect_off, detect_on, strengths, seeds) -> dict[str, Any]:
    """Drop, rise per strength and drift of one way of editing `concept`: `detect_off()` and `detect_on(s)` give
    the judge's detections of the edited renders, paired with the plain renders' `plain_with` / `plain_without`
    (`seeds` renders per prompt pair: the pair is the intervals' unit)."""
    off = detect_off()
    groups = _prompt_of(len(off[concept]), seeds)
    drop = paired_diff(off[concept], plain_with[concept], groups=groups)  # plain minus off, points
    drift_off = {o: paired_diff(plain_with[o], off[o], groups=groups).as_dict() for o in names if o != concept}
    sweep = []
    for s in strengths:
        on = detect_on(s)
        rise = paired_diff(plain_without[concept], on[concept], groups=groups)
        drift = {o: paired_diff(plain_without[o], on[o], groups=groups).as_dict() for o in names if o != concept}
        worst = max([abs(d["value"]) for d in drift.values()], default=0.0)
        sweep.append({"strength": s, "rise": rise.as_dict(), "drift": drift, "max_drift": worst})
    best = max(sweep, key=_strength_key)
    worst = _worst_move(drift_off, best["drift"])
    max_drift = abs(worst["drift"]["value"]) if worst else 0.0
    reach = drift_reach(drift_off, best["drift"])
    return {
        "off": {"detected": wilson_groups(off[concept], groups).as_dict(), "drift": drift_off},
        "off_drop": drop.as_dict(),
        "sweep": sweep,
        "strength_on": best["strength"],
        "on_rise": best["rise"],
        "max_drift": max_drift,
        "worst_drift": worst,
        "drift_reach": reach,
        "goals_met": _goals(drop, best["rise"], max_drift, reach),
        "verdicts": {  # undecided below MIN_EXAMPLES renders, as `goals_met` (2 renders that moved read "met")
            "off_drop": verdict(drop, GOALS["off_drop"], None) if drop.n >= MIN_EXAMPLES else "undecided",
            "on_rise": verdict(Interval(**best["rise"]), GOALS["on_rise"], None)
            if best["rise"]["n"] >= MIN_EXAMPLES
            else "undecided",
        },
    }


def _worst_move(drift_off: dict, drift_on: dict) -> dict | None:
    """The other concept moved most, by `off` or by the chosen `on`: its name, the edit and the drift's interval."""
    moves = [(c, edit, d) for edit, drifts in (("off", drift_off), ("on", drift_on)) for c, d in drifts.items()]
    if not moves:
        return None
    c, edit, d = max(moves, key=lambda m: abs(m[2]["value"]))
    return {"concept": c, "edit": edit, "drift": d}


def _goals(drop: Interval, rise: dict, drift: float, reach: float | None = None) -> dict[str, bool]:
    """`training.judge.goals_met` with these goals (none met on fewer than MIN_EXAMPLES renders per side), the drift
    goal only where every other concept's drift interval stays within it too (`reach`: the farthest end of
    those intervals from 0; 3 renders up and 3 down of 24 were a drift of 0 [−21, +21], "met")."""
    return goals_met(drop.value, rise["value"], drift, drop.n, rise["n"], drop.lo, rise["lo"], GOALS, reach)


def _strength_key(e: dict) -> tuple:
    """Ranking of `on` strengths: the most goals met (rise, drift), the rise goal first; then, among strengths
    that meet the rise goal, the least drift, and among the others the most rise."""
    rise_ok, drift_ok = e["rise"]["value"] >= GOALS["on_rise"], e["max_drift"] <= GOALS["drift"]
    return (rise_ok + drift_ok, rise_ok, -e["max_drift"] if rise_ok else e["rise"]["value"])


def _layer_arms(mg, judge, names, concept, layer, bank, direction, prompts, plain, seeds, cfg, chosen) -> dict:
    """The SAE edit of `concept` from `bank` at `layer`, and the mean-difference baseline there, each on the
    guidance rows that score best (`_score`). `chosen`: per arm, the (rows, strengths) to try."""
    from realtime.musicgen.render import BankSteering, parse_set

    (with_p, without_p), (plain_w, plain_o) = prompts, plain

    def judged(ps: list[str], steering) -> dict[str, np.ndarray]:
        return judge.detect(_render(mg, ps, seeds, _render_seed(cfg), cfg.duration, steering))

    def make(label: str, rows: str, mode: str, s: float = 1.0):
        if label == "sae":
            return BankSteering(mg, bank, [parse_set(f"{concept}={mode}")], rows)
        return ShiftSteering(layer, (-1.0 if mode == "off" else s) * direction, rows)

    arms: dict[str, Any] = {}
    for label, (rows_tried, strengths) in chosen.items():
        tried = {}
        for rows in rows_tried:
            tried[rows] = _arm(
                names, concept, plain_w, plain_o,
                lambda label=label, rows=rows: judged(with_p, make(label, rows, "off")),
                lambda s, label=label, rows=rows: judged(without_p, make(label, rows, f"on:{s:g}", s)),
                strengths, seeds,
            ) | {"edit_rows": rows}  # fmt: skip
        best = max(tried, key=lambda r: _score(tried[r]))
        arms[label] = tried[best] | {
            "rows_tried": {r: {k: a[k] for k in ("off_drop", "on_rise", "strength_on", "max_drift")}
                           for r, a in tried.items()},
        }  # fmt: skip
    arms["baseline"] |= {"method": "raw-residual difference of means", "norm": float(direction.norm())}
    return arms


def _references(mg, judge, names, concept, prompts, plain, seeds, cfg) -> dict[str, Any]:
    """The `resample` and `prompt` references (module docstring), as arms judged like the edits (the prompt's
    arm reuses the plain renders' detections)."""
    (with_p, without_p), (plain_w, plain_o) = prompts, plain

    def other_draws(ps: list[str]) -> dict[str, np.ndarray]:
        return judge.detect(_render(mg, ps, seeds, _render_seed(cfg) + RESAMPLE_SEED, cfg.duration))

    arms = (
        ("resample", lambda: other_draws(with_p), lambda s: other_draws(without_p)),
        ("prompt", lambda: plain_o, lambda s: plain_w),
    )
    return {name: _arm(names, concept, plain_w, plain_o, off, on, (0.0,), seeds) for name, off, on in arms}


def _score(arm: dict) -> tuple:
    """Ranking of layers and rows on validation: goals met, then the weaker of drop/50 and rise/30."""
    g = arm["goals_met"]
    return (sum(g.values()), min(arm["off_drop"]["value"] / 50, arm["on_rise"]["value"] / 30))


SAE_METRICS = ("fvu", "fvu_interval", "sources", "l0", "dead_fraction", "rows", "train_dead_fraction", "dead_tokens")
"""What the summary keeps of each layer's SAE metrics (`sae.train`)."""


def run_experiment(cfg: ExperimentConfig, say: Callable[[str], None] = print) -> dict[str, Any]:
    """Every stage (reusing what OUT already holds); returns the summary also written to OUT/experiment.json."""
    from realtime.musicgen import load_musicgen, parse_layers
    from sae.bank import ConceptBank
    from sae.io import load_sae
    from sae.paths import check_output_dir
    from sae.store import ActivationStore
    from sae.train import Stopped, TrainConfig, data_identity, train_hook
    from training.cli.main import HeldStop
    from training.musicgen.collect import Collector
    from training.musicgen.concepts import clip_activations, concept_files, probe_layer

    stage = Steps(say, numbered=False)
    out, data = check_output_dir(cfg.out), Path(cfg.data)
    from realtime.musicgen.render import EDIT_ROWS

    cfg = dataclasses.replace(cfg, probe=tuple(dict.fromkeys((*cfg.steer, *cfg.probe))))  # a steered one is found
    bad = [c for c in cfg.probe if c not in CONCEPTS]
    if bad:
        raise UserError(f"concept {bad[0]!r}: not a manifest label ({', '.join(CONCEPTS)})")
    if not cfg.edit_rows or any(r not in EDIT_ROWS for r in cfg.edit_rows):
        raise UserError(f"--edit-rows {','.join(cfg.edit_rows)}: expected one or more of {', '.join(EDIT_ROWS)}")
    if cfg.seeds < 1 or cfg.test_seeds < 0:
        raise UserError(f"--seeds {cfg.seeds} / --test-seeds {cfg.test_seeds}: expected ≥ 1 / ≥ 0 (0: as --seeds)")
    for c in cfg.probe:
        concept_files(data / "concepts" / c)  # checked before the model runs
    mg = load_musicgen(cfg.model, cfg.backend, cfg.device)
    if mg.vocab is None:
        raise UserError(f"--model {cfg.model}: no descriptions.json (the prompts come from its known descriptions)")
    layers = parse_layers(cfg.layers, mg.num_layers)
    for c in cfg.steer:  # checked before the costly stages: the steering stage splits them in two
        if (known := len(prompt_pairs(mg.vocab, c, cfg.pairs))) < 2:
            raise UserError(
                f"--pairs {cfg.pairs}: the steering of {c} needs 2 prompt pairs differing by it (half to choose "
                f"on, half to report); "
                + (f"the model's words make {known}" if known < cfg.pairs else "give 2 or more")
            )
        # --duration too: it was refused by the first render, after the store and the SAEs were made (hunt 167)
        mg.check_request(list(prompt_pairs(mg.vocab, c, cfg.pairs)[0]), cfg.duration)

    # 1. store
    def collect() -> dict[str, int]:
        with whole_store(out / "store") as into:
            col = Collector(mg, store_config(cfg, into, layers))
            try:
                rows = {"audio": col.from_audio(data / "clips"), "prompts": col.from_prompts(prompts)}
            except BaseException:
                col.abort()
                raise
            col.close()
        return rows

    prompts = collection_prompts(mg.vocab, cfg.prompts)
    refuse_rows_beside_finished_saes(out, prompts, [mg.hook_name(i) for i in layers])
    collected = stage("collect", collect)

    # 2. SAEs
    def saes() -> dict[int, dict]:
        store = ActivationStore(out / "store")
        metrics = {}
        tc = TrainConfig(
            k=cfg.k,
            expansion=cfg.expansion,
            steps=cfg.sae_steps,
            batch_size=1024,
            seed=cfg.seed,
            checkpoint_every=0,
            shuffle_buffer=1 << 16,
            log_every=100,
            device=cfg.device,
        )
        # a Ctrl-C or SIGTERM ends the step in progress and checkpoints it (`HeldStop`): the same command goes on
        with HeldStop() as held:
            for i in layers:
                d = out / "saes" / mg.hook_name(i)
                done = finished_sae(d, tc, data_identity(store, mg.hook_name(i)))
                if done is not None:
                    metrics[i] = done
                    continue
                resume = (d / "checkpoint.pt").exists()
                try:
                    metrics[i] = train_hook(store, mg.hook_name(i), d, tc, resume=resume, stop=held.due)
                except Stopped as stopped:
                    say(f"{mg.hook_name(i)}: step {stopped.step} is checkpointed in {stopped.checkpoint}")
                    held.stop()
        return metrics

    sae_metrics = stage("saes", saes)

    # 3. concepts per layer
    def concepts() -> tuple[dict, dict]:
        files = {c: concept_files(data / "concepts" / c) for c in cfg.probe}
        allf = sorted({Path(f).resolve() for w, o in files.values() for f in (*w, *o)})
        acts = clip_activations(mg, allf, layers)
        table: dict[str, dict[int, Any]] = {c: {} for c in cfg.probe}
        directions: dict[tuple[str, int], torch.Tensor] = {}
        (out / "banks").mkdir(parents=True, exist_ok=True)
        for i in layers:
            sae_dir = out / "saes" / mg.hook_name(i)
            sae = load_sae(sae_dir, device=mg.device).eval()
            bank = ConceptBank(out / "banks" / f"{mg.hook_name(i)}.yaml")
            for c, (w, o) in files.items():
                res = probe_layer(c, mg, i, sae, bank.relative_sae(sae_dir), acts, w, o, folds=cfg.folds)
                bank.add(res.concept)
                table[c][i] = {m: auroc_iv(res.report, m) for m in ("sae_probe", "diff_means", "logistic_raw")}
                table[c][i]["fires_more"] = res.fires_more  # else its edits steer features of the concept's absence
                directions[c, i] = mean_difference(acts, w, o, i)
            bank.save()
        return table, directions

    auroc, directions = stage("concepts", concepts)

    # 4. steering per layer, judged
    judge_names = [c for c in cfg.probe if c != "voice"] if "voice" not in cfg.steer else list(cfg.probe)
    notes = AudioNotes()
    judge, n_judge = fit_judge([str(data)], mg.sample_rate, judge_names, notes)

    def steering() -> dict[str, Any]:
        results: dict[str, Any] = {}
        for c in cfg.steer:
            pairs = prompt_pairs(mg.vocab, c, cfg.pairs)  # 2 or more: checked before the costly stages
            known = len(prompt_pairs(mg.vocab, c))  # whether more --pairs could help
            half = len(pairs) // 2
            splits = {"validation": pairs[:half], "test": pairs[half:]}
            per_split: dict[str, Any] = {}
            for split, ps in splits.items():
                with_p, without_p = [w for w, _ in ps], [o for _, o in ps]
                seeds = (cfg.test_seeds or cfg.seeds) if split == "test" else cfg.seeds
                say(f"{c} / {split}: plain renders of {len(ps)} prompt pairs x {seeds} seeds")
                plain_w = judge.detect(_render(mg, with_p, seeds, _render_seed(cfg), cfg.duration))
                plain_o = judge.detect(_render(mg, without_p, seeds, _render_seed(cfg), cfg.duration))
                prompts_wo, plain = (with_p, without_p), (plain_w, plain_o)
                chosen = layers if split == "validation" else [per_split["validation"]["best_layer"]]
                by_layer: dict[int, Any] = {}
                for i in chosen:
                    bank = ConceptBank.load(out / "banks" / f"{mg.hook_name(i)}.yaml")
                    say(f"{c} / {split} / layer {i}: SAE edits and the mean-difference baseline")
                    if split == "test":
                        v = per_split["validation"]["layers"][i]
                        tries = {k: ((v[k]["edit_rows"],), (v[k]["strength_on"],)) for k in ("sae", "baseline")}
                    else:
                        tries = {k: (cfg.edit_rows, cfg.strengths) for k in ("sae", "baseline")}
                    arms = (mg, judge, judge_names, c, i, bank, directions[c, i])
                    by_layer[i] = _layer_arms(*arms, prompts_wo, plain, seeds, cfg, tries)
                say(f"{c} / {split}: references (other draws; the prompt itself)")
                pair_of = _prompt_of(len(plain_w[c]), seeds)
                entry: dict[str, Any] = {
                    "pairs": [list(p) for p in ps],
                    "renders_per_side": len(ps) * seeds,
                    "seeds_per_pair": seeds,
                    "pairs_used": len(pairs),
                    "pairs_known": known,
                    "plain": {
                        "with": wilson_groups(plain_w[c], pair_of).as_dict(),
                        "without": wilson_groups(plain_o[c], pair_of).as_dict(),
                    },
                    "layers": by_layer,
                    "references": _references(mg, judge, judge_names, c, prompts_wo, plain, seeds, cfg),
                }
                if split == "validation":
                    entry["best_layer"] = max(by_layer, key=lambda i: _score(by_layer[i]["sae"]))
                per_split[split] = entry
            results[c] = per_split
        return results

    steered = stage("steering", steering)
    summary = {
        "model": mg.model_ref(),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
        "layers": layers,
        "store_rows": collected,  # added by this run (0 where the store was there)
        "store_rows_held": {mg.hook_name(i): ActivationStore(out / "store").rows(mg.hook_name(i)) for i in layers},
        "sae": {str(i): {k: m[k] for k in SAE_METRICS if k in m} for i, m in sae_metrics.items()},
        "auroc": {c: {str(i): v for i, v in t.items()} for c, t in auroc.items()},
        "judge": {"trained_on": f"{n_judge} clean train clips of {data} {DEGRADED_COPIES}", "concepts": judge_names},
        "goals": GOALS,
        "steering": steered,
        "notes": notes.lines() + mg.__dict__.get("prompt_notes", []),
        "timings_s": stage.timings,
        "total_s": stage.total_s(),
    }
    # the last run as experiment.json / report.md, and each run (steered concepts, render seed) kept under runs/:
    # the README's recipe runs --steer drums and --render-seed 1000 on the same OUT, which replaced the first run's
    runs = out / "runs"
    runs.mkdir(exist_ok=True)
    text, report = strict_json(summary, default=str), report_markdown(summary)
    run = run_name(runs, f"{'_'.join(cfg.steer) or 'none'}_seed{_render_seed(cfg)}", json.loads(text)["config"])
    for path, content in ((out / "experiment.json", text), (out / "report.md", report),
                          (runs / f"{run}.json", text), (runs / f"{run}.md", report)):  # fmt: skip
        atomic_write_text(path, content)
    return summary


def run_name(runs: Path, base: str, config: dict) -> str:
    """The name a run's record is kept under in `runs`: `base` (steered concepts, render seed), or where a record of
    `base` holds other settings, `base` and a hash of these (the README's recipe runs --render-seed 1000 twice, with
    other --seeds, and the second replaced the first's record: hunt 167)."""
    try:
        kept = json.loads((runs / f"{base}.json").read_text()).get("config")
    except (OSError, ValueError, AttributeError):  # none yet, or not a record: replaced as before
        return base
    if kept == config:
        return base
    return f"{base}_{hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]}"


def auroc_iv(report, method: str) -> dict:
    """Out-of-fold AUROC of `method` with its 95 % interval (`sae.probe.compare_probes`: Newcombe's score interval)."""
    return report.intervals[method]


def _iv(d: dict, fmt: str = "+.0f") -> str:
    return Interval(**d).text(fmt, groups_as="prompts")


def _renders(split: dict) -> str:
    """The renders per side and, where the run recorded it, how many prompt pairs × seeds they are."""
    n, seeds = split["renders_per_side"], split.get("seeds_per_pair")
    if not seeds:
        return f"{n} renders per side"
    pairs = n // seeds
    return f"{n} renders per side: {pairs} prompt pair{'s' * (pairs != 1)} × {seeds} seed{'s' * (seeds != 1)}"


_LABELS = {"sae": "SAE", "baseline": "mean-diff"}


def _worst_drift(a: dict) -> str:
    """The arm's worst drift with the concept it moves, which edit moves it, and its 95 % interval."""
    w = a["worst_drift"]
    return "–" if w is None else f"{abs(w['drift']['value']):.0f} ({w['concept']}, {w['edit']}: {_iv(w['drift'])})"


def _few_pairs(split: dict, goals: dict[str, float]) -> list[str]:
    """A line where the split has too few prompt pairs for an edit that moved every render to reach a goal (the
    pair the unit: below `MIN_GROUPS` each counts as one outcome, however many seeds), and whether more `--pairs`
    can help (not where the run used every pair the model knows)."""
    n, seeds = split["renders_per_side"], split.get("seeds_per_pair")
    whole = isinstance(n, int) and isinstance(seeds, int) and seeds > 0 and n % seeds == 0
    pairs = n // seeds if whole else 0  # a hand-edited file of part pairs says nothing (hunt 189: a traceback)
    best, missed = unreachable_goals(n, pairs, goals)
    if not missed:
        return []
    known, used = split.get("pairs_known"), split.get("pairs_used")
    more = ("more pairs (`--pairs`) can" if known is None or used is None or used < known else
            f"the model knows no more pairs for this concept ({known} in all), so no `--pairs` can")  # fmt: skip
    names = " and ".join(f"{k.replace('_', ' ')} ({goals[k]:g})" for k in missed)
    return [
        "",
        f"With {pairs} prompt pair{'s' * (pairs != 1)} (each one outcome below {MIN_GROUPS}, however many seeds), an "
        f"edit that moved every render reads at least {math.floor(best):+d}: the {names} "
        f"goal{'s' * (len(missed) > 1)} cannot be met here; {more}.",
    ]


def _reference_lines(refs: dict[str, Any]) -> list[str]:
    """The references under an edit table: drop, rise and drift of no edit (other draws) and of the prompt."""
    r, p = refs["resample"], refs["prompt"]
    return [
        "",
        f"References on the same prompts: no edit, other draws: off {_iv(r['off_drop'])}, on {_iv(r['on_rise'])}, "
        f"worst drift {_worst_drift(r)} (what sampling alone moves); the prompt itself: "
        f"{_iv(p['off_drop'])}, worst drift {_worst_drift(p)} (what the model does when told).",
    ]


def report_markdown(s: dict[str, Any]) -> str:
    layers = s["layers"]
    lines = [
        f"# MusicGen concept experiment: {s['model']['name']} ({s['model']['backend']}, sha256 "
        f"{s['model']['sha256'][:12]})",
        "",
        "## SAEs per layer (held-out store rows)",
        "",
        "Never fired: features silent on every held-out row (rare features count too when the rows are few); dead "
        "in training: silent for the last `dead_tokens` training rows, the ones AuxK works on.",
        "",
        "| layer | FVU [95 %, held-out sources resampled] | L0 | never fired (held-out rows) | dead in training |",
        "|---|---|---|---|---|",
    ]
    for i in layers:
        m = s["sae"][str(i)]
        iv = (
            f" [{m['fvu_interval'][0]:.3f}, {m['fvu_interval'][1]:.3f}] (n={m['sources']})"
            if m.get("fvu_interval")
            else ""
        )
        lines.append(f"| {i} | {measured(m, 'fvu'):.3f}{iv} | {measured(m, 'l0'):.1f} | "
                     f"{100 * measured(m, 'dead_fraction'):.1f} % ({m.get('rows', 'n/a')}) | "
                     f"{100 * measured(m, 'train_dead_fraction'):.1f} % |")  # fmt: skip
    lines += [
        "",
        "## Concepts per layer: held-out AUROC [95 % interval] — SAE probe / raw difference of means",
        "",
        "| concept | " + " | ".join(f"L{i}" for i in layers) + " |",
        "|---|" + "---|" * len(layers),
    ]
    absent = False  # a cell whose SAE has no feature firing more with the concept than without
    for c, t in s["auroc"].items():
        cells = []
        for i in layers:
            cell = t[str(i)]
            mark = "" if cell.get("fires_more", True) else " †"
            absent = absent or bool(mark)
            cells.append(f"{_iv(cell['sae_probe'], '.2f')} / {cell['diff_means']['value']:.2f}{mark}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    if absent:
        lines += [
            "",
            "† no feature of the layer's SAE fires more with the concept than without: its bank entry's `on` and "
            "`off` steer features of the concept's absence (`concept musicgen` leaves such an entry out).",
        ]
    g = s["goals"]
    lines += [
        "",
        f"## Steering per layer, outside judge (goals: off drop ≥ {g['off_drop']:g}, on rise ≥ {g['on_rise']:g}, "
        f"drift ≤ {g['drift']:g} points)",
        "",
    ]
    for c, splits in s["steering"].items():
        v, t = splits["validation"], splits["test"]
        best = v["best_layer"]
        lines += [
            f"### {c}: validation ({_renders(v)}), every layer",
            "",
            f"plain renders: {c} heard in {_iv(v['plain']['with'], '.0f')} of prompts with it, "
            f"{_iv(v['plain']['without'], '.0f')} without.",
            "",
            "| layer | edit | rows | off drop | on rise (strength) | worst drift |",
            "|---|---|---|---|---|---|",
        ]
        for i, e in v["layers"].items():
            for label in ("sae", "baseline"):
                a = e[label]
                lines.append(
                    f"| {i}{' (chosen)' if int(i) == int(best) else ''} | {_LABELS[label]} | {a['edit_rows']} "
                    f"| {_iv(a['off_drop'])} | {_iv(a['on_rise'])} ({a['strength_on']:g}) | {_worst_drift(a)} |"
                )
        lines += [*_reference_lines(v["references"]), ""]
        lines += [
            f"### {c}: test prompts ({_renders(t)}), layer {best}",
            "",
            f"plain renders: {c} heard in {_iv(t['plain']['with'], '.0f')} with it, {_iv(t['plain']['without'], '.0f')}"
            " without.",
            "",
            "| edit | rows | off drop | on rise (strength) | worst drift | goals met |",
            "|---|---|---|---|---|---|",
        ]
        for label, a in t["layers"][best].items():
            met = ", ".join(k for k, ok in a["goals_met"].items() if ok) or "none"
            lines.append(
                f"| {_LABELS[label]} | {a['edit_rows']} | {_iv(a['off_drop'])} | {_iv(a['on_rise'])} "
                f"({a['strength_on']:g}) | {_worst_drift(a)} | {met} |"
            )
        lines += [*_reference_lines(t["references"]), *_few_pairs(t, g), ""]
    lines += ["## Timings (s)", "", ", ".join(f"{k} {v}" for k, v in s["timings_s"].items()), ""]
    if s["notes"]:
        lines += ["## Notes", "", *[f"- {n}" for n in s["notes"]], ""]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from training.musicgen import runs

    d = ExperimentConfig("", "", "")
    p = Parser(prog="python -m training.musicgen.experiment", description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="MusicGen folder with descriptions.json")
    p.add_argument("--data", required=True, help="a `musicsae data make` folder")
    p.add_argument("--out", required=True, help="output folder (stages resume)")
    p.add_argument("--steer", default=",".join(d.steer), help="concepts steered per layer")
    p.add_argument("--probe", default=",".join(d.probe), help="concepts mapped per layer")
    p.add_argument("--layers", default=d.layers)
    p.add_argument("--prompts", type=positive_int, default=d.prompts, help="generated prompts in the store")
    p.add_argument("--sae-steps", type=positive_int, default=d.sae_steps)
    p.add_argument("--k", type=positive_int, default=d.k)
    p.add_argument("--expansion", type=positive_int, default=d.expansion)
    p.add_argument("--pairs", type=positive_int, default=d.pairs, help="prompt pairs per steered concept")
    p.add_argument("--seeds", type=positive_int, default=d.seeds, help="renders per prompt")
    p.add_argument("--test-seeds", type=nonneg_int, default=d.test_seeds, help="renders per test prompt (0: --seeds)")
    p.add_argument(
        "--edit-rows", default=",".join(d.edit_rows), help="guidance rows tried on validation: both, cond or both,cond"
    )
    p.add_argument("--strengths", default=",".join(f"{s:g}" for s in d.strengths))
    p.add_argument(
        "--duration",
        type=positive_float,
        help="seconds per render and collected prompt (default: the LM's training segment)",
    )
    p.add_argument("--seed", type=seed_int, default=d.seed, help="the collection's, the SAEs' and the renders' seed")
    p.add_argument(
        "--render-seed",
        type=seed_int,
        default=None,
        help="the renders' seed alone (default --seed): on the same --out, other draws that reuse its store, SAEs "
        "and banks",
    )
    add_device(p, "MusicGen and the SAEs")
    add_threads(p)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    try:
        strengths = tuple(plain_float(x) for x in comma_names(a.strengths))  # "١,٢" read as 1, 2 (hunt 157)
    except ValueError:
        strengths = ()
    if not strengths or not all(0 < s <= 100 for s in strengths):  # NaN fails too
        p.error(f"--strengths {a.strengths!r}: expected positive numbers up to 100 like 1,2,4")

    def run() -> None:
        seconds = a.duration or trained_seconds(a.model, d.duration)  # a damaged record: one line (hunt 157)
        cfg = ExperimentConfig(
            a.model, a.data, a.out, comma_names(a.steer), comma_names(a.probe), a.layers, a.prompts, seconds,
            a.sae_steps, a.k, a.expansion, a.pairs, a.seeds, strengths, seconds, d.folds, a.seed,
            device=a.device, edit_rows=comma_names(a.edit_rows), test_seeds=a.test_seeds, render_seed=a.render_seed,
        )  # fmt: skip
        run_experiment(cfg)

    kept = (" (the stages done are kept, and an SAE's last step; the steering stage starts over: run the same "
            "command to go on)")  # fmt: skip
    return runs.guarded(p.prog, run, kept)


if __name__ == "__main__":
    raise SystemExit(main())
