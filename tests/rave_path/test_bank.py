"""Concept bank: round trip, validation with one-line errors, atomic saves, the list table."""

from __future__ import annotations

import pytest
import yaml

from sae.bank import Concept, ConceptBank, ConceptClips, ConceptDefault, ConceptFeature, ConceptSteer, ModelRef
from sae.errors import UserError
from training.cli import main

SHA = "0123abcd" * 8


def _concept(name: str = "guitar", intervals: bool = False) -> Concept:
    c = Concept(
        name,
        ModelRef("demo_rave.ts", SHA),
        "latent",
        "sae/latent",
        [ConceptFeature(12, 1.0, 1.7), ConceptFeature(3, 0.25, 0.5)],
        ConceptDefault("off", 1.0),
        {"sae_probe": 0.97, "diff_means": 0.93, "logistic_raw": 0.95},
    )
    if intervals:
        c.auroc_interval = {"sae_probe": (0.93, 1.0), "diff_means": (0.86, 0.98), "logistic_raw": (0.89, 0.99)}
        c.clips = ConceptClips(24, 22)
        c.verdict = "tied"
    return c


def test_intervals_and_clip_counts_round_trip_and_an_older_bank_without_them_loads(tmp_path):
    bank = ConceptBank(tmp_path / "concepts.yaml", {"guitar": _concept(intervals=True)})
    bank.save()
    text = (tmp_path / "concepts.yaml").read_text()
    assert "auroc_interval:\n      sae_probe: [0.93, 1.0]\n      diff_means: [0.86, 0.98]\n" in text  # readable
    assert "clips: {with: 24, without: 22}" in text and "verdict: tied" in text
    again = ConceptBank.load(tmp_path / "concepts.yaml").get("guitar")
    assert again == bank.get("guitar") and again.clips == ConceptClips(24, 22)
    bank.get("guitar").clips = ConceptClips(24, 22, sources=9)  # a search with --groups: the sources too
    bank.save()
    assert "clips: {with: 24, without: 22, sources: 9}" in (tmp_path / "concepts.yaml").read_text()
    assert ConceptBank.load(tmp_path / "concepts.yaml").get("guitar").clips.text() == "24/22 from 9 sources"
    assert again.auroc_text("sae_probe") == "0.97 [0.93, 1.00]" and again.auroc_text("other") == "-"
    old = tmp_path / "old.yaml"  # a bank written before intervals and clip counts were recorded
    old.write_text(
        "version: 1\nconcepts:\n  guitar:\n    model: {name: demo_rave.ts, sha256: " + SHA + "}\n"
        "    hook: latent\n    sae: sae/latent\n    features:\n      - {index: 12, weight: 1.0, typical: 1.7}\n"
        "    auroc: {sae_probe: 0.97, diff_means: 0.93, logistic_raw: 0.95}\n"
    )
    c = ConceptBank.load(old).get("guitar")
    assert c.auroc_interval == {} and c.clips is None and c.verdict is None
    assert c.auroc_text("sae_probe") == "0.97"  # the point value, nothing invented
    assert "auroc_interval" not in c.to_dict() and "clips" not in c.to_dict() and "verdict" not in c.to_dict()


