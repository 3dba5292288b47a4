"""Files users bring or hand-edit, damaged: one line naming the file and what was expected, never a traceback."""

from __future__ import annotations

import json
import re

import pytest
import torch
import yaml

from sae.errors import UserError
from sae.io import load_sae, save_sae
from sae.model import SAEConfig, SparseAutoencoder
from sae.store import ActivationStore, ActivationWriter


def _sae(tmp_path):
    return save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4)), tmp_path / "sae")


def _store(tmp_path):
    root = tmp_path / "store"
    with ActivationWriter(root, "latent", 8, model={"name": "m"}) as w:
        w.add(torch.randn(40, 8), "a.wav")
    return root


@pytest.mark.parametrize("name", ["cfg.json", "store.json", "manifest.json"])
def test_a_json_file_of_binary_bytes_is_one_line(tmp_path, name):
    """A cfg.json, store.json or manifest.json holding binary bytes (a damaged copy, another file saved over it) was
    a UnicodeDecodeError traceback from every command that reads SAEs or stores."""
    if name == "cfg.json":
        path = _sae(tmp_path) / name
        path.write_bytes(b"\xff\xfe\x00\x01binary")
        with pytest.raises(UserError) as err:
            load_sae(path.parent)
    else:
        root = _store(tmp_path)
        path = root / name if name == "store.json" else root / "latent" / name
        path.write_bytes(b"\xff\xfe\x00\x01binary")
        with pytest.raises(UserError) as err:
            ActivationStore(root)
    assert str(path) in str(err.value) and "not UTF-8 text; expected JSON" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", ["cfg.json", "store.json"])
def test_a_json_integer_of_5000_digits_is_one_line(tmp_path, name):
    """Hunt 61: Python refuses to read an integer of more than 4300 digits with a ValueError, which was a
    traceback from every command reading the SAE or the store."""
    path = _sae(tmp_path) / name if name == "cfg.json" else _store(tmp_path) / name
    data = json.loads(path.read_text())
    path.write_text(json.dumps(data)[:-1] + ', "x": ' + "7" * 5000 + "}")
    with pytest.raises(UserError) as err:
        load_sae(path.parent) if name == "cfg.json" else ActivationStore(path.parent)
    assert str(path) in str(err.value) and "Exceeds the limit (4300 digits)" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("k", ["NaN", "Infinity", "-Infinity"])