def test_round_trip_matches_architecture_layout(tmp_path):
    bank = ConceptBank(tmp_path / "concepts.yaml")
    bank.add(_concept())
    bank.add(_concept("piano"))
    bank.save()
    data = yaml.safe_load((tmp_path / "concepts.yaml").read_text())
    assert data["version"] == 1 and list(data["concepts"]) == ["guitar", "piano"]
    assert data["concepts"]["guitar"] == {
        "model": {"name": "demo_rave.ts", "sha256": SHA},
        "hook": "latent",
        "sae": "sae/latent",
        "features": [{"index": 12, "weight": 1.0, "typical": 1.7}, {"index": 3, "weight": 0.25, "typical": 0.5}],
        "default": {"mode": "off", "strength": 1.0},
        "auroc": {"sae_probe": 0.97, "diff_means": 0.93, "logistic_raw": 0.95},
    }
    again = ConceptBank.load(tmp_path / "concepts.yaml")
    assert again.get("guitar") == bank.get("guitar")
    assert again.sae_dir("guitar") == tmp_path / "sae/latent"
    assert bank.relative_sae(tmp_path / "x" / "sae") == "x/sae"
    assert [p.name for p in tmp_path.iterdir()] == ["concepts.yaml"]  # no temp files left behind


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda d: d.update(version=2), "version 2"),
        # hunt 94: a typo's figure showed as "-"; `version: true` passed as 1; `concepts: []` was an empty bank
        (lambda d: d["concepts"]["guitar"]["auroc"].update(sae_prob=0.8), "auroc.sae_prob: unknown method; expected"),
        (lambda d: d.update(version=True), "version True; expected 1"),
        (lambda d: d.update(concepts=[]), "'concepts' must be a mapping"),
        (lambda d: d["concepts"]["guitar"].update(steer={"threshold": 0.1, "features": [{"index": 3}],
                                                         "spared": ["guitar"]}), "expected other concepts' names"),
        (lambda d: d["concepts"]["guitar"].update(steer={"threshold": 0.1, "features": [{"index": 3}],
                                                         "spared": ["drums", "drums"]}), "names, each once"),
        (lambda d: d["concepts"]["guitar"].update(clips={"with": 2, "without": 2, "sources": 50}), "S at most N + M"),
        (lambda d: d["concepts"]["guitar"].pop("hook"), "missing 'hook'"),
        (lambda d: d["concepts"]["guitar"]["features"][1].update(index=-1), "features[1].index -1"),
        (lambda d: d["concepts"]["guitar"]["features"][1].update(index=12), "appears twice"),
        (lambda d: d["concepts"]["guitar"]["features"][0].update(weight=float("nan")), "features[0].weight"),
        (lambda d: d["concepts"]["guitar"]["default"].update(mode="loud"), "default.mode 'loud'"),
        (lambda d: d["concepts"]["guitar"]["auroc"].update(sae_probe=1.5), "auroc.sae_probe"),
        (lambda d: d["concepts"]["guitar"]["model"].update(sha256="XYZ"), "model.sha256"),
        (lambda d: d["concepts"]["guitar"].update(colour="red"), "unknown key 'colour'"),
        # a typo inside `default` or `model` was ignored: `strenght: 4` loaded as on:1 (hunt 83)
        (lambda d: d["concepts"]["guitar"]["default"].update(strenght=4), "default: unknown key 'strenght'"),
        (lambda d: d["concepts"]["guitar"]["model"].update(shasum="x"), "model: unknown key 'shasum'"),
        (lambda d: d["concepts"]["guitar"].update(sae_sha256="abc"), "sae_sha256 'abc'"),
        (lambda d: d["concepts"]["guitar"]["auroc_interval"].update(sae_probe=[0.99, 0.9]), "auroc_interval.sae_probe"),
        (lambda d: d["concepts"]["guitar"]["auroc_interval"].update(sae_probe=[0.9, 1.2]), "auroc_interval.sae_probe"),
        (lambda d: d["concepts"]["guitar"]["auroc_interval"].update(diff_means=0.9), "auroc_interval.diff_means"),
        (lambda d: d["concepts"]["guitar"]["auroc_interval"].update(dm=[0.1, 0.2]), "auroc_interval.dm: no auroc.dm"),
        (lambda d: d["concepts"]["guitar"].update(auroc_interval=[0.1, 0.2]), "auroc_interval must be a mapping"),
        (lambda d: d["concepts"]["guitar"]["clips"].update(without=0), "clips"),
        (lambda d: d["concepts"]["guitar"].update(clips=24), "clips 24"),
        (lambda d: d["concepts"]["guitar"].update(verdict="better"), "verdict 'better'; expected one of SAE better"),
        (lambda d: d["concepts"].update({"bad name": d["concepts"]["guitar"]}), "'bad name'"),
        # what every consumer refuses is refused where it is written, naming the field (render said only "concept
        # 'guitar' clamp strength 50" for a user's --set guitar=off, and a typical of 1e39 was a float32 traceback)
        (lambda d: d["concepts"]["guitar"].update(default={"mode": "clamp", "strength": 50}),
         "concept 'guitar': default clamp strength 50: expected a number in (0, 10]"),
        (lambda d: d["concepts"]["guitar"].update(default={"mode": "on", "strength": 1e300}),
         "concept 'guitar': default strength 1e+300: expected a finite number in [-100, 100]"),
        (lambda d: d["concepts"]["guitar"]["features"][0].update(typical=1e39), "features[0].typical: 1e+39; expected"),
        # a weight of 1e30 rendered clipped garbage without a word, 1e300 a NaN edit blamed on nothing in the bank
        (lambda d: d["concepts"]["guitar"]["features"][0].update(weight=1e30, typical=2.0),
         "features[0].weight 1e+30: weight x typical (2e+30) is what on:1 adds; expected at most 1e+06"),
        (lambda d: d["concepts"]["guitar"].update(steer={"threshold": 0.1, "features": [{"index": 3, "weight": -1e9}]}),
         "steer.features[0].weight -1e+09: weight x typical (1e+09)"),
        (lambda d: d["concepts"]["guitar"].update(alone={"memory_s": 1, "intercept": 0, "coef": [1], "threshold": 0.5,
                                                         "silence": [0.1, 1e300]}),
         "alone.silence[1]: 1e+300; expected a finite number in [-1000000.0, 1000000.0]"),
        (lambda d: d["concepts"].update({False: d["concepts"]["guitar"]}), "concept name False is not text"),
        # hunt 61: `$` matched before a final newline (nn~ then wrote a model nobody could load); a shortened sha
        # matched no model; a 400-digit integer was an OverflowError; a probe coefficient of 1e39 a float32 one
        (lambda d: d["concepts"].update({"guitar\n": d["concepts"].pop("guitar")}), "concept name 'guitar\\n'"),
        (lambda d: d["concepts"]["guitar"]["model"].update(sha256="0123abcd"),
         "model.sha256 '0123abcd'; expected 64 lowercase hex digits"),
        (lambda d: d["concepts"]["guitar"]["default"].update(strength=10**400),
         "default.strength: 1000000000000000000000000000000000000...; expected a finite number"),
        (lambda d: d["concepts"]["guitar"].update(probe={"intercept": 0.0, "coef": {12: 1e39}}),
         "probe.coef.12: 1e+39; expected a finite number in [-1000000000000.0, 1000000000000.0]"),
        (lambda d: d["concepts"]["guitar"].update(steer={"threshold": 0.1, "features": [{"index": 3}],
                                                         "spared": ["drums\n"]}), "steer.spared must be a list"),
    ],
)  # fmt: skip
def test_load_rejects_bad_fields_in_one_line(tmp_path, edit, needle):
    data = ConceptBank(tmp_path / "b.yaml", {"guitar": _concept(intervals=True)}).to_dict()
    edit(data)
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(UserError) as err:
        ConceptBank.load(tmp_path / "b.yaml")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "b.yaml").write_text("concepts: [unclosed\n")
    with pytest.raises(UserError, match="not a readable YAML"):
        ConceptBank.load(tmp_path / "b.yaml")
    with pytest.raises(UserError, match="no such concept bank"):
        ConceptBank.load(tmp_path / "none.yaml")
    assert len(ConceptBank.load(tmp_path / "none.yaml", missing_ok=True)) == 0
    with pytest.raises(UserError, match="not in"):
        ConceptBank(tmp_path / "x.yaml").get("guitar")