def test_a_k_that_is_not_finite_is_one_line(tmp_path, k):
    """Python's json reads NaN and Infinity: `"k": NaN` in cfg.json was a ValueError / OverflowError traceback."""
    folder = _sae(tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["k"] = float(k.lower().replace("inity", ""))
    (folder / "cfg.json").write_text(json.dumps(cfg))  # writes NaN / Infinity, as a hand edit could
    with pytest.raises(UserError, match=r"cfg\.json: k=-?(nan|inf): expected a number >= 1") as err:
        load_sae(folder)
    assert "\n" not in str(err.value)


def test_a_null_training_setting_in_cfg_json_takes_the_default(tmp_path):
    """Hunt 110: `musicsae.config.aux_k: null` (a hand edit, another writer) was a TypeError traceback from every
    command loading the SAE; the settings only training reads take their defaults."""
    folder = _sae(tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    for key in ("aux_k", "aux_coef", "dead_tokens"):
        cfg["musicsae"]["config"][key] = None
    (folder / "cfg.json").write_text(json.dumps(cfg))
    sae = load_sae(folder)
    assert (sae.cfg.aux_coef, sae.cfg.dead_tokens) == (1.0 / 32.0, 1_000_000) and sae.cfg.aux_k >= 1


def _bank_text() -> str:
    from sae.bank import Concept, ConceptBank, ConceptDefault, ConceptFeature, ModelRef

    guitar = Concept("guitar", ModelRef("m.ts", "ab" * 32), "latent", "sae", [ConceptFeature(3)], ConceptDefault())
    drums = Concept("drums", ModelRef("m.ts", "ab" * 32), "latent", "sae", [ConceptFeature(5)], ConceptDefault())
    return yaml.safe_dump(ConceptBank("b.yaml", {"guitar": guitar, "drums": drums}).to_dict(), sort_keys=False)


def test_a_concept_given_twice_in_a_bank_is_refused_and_the_bank_kept(tmp_path, capsys):
    """A concept copied to make a variant and not renamed: PyYAML kept the last copy without a word, and the next
    command that saved the bank (`concept remove drums`) dropped the first one from the file for good."""
    from training.cli.main import main

    text = _bank_text()
    variant = text[text.index("  guitar:") : text.index("  drums:")].replace("mode: none", "mode: 'off'")
    bank = tmp_path / "b.yaml"
    bank.write_text(text + variant)
    before = bank.read_text()
    assert main(["concept", "remove", "--bank", str(bank), "drums"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"musicsae: error: {bank}: line ") and "\n" not in err
    assert "key 'guitar' given twice in one mapping (first at line 3)" in err
    assert bank.read_text() == before


def test_a_syntax_error_in_a_bank_names_its_line_and_column(tmp_path):
    """A tab in a hand-edited bank said only "(while scanning for the next token)": not where, nor what."""
    from sae.bank import ConceptBank

    (tmp_path / "b.yaml").write_text(_bank_text().replace("  drums:", "\tdrums:"))
    with pytest.raises(UserError) as err:
        ConceptBank.load(tmp_path / "b.yaml")
    line = 1 + _bank_text().splitlines().index("  drums:")
    assert f"b.yaml: not a readable YAML concept bank (line {line}, column 1: found character '\\t'" in str(err.value)


@pytest.mark.parametrize(("written", "read"), [("017", 15), ("1:10", 70), ("0x5", 5), ("1_1", 11)])
def test_a_feature_index_yaml_reads_other_than_written_is_refused(tmp_path, written, read):
    """Hunt 94: YAML 1.1 reads a zero-padded `017` as octal 15, `1:10` as base-60 70: a hand-edited bank steered
    another feature without a word."""
    from sae.bank import ConceptBank

    text = _bank_text()
    assert "- index: 3" in text
    (tmp_path / "b.yaml").write_text(text.replace("- index: 3", f"- index: {written}"))
    line = 1 + text.splitlines().index(next(x for x in text.splitlines() if "- index: 3" in x))
    with pytest.raises(UserError, match=rf"b\.yaml: line {line}: {written} reads as {read} in YAML") as err:
        ConceptBank.load(tmp_path / "b.yaml")
    assert "\n" not in str(err.value) and "plain decimal digits" in str(err.value)


@pytest.mark.parametrize(
    ("reader", "text"),
    [
        ("preset", "concepts: {guitar: {mode: 'off'}, guitar: {mode: 'on'}}\n"),
        ("preset", "mix: 0.5\nbypass: 0\nmix: 1.0\n"),
        ("jobs", "- {prompt: guitar, seed: 1}\n- {prompt: drums, seed: 2, prompt: bass}\n"),
        ("prompts", "prompts: [guitar]\nprompts: [drums]\n"),
    ],
    ids=["preset-concept", "preset-mix", "jobs", "prompts"],
)
def test_every_hand_written_yaml_refuses_a_key_given_twice(tmp_path, reader, text):
    """Presets, batch jobs and prompt lists kept the last of two equal keys without a word."""
    from realtime.controls import read_preset
    from training.musicgen.collect import read_prompts
    from training.musicgen.jobs import read_jobs

    path = tmp_path / "f.yaml"
    path.write_text(text)
    read = {
        "preset": read_preset,
        "jobs": lambda p: read_jobs(p, tmp_path / "out", 0, 1.0, []),
        "prompts": read_prompts,
    }[reader]
    with pytest.raises(UserError, match=r"f\.yaml: line \d+: key '\w+' given twice in one mapping") as err:
        read(path)
    assert "\n" not in str(err.value)


def test_yaml_merge_keys_may_still_be_overridden(tmp_path):
    """`<<: *base` then a key of its own is YAML's way to write a variant, not a key given twice."""
    from sae.yamlfile import parse_yaml

    text = "base: &b {mode: 'on', strength: 1}\nloud: {<<: *b, strength: 3}\n"
    assert parse_yaml(text, "p.yaml")["loud"] == {"mode": "on", "strength": 3}


@pytest.mark.parametrize(
    ("preset", "needle"),
    [
        ({"features": {1.7: 0.5}}, "preset feature 1.7: expected an integer index"),
        ({"features": {True: 0.5}}, "preset feature True: expected an integer index"),
        ({"concepts": {"guitar": {"strength": True}}}, "preset concept 'guitar': expected numbers"),
        ({"mix": True}, "preset mix True: expected a number in [0, 1]"),
        ({"concepts": {"guitar": {"strength": 10**400}}}, "preset concept 'guitar': expected numbers"),
        ({"mix": 10**400}, "preset mix 1000"),
        ({"features": {3: -(10**400)}}, "preset feature 3: expected an integer index and a number"),
    ],
    ids=[
        "fractional-feature",
        "boolean-feature",
        "boolean-strength",
        "boolean-mix",
        "huge-strength",
        "huge-mix",
        "huge-gain",
    ],
)
def test_a_preset_value_of_the_wrong_kind_is_refused_not_rounded(preset, needle):
    """`features: {1.7: 0.5}` (or a bare `yes:` key) set feature 1's gain; `strength: yes` and `mix: yes` were 1.0:
    int() and float() took them without a word."""
    from realtime.controls import Controls
    from sae.bank import Concept, ConceptDefault, ConceptFeature, ModelRef
    from sae.steering import EditState

    guitar = Concept("guitar", ModelRef("m.ts", "ab" * 32), "latent", "sae", [ConceptFeature(3)], ConceptDefault())
    controls = Controls(EditState.from_concepts(32, {"guitar": guitar}))
    before = controls.view()
    with pytest.raises(UserError, match=re.escape(needle)), controls.transaction() as draft:
        draft.load_preset(preset)
    assert controls.view() == before
    with controls.transaction() as draft:  # what a JSON round trip (live --reconnect) gives still loads
        draft.load_preset({"features": {"3": 0.5}, "concepts": {"guitar": {"gain": "2"}}})
    assert controls.view()["features"] == {3: 0.5} and controls.view()["concepts"]["guitar"]["gain"] == 2.0


def _two_hook_store(root) -> None:
    for hook in ("a", "b"):
        with ActivationWriter(root, hook, 4, dtype="float32", model={"name": "m.ts", "sha256": "ab"}) as w:
            w.add(torch.randn(300, 4) * (1 if hook == "a" else 50), "clip.wav")


MANIFEST_EDITS = {
    "a shard of another hook": (lambda m: m["shards"][0].update(file="../b/shard_00000.safetensors"),
                                r"shard 0: file '\.\./b/shard_00000\.safetensors': expected a file name in the hook"),
    "shards an object": (lambda m: m.update(shards={"a": 1}), r"shards is dict: expected a list"),
    "a file number": (lambda m: m["shards"][0].update(file=5), r"shard 0: file 5: expected a file name"),
    "negative rows": (lambda m: m["shards"][0].update(rows=-5), r"shard 0: rows -5: expected an integer >= 0"),
    "provenance a string": (lambda m: m["shards"][0].update(provenance="x"), r"shard 0: provenance: expected a list"),
    "provenance short": (lambda m: m["shards"][0]["provenance"][0].update(rows=100),
                         r"shard 0: provenance adds up to 100 rows, the shard holds 300"),
    "dim a string": (lambda m: m.update(dim="4"), r"dim '4': expected a positive integer"),
    "complete a string": (lambda m: m.update(complete="clip.wav"), r"complete: expected a list of source names"),
    "dtype a list": (lambda m: m.update(dtype=["float16"]), r"dtype \['float16'\], expected one of"),  # hunt 110
    # a shard listed twice (a manifest merged by hand) was read, trained on and counted twice (hunt 81)
    "a shard twice": (lambda m: m["shards"].append(dict(m["shards"][0])),
                      r"shard 1: file '.+' is shard 0 too; expected each shard once"),
}  # fmt: skip


@pytest.mark.parametrize("edit", MANIFEST_EDITS)
def test_a_hand_edited_manifest_is_one_line_naming_the_entry(tmp_path, edit):
    """A manifest edited by hand or damaged was read into a TypeError / AttributeError traceback, a misleading
    message, or, with a shard named in another hook's folder, another hook's rows: exit 0 and an FVU of 46."""
    change, needle = MANIFEST_EDITS[edit]
    _two_hook_store(tmp_path / "st")
    path = tmp_path / "st" / "a" / "manifest.json"
    m = json.loads(path.read_text())
    change(m)
    path.write_text(json.dumps(m))
    with pytest.raises(UserError, match=re.escape(str(path)) + ": " + needle):
        ActivationStore(tmp_path / "st")
    with pytest.raises(UserError, match=needle):  # and a collect appending to it
        ActivationWriter(tmp_path / "st", "a", 4, dtype="float32")


STORE_JSON_EDITS = [("model", "demo", "model is str: expected an object"),
                    ("collect", [1], "collect is list: expected an object"),
                    ("collect", {"rave": 5}, "collect.rave is int: expected an object"),  # hunt 89: a traceback
                    ("frame_rate", "fast", "frame_rate 'fast': expected a positive")]  # fmt: skip


@pytest.mark.parametrize(("key", "value", "needle"), STORE_JSON_EDITS)
def test_a_hand_edited_store_json_is_one_line(tmp_path, key, value, needle):
    """`"model": "demo"` was an AttributeError in sae train and the store description, `"collect": [1]` one in
    collect rave and the dashboard."""
    from sae.store import same_collect_settings

    _two_hook_store(tmp_path / "st")
    path = tmp_path / "st" / "store.json"
    info = json.loads(path.read_text())
    info[key] = value
    path.write_text(json.dumps(info))
    with pytest.raises(UserError, match=re.escape(f"{path}: {needle}")):
        ActivationStore(tmp_path / "st")
    with pytest.raises(UserError, match=re.escape(needle)):
        same_collect_settings(tmp_path / "st", "rave", {"audio": "x"})


def test_removing_from_a_missing_bank_is_one_line_and_makes_no_folder(tmp_path, capsys):
    from training.cli.main import main

    bank = tmp_path / "nowhere" / "b.yaml"
    assert main(["concept", "remove", "--bank", str(bank), "drums"]) == 2
    assert capsys.readouterr().err.strip() == f"musicsae: error: {bank}: no such concept bank"
    assert not bank.parent.exists()


def test_a_bare_off_in_a_hand_edited_bank_is_the_mode_off(tmp_path):
    """`default: {mode: off}` (unquoted: YAML 1.1's False) was refused as "default.mode False"; presets took it."""
    from sae.bank import ConceptBank

    text = _bank_text()
    assert "mode: none" in text
    bank = tmp_path / "b.yaml"
    bank.write_text(text.replace("mode: none", "mode: off", 1).replace("mode: none", "mode: on", 1))
    concepts = ConceptBank.load(bank).concepts
    assert (concepts["guitar"].default.mode, concepts["drums"].default.mode) == ("off", "on")
    # hunt 117: `default: off` (no mapping) was YAML's false, taken as "no default": mode none, without a word
    block = "    default:\n      mode: none\n      strength: 1.0\n"
    assert block in text
    for bare in ("off", "no", "false", "0", "''"):
        bank.write_text(text.replace(block, f"    default: {bare}\n", 1))
        with pytest.raises(UserError, match=r"concept 'guitar': default must be \{mode, strength\}") as err:
            ConceptBank.load(bank)
        assert ("YAML's false / true" in str(err.value)) == (bare in ("off", "no", "false"))
    bank.write_text(text.replace("    auroc: {}\n", "    auroc: off\n", 1))  # dropped as "no figures"
    with pytest.raises(UserError, match=r"concept 'guitar': auroc must be a mapping"):
        ConceptBank.load(bank)


@pytest.mark.parametrize("text", ["1_0", "\uff15", " 2 "])
def test_numbers_as_text_are_plain_decimals(text):
    """`on:1_0` was strength 10 and `on:５` (a full-width digit) 5: float() reads both; so did a preset's '1_0'."""
    from sae.steering import ConceptControl, preset_number

    if text.strip() == "2":
        assert ConceptControl.parse("g", f"on:{text}").strength == 2.0 and preset_number(text) == 2.0
        return
    with pytest.raises(UserError, match=f"concept 'g' mode 'on:{text}': expected a number after ':'"):
        ConceptControl.parse("g", f"on:{text}")
    with pytest.raises(TypeError):
        preset_number(text)


def test_a_bank_default_scale_without_its_gain_is_refused(tmp_path):
    """Hunt 140: `default: {mode: scale}` loaded as scale 1 (no edit), so live and nn~ started with a switch that did
    nothing, while `render --set guitar=scale` and `concept find --default scale` refuse that very setting."""
    from sae.bank import ConceptBank

    text = _bank_text()
    block = "    default:\n      mode: none\n      strength: 1.0\n"
    bank = tmp_path / "b.yaml"
    bank.write_text(text.replace(block, "    default:\n      mode: scale\n", 1))
    with pytest.raises(UserError, match=r"concept 'guitar': default \{mode: scale\}: expected strength G, the gain"):
        ConceptBank.load(bank)
    bank.write_text(text.replace(block, "    default:\n      mode: scale\n      strength: -0.5\n", 1))
    assert ConceptBank.load(bank).get("guitar").default.strength == -0.5


def test_a_file_nested_too_deeply_to_read_is_one_line(tmp_path):
    """Hunt 180: a bank, cfg.json or manifest with a value inside thousands of brackets ended in a RecursionError
    traceback; every JSON and YAML file goes through these two readers."""
    from sae.jsonfile import read_json_object
    from sae.yamlfile import parse_yaml

    (tmp_path / "cfg.json").write_text('{"note": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(UserError, match=r"cfg\.json: SAE config is not JSON this reads \(nested too deeply\)$"):
        read_json_object(tmp_path / "cfg.json", "SAE config")
    with pytest.raises(UserError, match=r"^bank\.yaml: not a concept bank \(nested too deeply to read\)$"):
        parse_yaml("concepts:\n  g: " + "[" * 5000 + "]" * 5000 + "\n", "bank.yaml", "a concept bank")


@pytest.mark.parametrize("seed", [2**70, -1, 1.5, "3", True])
def test_a_recorded_training_seed_out_of_range_is_one_line(tmp_path, seed):
    """Hunt 180: `musicsae.train_config.seed` past 2**63 (a hand edit, another tool) was a torch overflow traceback
    from `sae eval`, which draws its interval's resamples with it. A seed left out is fine (older SAEs)."""
    from sae.io import read_sae_cfg

    folder = _sae(tmp_path)
    cfg = json.loads((folder / "cfg.json").read_text())
    cfg["musicsae"]["train_config"] = {"seed": 3}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    assert read_sae_cfg(folder)["musicsae"]["train_config"]["seed"] == 3
    cfg["musicsae"]["train_config"] = {"seed": seed}
    (folder / "cfg.json").write_text(json.dumps(cfg))
    with pytest.raises(
        UserError, match=r"cfg\.json: musicsae\.train_config\.seed .*: expected an integer in \[0, 2\*\*63\)$"
    ):
        read_sae_cfg(folder)
    del cfg["musicsae"]["train_config"]["seed"]
    (folder / "cfg.json").write_text(json.dumps(cfg))
    assert read_sae_cfg(folder)["musicsae"]["train_config"] == {}


def test_an_sae_folder_whose_cfg_json_a_windows_editor_saved_loads_as_it_was(tmp_path):
    """Hunt 214: a cfg.json hand-edited in Windows Notepad (a UTF-8 BOM, CRLF) was refused as "not valid JSON
    (Unexpected UTF-8 BOM ...)", where a bank saved so loads."""
    save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4)), tmp_path / "sae")
    cfg = tmp_path / "sae" / "cfg.json"
    native = load_sae(tmp_path / "sae")
    cfg.write_bytes(b"\xef\xbb\xbf" + cfg.read_bytes().replace(b"\n", b"\r\n"))
    edited = load_sae(tmp_path / "sae")
    assert edited.cfg == native.cfg
    pairs = zip(edited.state_dict().values(), native.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)


def test_a_hook_name_set_at_the_top_of_a_saelens_cfg_is_the_one_every_reader_takes(tmp_path):
    """Hunt 214: a SAELens cfg.json whose user set the top-level `hook_name` (keeping SAELens' own under
    `metadata`) was read as one hook by `load_sae` and as the other by the model check and the dashboard."""
    from sae.io import cfg_hook

    save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4, hook_name="blocks.0.hook_resid_post")), tmp_path / "s")
    path = tmp_path / "s" / "cfg.json"
    cfg = json.loads(path.read_text())
    cfg["hook_name"] = "latent"
    path.write_text(json.dumps(cfg))
    assert load_sae(tmp_path / "s").cfg.hook_name == cfg_hook(cfg) == "latent"