def test_failed_save_keeps_the_old_bank(tmp_path, monkeypatch):
    bank = ConceptBank(tmp_path / "b.yaml", {"guitar": _concept()})
    bank.save()
    before = (tmp_path / "b.yaml").read_text()
    bank.add(_concept("piano"))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr("sae.bank.os.replace", boom)
    with pytest.raises(OSError):
        bank.save()
    assert (tmp_path / "b.yaml").read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["b.yaml"]


def test_concept_list_cli(tmp_path, capsys):
    bank = ConceptBank(tmp_path / "b.yaml", {"guitar": _concept()})
    bank.save()
    assert main(["concept", "list", "--bank", str(tmp_path / "b.yaml")]) == 0
    out = capsys.readouterr().out
    assert "guitar" in out and "12, 3" in out and "0.97" in out and "demo_rave.ts" in out
    assert "SAE 0.97 " in out and "0.97 [" not in out and "clips 2" not in out  # an older bank: nothing invented
    ConceptBank(tmp_path / "b.yaml", {"guitar": _concept(intervals=True)}).save()
    assert main(["concept", "list", "--bank", str(tmp_path / "b.yaml")]) == 0
    out = capsys.readouterr().out
    assert "SAE 0.97 [0.93, 1.00]" in out and "dm 0.93 [0.86, 0.98]" in out and "clips 24/22" in out
    assert "│ tied " in out  # the verdict of the search, under the clips
    assert main(["concept", "list", "--bank", str(tmp_path / "missing.yaml")]) == 2


def test_steer_block_round_trips_and_bad_ones_are_named(tmp_path):
    from dataclasses import replace

    bank = ConceptBank(tmp_path / "concepts.yaml")
    steer = ConceptSteer(0.8, [ConceptFeature(12, 1.0, 1.7), ConceptFeature(40, 0.5, 0.9)], 0.3, 0.1, ("drums",))
    bank.add(replace(_concept(), steer=steer, default=ConceptDefault("clamp", 2.0)))
    bank.save()
    again = ConceptBank.load(tmp_path / "concepts.yaml").get("guitar")
    assert again.steer == steer and again.default.mode == "clamp"
    data = yaml.safe_load((tmp_path / "concepts.yaml").read_text())
    for bad, needle in [
        ({"threshold": 0.8}, "steer must be"),
        ({"threshold": -1, "features": [{"index": 1}]}, "steer.threshold"),
        ({"threshold": 1, "features": [{"index": 1}, {"index": 1}]}, "steer.features[1].index 1 appears twice"),
        ({"threshold": 1, "features": [{"index": 1}], "extra": 2}, "steer must be"),
        ({"threshold": 1, "features": [{"index": 1}], "spared": "drums"}, "steer.spared must be a list"),
    ]:
        data["concepts"]["guitar"]["steer"] = bad
        (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
        with pytest.raises(UserError) as err:
            ConceptBank.load(tmp_path / "bad.yaml")
        assert needle in str(err.value) and "\n" not in str(err.value)


def test_default_mode_is_none_in_code_and_in_files(tmp_path):
    """ConceptDefault() and a bank entry without `default` both start neutral (`none`), as documented."""
    assert ConceptDefault().mode == "none"
    data = _concept().to_dict()
    del data["default"]
    path = tmp_path / "b.yaml"
    path.write_text(yaml.safe_dump({"version": 1, "concepts": {"guitar": data}}))
    assert ConceptBank.load(path).get("guitar").default == ConceptDefault("none", 1.0)


def test_the_bank_pins_the_sae_weights_and_refuses_a_retrained_sae(tmp_path):
    """Re-saving the same weights keeps a concept valid; retraining the SAE in place makes it refuse to load."""
    import torch

    from sae.io import load_sae, sae_weights_sha256, save_sae
    from sae.model import SAEConfig, SparseAutoencoder

    torch.manual_seed(0)
    sae_dir = save_sae(SparseAutoencoder(SAEConfig(d_in=16, d_sae=64, k=4)), tmp_path / "sae" / "latent")
    identity = sae_weights_sha256(sae_dir)
    bank = ConceptBank(tmp_path / "concepts.yaml")
    c = _concept()
    c.sae_sha256 = identity
    bank.add(c)
    bank.save()
    bank = ConceptBank.load(bank.path)
    assert bank.get("guitar").sae_sha256 == identity
    bank.check_sae("guitar")  # the weights it was found with
    save_sae(load_sae(sae_dir), sae_dir, extra={"note": "re-saved"})  # same weights, another cfg.json
    assert sae_weights_sha256(sae_dir) == identity
    bank.check_sae("guitar")
    torch.manual_seed(1)  # "retrained in place": same shapes, other weights
    save_sae(SparseAutoencoder(SAEConfig(d_in=16, d_sae=64, k=4)), sae_dir)
    with pytest.raises(UserError, match=r"found with SAE weights [0-9a-f]{12}, but .* now holds"):
        bank.check_sae("guitar")
    old = _concept("old")  # a bank from before SAE identities: nothing to compare against
    assert old.sae_sha256 is None
    bank.add(old)
    bank.check_sae("old")


def test_commands_changing_one_bank_at_once_each_keep_what_the_others_wrote(tmp_path):
    """Two `concept find` on one bank: each loaded it at its start and saved it at its end, so the second save
    erased the first one's concept (and a `concept remove` meanwhile was undone)."""
    import threading

    path = tmp_path / "b.yaml"
    ConceptBank(path, {"guitar": _concept("guitar")}).save()
    started_late = ConceptBank.load(path)  # what a long find read at its start
    inside, go_on = threading.Event(), threading.Event()

    def slow_find() -> None:
        with ConceptBank.editing(path) as now:
            now.add(_concept("piano"))
            inside.set()
            go_on.wait(10)

    worker = threading.Thread(target=slow_find)
    worker.start()
    assert inside.wait(10)
    done = []
    other = threading.Thread(target=lambda: done.append(_add(path, "drums")))
    other.start()
    other.join(0.3)
    assert other.is_alive() and not done  # waits for the bank while the other holds it
    go_on.set()
    worker.join(10)
    other.join(10)
    assert list(ConceptBank.load(path).concepts) == ["guitar", "piano", "drums"]
    assert list(started_late.concepts) == ["guitar"]  # what it read first does not matter any more
    with pytest.raises(UserError, match="'bass': not in"), ConceptBank.editing(path) as now:
        now.remove("bass")
    assert list(ConceptBank.load(path).concepts) == ["guitar", "piano", "drums"]  # a failed change saves nothing


def _add(path, name: str) -> bool:
    with ConceptBank.editing(path) as now:
        now.add(_concept(name))
    return True


def test_a_concept_whose_edits_would_change_nothing_is_said_so():
    """`concept musicgen` wrote a concept whose every weight was 0 (no feature told it apart): every render with
    it, on:50 included, came out bit-identical to the plain one, and nothing said so; off, scale and clamp, which
    ignore the weights, do change the sound (hunt 77), so the note does not say every edit is a no-op."""
    from sae.bank import inert_note

    c = _concept()
    assert inert_note(c) is None
    c.features = [ConceptFeature(f.index, 0.0, f.typical) for f in c.features]
    assert "guitar at latent: every feature's weight is 0" in inert_note(c)
    assert "`on` changes nothing, and off, scale and clamp move features that do not mark it" in inert_note(c)
    c.steer = ConceptSteer(0.5, [ConceptFeature(40, 1.0, 0.9)])  # the features its edits move carry weight
    assert inert_note(c) is None


def test_yaml_numbers_a_person_writes_load_and_impossible_ones_are_named(tmp_path):
    """Hunt 61: YAML 1.1 reads `2e0` (no dot) as text, which a preset took and a bank refused; an integer of 5000
    digits was a ValueError traceback from Python's limit on reading one."""
    path = ConceptBank(tmp_path / "b.yaml", {"guitar": _concept()}).save()
    text = path.read_text()
    path.write_text(text.replace("default: {mode: 'off', strength: 1.0}", "default: {mode: 'on', strength: 2e0}"))
    assert ConceptBank.load(path).get("guitar").default == ConceptDefault("on", 2.0)
    path.write_text(text.replace("strength: 1.0}", "strength: " + "1" * 5000 + "}"))
    with pytest.raises(
        UserError, match=r"b.yaml: not a readable YAML concept bank \(Exceeds the limit \(4300 digits\)"
    ):
        ConceptBank.load(path)


def test_a_saved_bank_loads_again_when_rounding_meets_a_limit(tmp_path):
    """Hunt 61: weight 1.4999996 x typical 666666.7 (999999.8) is allowed; rounded to 6 digits on save it was
    1.5 x 666667 (1000000.5), and the bank that `concept remove` of another concept saved no longer loaded."""
    from dataclasses import replace

    edge = replace(_concept(), features=[ConceptFeature(12, 1.4999996, 666666.7)])
    bank = ConceptBank(tmp_path / "b.yaml", {"guitar": edge, "piano": _concept("piano")})
    bank.save()
    again = ConceptBank.load(tmp_path / "b.yaml")
    assert again.get("guitar").features == edge.features
    assert again.get("piano").features == _concept("piano").features  # others still rounded: 1.7, not 1.7000000476


def test_an_edit_through_a_link_waits_for_one_of_the_file_itself(tmp_path):
    """Hunt 61: the lock was on the link's folder while the save wrote through the link: an edit through a link
    and one of the real file ran at once, and one removal was lost."""
    import threading

    real = tmp_path / "real" / "b.yaml"
    real.parent.mkdir()
    ConceptBank(real, {"guitar": _concept("guitar"), "drums": _concept("drums")}).save()
    (tmp_path / "link").mkdir()
    (tmp_path / "link" / "b.yaml").symlink_to(real)
    inside, go_on = threading.Event(), threading.Event()

    def slow_remove() -> None:
        with ConceptBank.editing(real) as now:
            now.remove("drums")
            inside.set()
            go_on.wait(10)

    def remove_through_link() -> None:
        with ConceptBank.editing(tmp_path / "link" / "b.yaml") as now:
            now.remove("guitar")

    worker = threading.Thread(target=slow_remove)
    worker.start()
    assert inside.wait(10)
    other = threading.Thread(target=remove_through_link)
    other.start()
    other.join(0.3)
    assert other.is_alive()  # waits while the real file is being edited
    go_on.set()
    worker.join(10)
    other.join(10)
    assert list(ConceptBank.load(real).concepts) == [] and (tmp_path / "link" / "b.yaml").is_symlink()


def test_concept_list_spells_every_default_with_its_strength(tmp_path, capsys):
    """Hunt 61: a `clamp` default was listed as `clamp`, without its strength."""
    from dataclasses import replace

    bank = ConceptBank(tmp_path / "b.yaml", {"guitar": replace(_concept(), default=ConceptDefault("clamp", 2.5))})
    bank.add(replace(_concept("piano"), default=ConceptDefault("scale", 0.5)))
    bank.save()
    assert main(["concept", "list", "--bank", str(tmp_path / "b.yaml")]) == 0
    out = capsys.readouterr().out
    assert "clamp:2.5" in out and "scale:0.5" in out


def test_sae_paths_start_from_the_real_file_also_through_a_link(tmp_path):
    """Hunt 61: through a link, `relative_sae` wrote a path relative to the link's folder into the real file, and
    `sae_dir` read it from there: read from the file itself, it named a folder that does not exist."""
    from dataclasses import replace

    real = tmp_path / "project" / "b.yaml"
    ConceptBank(real).save()
    (tmp_path / "elsewhere").mkdir()
    link = tmp_path / "elsewhere" / "b.yaml"
    link.symlink_to(real)
    sae = tmp_path / "project" / "saes" / "latent"
    with ConceptBank.editing(link) as bank:
        bank.add(replace(_concept(), sae=bank.relative_sae(sae)))
    assert ConceptBank.load(real).get("guitar").sae == "saes/latent"
    for path in (real, link):
        assert ConceptBank.load(path).sae_dir("guitar").resolve() == sae.resolve()


def test_a_bank_saved_into_another_folder_still_points_at_its_sae(tmp_path):
    """Hunt 110: `save(path)` elsewhere kept the relative `sae` paths, which then pointed beside the copy."""
    (tmp_path / "a" / "demo_sae").mkdir(parents=True)
    c = _concept()
    c.sae = "demo_sae"
    bank = ConceptBank(tmp_path / "a" / "bank.yaml", {"guitar": c})
    bank.save(tmp_path / "b" / "deeper" / "bank.yaml")
    copy = ConceptBank.load(tmp_path / "b" / "deeper" / "bank.yaml")
    assert copy.get("guitar").sae == "../../a/demo_sae"
    assert copy.sae_dir("guitar").resolve() == (tmp_path / "a" / "demo_sae").resolve()
    bank.save()  # in its own folder: as written
    assert ConceptBank.load(tmp_path / "a" / "bank.yaml").get("guitar").sae == "demo_sae"
