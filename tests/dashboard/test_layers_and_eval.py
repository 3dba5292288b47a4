"""Per-layer map from several SAE dirs + a bank, and before/after steering audio on concept pages."""

import json
import re
import shutil

import numpy as np
import pytest
import soundfile as sf

from sae.bank import Concept, ConceptBank, ConceptClips, ConceptFeature, ModelRef
from training.dashboard import DashboardConfig, build_dashboard
from training.dashboard.layers import concept_base, layer_rows, layer_table_html, plot_layers, sae_dirs_beside


def _layer_copy(src, dst, hook, fvu, l0, dead):
    shutil.copytree(src, dst)
    cfg = json.loads((dst / "cfg.json").read_text())
    cfg["metadata"]["hook_name"] = cfg["hook_name"] = hook
    (dst / "cfg.json").write_text(json.dumps(cfg))
    (dst / "metrics.json").write_text(json.dumps({"fvu": fvu, "l0": l0, "dead_fraction": dead}))


def test_layer_map(dash_inputs, tmp_path):
    root = tmp_path / "sae"
    root.mkdir()
    for i, (fvu, dead) in enumerate([(0.30, 0.1), (0.12, 0.0), (0.2, 0.05)]):
        _layer_copy(dash_inputs.sae, root / f"layer_{[2, 10, 6][i]}", f"layer_{[2, 10, 6][i]}", fvu, 4.0, dead)
    (root / "notes").mkdir()  # not an SAE dir: ignored
    m = json.loads((root / "layer_10" / "metrics.json").read_text())  # an SAE trained with held-out sources
    (root / "layer_10" / "metrics.json").write_text(json.dumps({**m, "fvu_interval": [0.101, 0.139]}))
    bank = ConceptBank(tmp_path / "bank.yaml")
    for name, hook, auc in [
        ("guitar.layer_2", "layer_2", 0.7),
        ("guitar_layer_10", "layer_10", 0.95),
        ("piano", "layer_6", 0.8),
        ("guitar.layer_99", "layer_99", 0.5),
    ]:
        sae = bank.relative_sae(root / hook)  # found with that layer's SAE
        bank.add(Concept(name, ModelRef("m", "0" * 64), hook, sae, [ConceptFeature(1)], auroc={"sae_probe": auc}))
    # hunt 75: a concept of layer_6 found with another SAE (another draw) was shown beside this one's FVU
    bank.add(
        Concept("drums", ModelRef("m", "0" * 64), "layer_6", "sae/x", [ConceptFeature(1)], auroc={"sae_probe": 0.6})
    )
    bank.concepts["guitar_layer_10"].auroc_interval = {"sae_probe": (0.9, 0.99)}  # a bank that records them
    bank.concepts["guitar_layer_10"].clips = ConceptClips(24, 22, 12)
    dirs = sae_dirs_beside(root / "layer_6")
    assert [d.name for d in dirs] == ["layer_10", "layer_2", "layer_6"]
    rows = layer_rows(dirs, bank)
    assert [r.hook for r in rows] == ["layer_2", "layer_6", "layer_10"]  # natural order
    assert [r.fvu for r in rows] == [0.30, 0.2, 0.12] and [r.dead for r in rows] == [0.1, 0.05, 0.0]
    assert rows[0].auroc == {"guitar": 0.7} and rows[1].auroc == {"piano": 0.8} and rows[2].auroc == {"guitar": 0.95}
    table = layer_table_html(rows)
    assert table.count("<tr>") == 4 and "AUROC guitar" in table and "AUROC piano" in table
    assert "0.95 [0.90, 0.99]" in table and "24 + 22 clips from 12 sources" in table and "95 % interval" in table
    assert "0.70</td>" in table and "0.70 [" not in table  # no interval in the bank: the point value alone
    assert ">0.120 [0.101, 0.139]</td>" in table and ">0.300</td>" in table  # the FVU's, where metrics.json has it
    # hunt 130: an SAE shipped with no metrics.json (the demo's) showed "–" though its cfg.json records them
    shipped = tmp_path / "shipped" / "layer_2"
    shutil.copytree(root / "layer_2", shipped)
    (shipped / "metrics.json").unlink()
    cfg = json.loads((shipped / "cfg.json").read_text())
    cfg["musicsae"] = {**cfg.get("musicsae", {}), "metrics": {"fvu": 0.31, "l0": 4.0, "dead_fraction": 0.125}}
    cfg["musicsae"]["train_config"] = {**cfg["musicsae"].get("train_config", {}), "eval_fraction": 0.2}
    (shipped / "cfg.json").write_text(json.dumps(cfg))
    assert [(r.fvu, r.l0, r.dead, r.on_training_rows) for r in layer_rows([shipped])] == [(0.31, 4.0, 0.125, False)]
    cfg["musicsae"]["train_config"] = {**cfg["musicsae"].get("train_config", {}), "eval_fraction": 0}
    (shipped / "cfg.json").write_text(json.dumps(cfg))  # trained on every row: its figures are training rows'
    assert layer_rows([shipped])[0].on_training_rows and "(train)" in layer_table_html(layer_rows([shipped]))
    png = plot_layers(rows, tmp_path / "layers.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert concept_base("guitar-l3", "l3") == "guitar" and concept_base("l3", "l3") == "l3"
    # the hook is read as every other reader reads it (sae.io.cfg_hook: the top-level field first)
    cfg = json.loads((root / "layer_6" / "cfg.json").read_text())
    cfg["metadata"]["hook_name"] = "layer_6_renamed_by_hand"
    (root / "layer_6" / "cfg.json").write_text(json.dumps(cfg))
    assert [r.hook for r in layer_rows(dirs, bank)] == ["layer_2", "layer_6", "layer_10"]
    # hunt 75: two folders of one hook were one row, the last folder's
    _layer_copy(dash_inputs.sae, root / "layer_6_again", "layer_6", 0.5, 4.0, 0.0)
    rows = layer_rows(sae_dirs_beside(root / "layer_6"), bank)
    assert [(r.hook, r.fvu) for r in rows] == [("layer_2", 0.3), ("layer_6 (layer_6)", 0.2),
                                               ("layer_6 (layer_6_again)", 0.5), ("layer_10", 0.12)]  # fmt: skip
    # `guitar` and `guitar_layer_2` of one layer were one column: the second's AUROC took the first's place
    sae = bank.relative_sae(root / "layer_2")
    bank.add(Concept("guitar", ModelRef("m", "0" * 64), "layer_2", sae, [ConceptFeature(2)], auroc={"sae_probe": 0.6}))
    row = next(r for r in layer_rows(dirs, bank) if r.hook == "layer_2")
    assert row.auroc == {"guitar.layer_2": 0.7, "guitar": 0.6}
    assert rows[1].auroc == {"piano": 0.8} and rows[2].auroc == {}  # piano was found with layer_6's SAE


def test_concept_page_with_steering_audio(dash_inputs, tmp_path):
    bank_dir = tmp_path / "run"
    bank_dir.mkdir()
    bank = ConceptBank(bank_dir / "concepts.yaml")
    for name in ("bright", "bright_two"):
        bank.add(
            Concept(
                name,
                ModelRef("logmel24", "0" * 64),
                "mel",
                bank.relative_sae(dash_inputs.sae),
                [ConceptFeature(5, 1.0, 2.0)],
                auroc={"sae_probe": 0.81, "diff_means": 0.7},
            )
        )
    bank.concepts["bright"].auroc_interval = {"sae_probe": (0.7, 0.9), "diff_means": (0.55, 0.83)}
    bank.concepts["bright"].clips = ConceptClips(20, 21, 9)  # grouped: 9 sources (hunt 193)
    bank.save()
    # the layout `musicsae demo` writes beside its bank: renders/*.wav and judge/judge.json
    tone = (0.1 * np.sin(np.arange(8000) / 8000 * 2 * np.pi * 440)).astype(np.float32)
    for name in (
        "renders/bright_clip_guitar_off.wav",
        "renders/bright_clip_original.wav",
        "renders/bright_clip_plain.wav",
        "renders/no_bright_clip_bright_on.wav",
        "renders/bright_two_clip_bright_two_off.wav",
        "renders/other_clip_on.wav",
        "judge/sub/bright-scale.wav",
        # hunt 75: one name in two folders was one file on the site, the last copied; hunt 93: so were two paths
        # that differ only where one has a / and the other a _
        "judge/sub_bright-scale.wav",
    ):
        (bank_dir / name).parent.mkdir(parents=True, exist_ok=True)
        sf.write(bank_dir / name, tone * (2 if "sub_" in name else 1), 8000)
    judge = {
        "concepts": {
            "bright": {
                "off_drop": 62.5,
                "none": {"with": 80.0, "without": 10.0},
                "goals_met": {"off_drop": True},
                "drift": {"off": {"x": 1.0}},
            }
        }
    }
    (bank_dir / "judge" / "judge.json").write_text(json.dumps(judge))
    out = tmp_path / "site"
    build_dashboard(
        dash_inputs.sae,
        dash_inputs.store,
        dash_inputs.audio_root,
        out,
        bank.path,
        None,
        cfg=DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0),
        progress=False,
    )
    page = (out / "concepts" / "bright.html").read_text()
    srcs = [s.split('"')[0] for s in page.split('<audio controls preload="metadata" src="')[1:]]
    modes = re.findall(r"<div><b>([^<]+)</b>", page)
    assert modes == ["original", "no edit", "off", "on", "scale", "scale"]
    assert [re.sub(r"_[0-9a-f]{8}\.wav$", "", s.rsplit("/", 1)[1]) for s in srcs] == [
        "eval_bright_renders_bright_clip_original",
        "eval_bright_renders_bright_clip_plain",
        "eval_bright_renders_bright_clip_guitar_off",
        "eval_bright_renders_no_bright_clip_bright_on",
        "eval_bright_judge_sub_bright-scale",
        "eval_bright_judge_sub_bright-scale",
    ]
    assert all((out / "concepts" / s).resolve().is_file() for s in srcs)
    peaks = [np.abs(sf.read(out / "concepts" / s)[0]).max() for s in srcs[-2:]]
    assert peaks[1] == pytest.approx(2 * peaks[0], rel=1e-3) and "judge/sub_bright-scale.wav" in page
    # the judge's numbers in words, never as raw JSON keys
    assert "bright can be taken out." in page and "Side effects" in page and "x, +1 with bright off" in page
    assert "off_drop" not in page and "none.with" not in page and "goals_met" not in page
    assert (
        "AUROC of 0.81 [0.70, 0.90] (in brackets its 95 % interval" in page
        and "means, reached 0.70 [0.55, 0.83]" in page
    )
    assert "on 20 clips with bright and 21 without from 9 sources" in page
    two = (out / "concepts" / "bright_two.html").read_text()
    assert (
        "AUROC of 0.81 (0.5" in two and "reached 0.70." in two and "clips with bright_two and" not in two
    )  # older bank
    assert "eval_bright_two_renders_bright_two_clip_bright_two_off_" in two and "clip_original" not in two
    index = (out / "index.html").read_text()
    assert 'href="concepts/bright.html"' in index and 'href="features/f00005.html"' in index
    # hunt 153: a site built inside renders/ found its own copies as renders, twice as many at every rebuild
    inside = bank_dir / "renders" / "site"
    for _ in range(2):
        build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, inside, bank.path, None,
                        cfg=DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0), progress=False)  # fmt: skip
    again = (inside / "concepts" / "bright.html").read_text()
    assert re.findall(r'<audio controls preload="metadata" src="[^"]*/([^"/]+)_[0-9a-f]{8}\.wav"', again) == [
        re.sub(r"_[0-9a-f]{8}\.wav$", "", s.rsplit("/", 1)[1]) for s in srcs
    ]


def test_progress_off_a_terminal_prints_no_empty_line(dash_inputs, tmp_path, capfd):
    """Piped (`just demo | tee`), the site's progress bars say nothing: rich's transient bar left an empty line."""
    build_dashboard(
        dash_inputs.sae,
        dash_inputs.store,
        dash_inputs.audio_root,
        tmp_path / "site",
        None,
        None,
        cfg=DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0),
    )
    out, err = capfd.readouterr()
    assert "" not in (out + err).splitlines()


def test_a_broken_sibling_sae_or_evaluation_file_is_noted_not_fatal(dash_inputs, tmp_path):
    """A damaged cfg.json in a folder beside --sae (read only for the per-layer map) stopped the whole build at its
    end; a judge.json whose values were of the wrong kind was a traceback."""
    saes = tmp_path / "saes"
    shutil.copytree(dash_inputs.sae, saes / "mel")
    (saes / "broken").mkdir()
    (saes / "broken" / "cfg.json").write_text('{"d_in": 4,')
    # hunt 157: a sibling of the same hook whose weights are cut short failed the build as it ended
    shutil.copytree(dash_inputs.sae, saes / "cut")
    weights = saes / "cut" / "sae_weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    from sae.io import sae_weights_sha256

    bank = ConceptBank(tmp_path / "run" / "concepts.yaml")
    bank.add(Concept("bright", ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(saes / "mel"),
                     [ConceptFeature(5, 1.0, 2.0)], auroc={"sae_probe": 0.81},
                     sae_sha256=sae_weights_sha256(saes / "mel")))  # fmt: skip
    bank.save()
    (tmp_path / "run" / "judge").mkdir()
    judge = {"concepts": {"bright": {"none": {"with": 50}, "off": {"with": "x"}, "drift": {"on": {"bar": "big"}}}}}
    (tmp_path / "run" / "judge" / "judge.json").write_text(json.dumps(judge))
    cut = tmp_path / "run" / "judge" / "holdout_font" / "judge.json"  # a copy cut short: skipped without a word
    cut.parent.mkdir()
    cut.write_text(json.dumps(judge)[:40])
    out = tmp_path / "site"
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0)
    build_dashboard(saes / "mel", dash_inputs.store, dash_inputs.audio_root, out, bank.path, None, cfg=cfg,
                    progress=False)  # fmt: skip
    notes = json.loads((out / "features.json").read_text())["warnings"]
    assert any(n.startswith("per-layer map: left out broken (") for n in notes), notes
    assert any(n.startswith("per-layer map: the concepts of cut left out (") for n in notes), notes
    assert any(n.startswith(f"{tmp_path / 'run' / 'judge' / 'judge.json'}: unexpected contents (") for n in notes)
    assert sum(n.startswith(f"{cut}: unreadable (JSONDecodeError: ") for n in notes) == 1  # once, not per concept
    assert "Concept bright" in (out / "concepts" / "bright.html").read_text()
    assert ">mel (mel)<" in (out / "layers.html").read_text()  # two folders of hook mel: each named


def test_a_verdict_judged_on_another_sae_is_noted_and_left_out(dash_inputs, tmp_path):
    """A concept found again on a new SAE beside the judge/ folder of the one before: the page showed the earlier
    SAE's verdict as this concept's (hunt 75's doubt). The judge records its SAE's weights; another's is left out.
    So is a verdict on the same SAE of another edit (the concept found again with other features)."""
    from sae.bank import edit_sha256
    from sae.io import sae_weights_sha256

    bank = ConceptBank(tmp_path / "run" / "concepts.yaml")
    bank.add(Concept("bright", ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(dash_inputs.sae),
                     [ConceptFeature(5, 1.0, 2.0)], sae_sha256=sae_weights_sha256(dash_inputs.sae)))  # fmt: skip
    bank.save()
    (tmp_path / "run" / "judge").mkdir()
    verdict = {"off_drop": 62.5, "none": {"with": 80.0, "without": 10.0}, "goals_met": {"off_drop": True},
               "drift": {"off": {"x": 1.0}}}  # fmt: skip
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0)
    own = sae_weights_sha256(dash_inputs.sae)
    other_edit = {**verdict, "edit_sha256": "cd" * 32}
    for judge, shown in (
        ({"sae_sha256": "ab" * 32, "concepts": {"bright": verdict}}, False),  # RAVE's judge: one SAE
        ({"concepts": {"bright": {**verdict, "sae_sha256": "ab" * 32}}}, False),  # MusicGen's: each concept's
        ({"sae_sha256": own, "concepts": {"bright": verdict}}, True),
        ({"sae_sha256": own, "concepts": {"bright": other_edit}}, False),
        (
            {"sae_sha256": own, "concepts": {"bright": {**verdict, "edit_sha256": edit_sha256(bank.get("bright"))}}},
            True,
        ),
    ):
        (tmp_path / "run" / "judge" / "judge.json").write_text(json.dumps(judge))
        out = tmp_path / f"site_{len(list(tmp_path.glob('site_*')))}"
        build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, bank.path, None, cfg=cfg,
                        progress=False)  # fmt: skip
        page = (out / "concepts" / "bright.html").read_text()
        notes = json.loads((out / "features.json").read_text())["warnings"]
        assert ("bright can be taken out." in page) == shown
        other_sae = any("judged bright with SAE weights abababababab, not the bank's" in n for n in notes)
        other = any("judged another edit of bright (its features or steering have changed since" in n for n in notes)
        assert other_sae + other == (not shown)


def test_two_concepts_sharing_features_get_one_page_each_and_a_small_clip_range_reads_as_set(dash_inputs, tmp_path):
    """Two concepts sharing features 5 and 7 with --max-pages 1 gave 4 feature pages (the shared ones counted twice
    against the pages), and --clip-range 0.005,0.25 read "0%–25% of clips" on the index (hunt 83)."""
    from sae.io import sae_weights_sha256

    bank = ConceptBank(tmp_path / "concepts.yaml")
    for name in ("bright", "brighter"):
        bank.add(Concept(name, ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(dash_inputs.sae),
                         [ConceptFeature(5, 1.0, 2.0), ConceptFeature(7, 0.5, 1.0)],
                         sae_sha256=sae_weights_sha256(dash_inputs.sae)))  # fmt: skip
    bank.save()
    out = tmp_path / "site"
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0, clip_range=(0.005, 0.25))
    build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, bank.path, None, cfg=cfg,
                    progress=False)  # fmt: skip
    assert sorted(p.name for p in (out / "features").iterdir() if p.suffix == ".html") == ["f00005.html", "f00007.html"]
    index = (out / "index.html").read_text()
    assert "0.50 %–25.0 %" in index and "0%–25%" not in index


def test_concepts_are_this_saes_by_its_weights_not_by_a_folder_that_is_gone(dash_inputs, tmp_path):
    """A concept of other weights whose SAE folder is gone stopped the whole build ("... now holds ...: retrained
    or replaced?", about a folder it never named), and a concept found with a copy of this SAE had no page
    (hunt 83). Ownership is by the weights each concept records now."""
    from sae.io import sae_weights_sha256

    copy = tmp_path / "copy_of_mel"
    shutil.copytree(dash_inputs.sae, copy)
    bank = ConceptBank(tmp_path / "concepts.yaml")
    sha = sae_weights_sha256(dash_inputs.sae)
    bank.add(Concept("old", ModelRef("logmel24", "0" * 64), "mel", "gone_sae", [ConceptFeature(5, 1.0, 2.0)],
                     sae_sha256="cd" * 32))  # fmt: skip
    bank.add(Concept("bright", ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(copy),
                     [ConceptFeature(7, 1.0, 2.0)], sae_sha256=sha))  # fmt: skip
    bank.save()
    out = tmp_path / "site"
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0)
    build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, bank.path, None, cfg=cfg,
                    progress=False)  # fmt: skip
    assert sorted(p.name for p in (out / "concepts").glob("*.html")) == ["bright.html"]
    notes = json.loads((out / "features.json").read_text())["warnings"]
    assert any("1 concept(s) of" in n and "belong to other SAEs, not shown: old (mel, SAE gone_sae)" in n
               for n in notes), notes  # fmt: skip


def _bright_of_this_sae(dash_inputs, tmp_path) -> tuple[ConceptBank, str, dict]:
    """A bank (run/concepts.yaml) of one concept, bright, found with the inputs' SAE; the SAE's weights sha256; and
    a judge's verdict on bright as `eval steering` writes one."""
    from sae.io import sae_weights_sha256

    own = sae_weights_sha256(dash_inputs.sae)
    bank = ConceptBank(tmp_path / "run" / "concepts.yaml")
    bank.add(Concept("bright", ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(dash_inputs.sae),
                     [ConceptFeature(5, 1.0, 2.0)], sae_sha256=own))  # fmt: skip
    bank.save()
    verdict = {"off_drop": 62.5, "none": {"with": 80.0, "without": 10.0}, "goals_met": {"off_drop": True},
               "drift": {"off": {"x": 1.0}}}  # fmt: skip
    return bank, own, verdict


def test_the_listening_examples_of_a_judge_left_out_are_not_shown_and_a_valid_verdict_stays(dash_inputs, tmp_path):
    """A listen.json beside a judge.json of another SAE's concept was shown as this concept's, and the verdict of a
    valid judge in another folder was hidden meanwhile (hunt 83)."""
    bank, own, verdict = _bright_of_this_sae(dash_inputs, tmp_path)
    old, new = tmp_path / "run" / "judge", tmp_path / "run" / "eval"
    (old / "listen").mkdir(parents=True)
    new.mkdir()
    (old / "judge.json").write_text(json.dumps({"sae_sha256": "ab" * 32, "concepts": {"bright": verdict}}))
    rows = [{"clip": "c0.wav", "files": {"original": "c0_original.wav"}}]
    (old / "listen" / "listen.json").write_text(json.dumps({"concepts": {"bright": {"rows": rows}}}))
    (new / "judge.json").write_text(json.dumps({"sae_sha256": own, "concepts": {"bright": verdict}}))
    out = tmp_path / "site"
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0)
    build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, bank.path, None, cfg=cfg,
                    progress=False)  # fmt: skip
    page = (out / "concepts" / "bright.html").read_text()
    notes = json.loads((out / "features.json").read_text())["warnings"]
    assert "bright can be taken out." in page  # the valid verdict, from eval/
    assert any(n.startswith(f"{old / 'listen' / 'listen.json'}: listening examples of the judge ") for n in notes)


def test_a_left_out_judges_listening_examples_do_not_hide_a_valid_ones(dash_inputs, tmp_path):
    """Only the first listen.json with rows for the concept was looked at: one beside a judge left out (another
    SAE's) hid the valid one of a later folder (hunt 84)."""
    bank, own, verdict = _bright_of_this_sae(dash_inputs, tmp_path)
    clip = sorted(dash_inputs.audio_root.glob("*.wav"))[0]
    for folder, sha in (("a_old", "ab" * 32), ("b_new", own)):
        d = tmp_path / "run" / "judge" / folder
        (d / "listen").mkdir(parents=True)
        (d / "judge.json").write_text(json.dumps({"sae_sha256": sha, "concepts": {"bright": verdict}}))
        for kind in ("original", "model", "off", "on"):
            shutil.copy(clip, d / "listen" / f"c0_{kind}.wav")
        files = {kind: f"c0_{kind}.wav" for kind in ("original", "model", "off", "on")}
        rows = [{"clip": "c0.wav", "files": files, "with": True, "judge_index": 0}]
        (d / "listen" / "listen.json").write_text(json.dumps({"concepts": {"bright": {"rows": rows}}}))
    out = tmp_path / "site"
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0)
    build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, bank.path, None, cfg=cfg,
                    progress=False)  # fmt: skip
    assert "audio/listen/bright" in (out / "concepts" / "bright.html").read_text()
    notes = json.loads((out / "features.json").read_text())["warnings"]
    assert next(n for n in notes if "listening examples" in n).startswith(str(tmp_path / "run" / "judge" / "a_old"))


def test_concept_pages_sort_numbers_as_numbers_and_the_in_range_filter_counts_as_the_header(
    tmp_path, dash_inputs, built_site
):
    """Hunt 93: the concept page's "clips fired" cells ("8.33 %") and feature cells ("#12") sorted as text, and with
    `--clip-range 0,X` a dead feature a concept uses was marked in range, one row more than the header counted."""
    data = json.loads((built_site / "features.json").read_text())
    live = {f["index"] for f in data["features"] if f["frame_rate"] > 0}
    dead = next(j for j in range(data["d_sae"]) if j not in live)
    bank = ConceptBank(tmp_path / "concepts.yaml")
    features = [ConceptFeature(dead, 1.0, 2.0), *(ConceptFeature(j, 1.0, 2.0) for j in sorted(live)[:3])]
    bank.add(Concept("bright", ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(dash_inputs.sae), features))
    bank.save()
    out = tmp_path / "site"
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0, clip_range=(0.0, 0.25))
    build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, bank.path, None, cfg=cfg,
                    progress=False)  # fmt: skip
    index = (out / "index.html").read_text()
    assert index.count('data-inrange="1"') == int(re.search(r"(\d+) fire on", index).group(1))
    page = (out / "concepts" / "bright.html").read_text()
    assert len(re.findall(r'<tr><td data-v="\d+">', page)) == len(features)
    assert len(re.findall(r'<td class="num" data-v="[^"]+">[^<]* %</td>', page)) == len(features)


def test_a_prompts_words_are_words_in_any_script():
    """Hunt 93: 'café' was the label 'caf', 'Ölgemälde' three pieces, and 'chill' in quotes kept its quote."""
    from training.dashboard.site import prompt_words

    assert prompt_words("café piano") == {"café", "piano"}
    assert prompt_words("lofi beat, 'chill' #2") == {"lofi", "beat", "chill"}
    assert "ölgemälde" in prompt_words("Ölgemälde über Musik")
    assert prompt_words("rock 'n' roll") == {"rock", "roll"}


def test_a_clip_range_no_feature_fires_in_is_said(dash_inputs, tmp_path):
    """Hunt 141: with no live feature in --clip-range the pages described every live feature by activation, and
    nothing said so (the index still read "0 fire on 30.0 %–31.0 % of clips" above them)."""
    out = tmp_path / "site"
    cfg = DashboardConfig(top_n=1, max_pages=2, snippet_seconds=1.0, clip_range=(0.31, 0.34))  # 20 clips: none
    build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, None, None, cfg=cfg,
                    progress=False)  # fmt: skip
    index = (out / "index.html").read_text()
    said = "no live feature fires on 31.0 %–34.0 % of clips (--clip-range): the pages describe the live features"
    assert said in index
    assert len([p for p in (out / "features").iterdir() if p.suffix == ".html"]) == 2


def test_listening_examples_whose_files_are_gone_do_not_hide_a_later_table_or_the_renders(dash_inputs, tmp_path):
    """Hunt 173: the first listen.json with rows for the concept was taken even where no row's files were there (an
    empty table, said nowhere): a later judge's whole table, and without one the before/after renders, were hidden."""
    bank, own, verdict = _bright_of_this_sae(dash_inputs, tmp_path)
    clip = sorted(dash_inputs.audio_root.glob("*.wav"))[0]
    kinds = ("original", "model", "off", "on")
    for folder in ("a_gone", "b_whole"):
        d = tmp_path / "run" / "judge" / folder
        (d / "listen").mkdir(parents=True)
        (d / "judge.json").write_text(json.dumps({"sae_sha256": own, "concepts": {"bright": verdict}}))
        if folder == "b_whole":
            for kind in kinds:
                shutil.copy(clip, d / "listen" / f"c0_{kind}.wav")
        rows = [{"clip": "c0.wav", "files": {k: f"c0_{k}.wav" for k in kinds}, "with": True, "judge_index": 0}]
        (d / "listen" / "listen.json").write_text(json.dumps({"concepts": {"bright": {"rows": rows}}}))
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0)
    for site, whole in (("site", True), ("site_gone", False)):
        if not whole:
            shutil.rmtree(tmp_path / "run" / "judge" / "b_whole" / "listen")
        build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, tmp_path / site, bank.path, None,
                        cfg=cfg, progress=False)  # fmt: skip
        page = (tmp_path / site / "concepts" / "bright.html").read_text()
        notes = json.loads((tmp_path / site / "features.json").read_text())["warnings"]
        gone = tmp_path / "run" / "judge" / "a_gone" / "listen" / "listen.json"
        assert f"{gone}: no listening example of bright has its audio files there; not shown" in notes, notes
        assert ("audio/listen/bright" in page) == whole, site


def test_a_listening_example_cut_short_or_a_listen_json_of_another_shape_is_noted_not_fatal(dash_inputs, tmp_path):
    """A 0-byte listening example stopped the whole build ("not a readable audio file"), and a listen.json whose
    "concepts" was a list was an AttributeError traceback (hunt 153)."""
    bank, own, verdict = _bright_of_this_sae(dash_inputs, tmp_path)
    clip = sorted(dash_inputs.audio_root.glob("*.wav"))[0]
    kinds = ("original", "model", "off", "on")
    for folder, concepts in (("a_list", ["bright"]), ("b_cut", None)):
        d = tmp_path / "run" / "judge" / folder
        (d / "listen").mkdir(parents=True)
        (d / "judge.json").write_text(json.dumps({"sae_sha256": own, "concepts": {"bright": verdict}}))
        for kind in kinds:
            shutil.copy(clip, d / "listen" / f"c0_{kind}.wav")
        rows = [{"clip": "c0.wav", "files": {k: f"c0_{k}.wav" for k in kinds}, "with": True, "judge_index": 0}]
        listen = {"concepts": concepts or {"bright": {"rows": rows}}}
        (d / "listen" / "listen.json").write_text(json.dumps(listen))
    cut = tmp_path / "run" / "judge" / "b_cut" / "listen" / "c0_on.wav"
    cut.write_bytes(b"")
    out = tmp_path / "site"
    cfg = DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0)
    build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, bank.path, None, cfg=cfg,
                    progress=False)  # fmt: skip
    notes = json.loads((out / "features.json").read_text())["warnings"]
    assert any(n.startswith(f"{cut.parent / 'listen.json'} / ") and str(cut) in n and "not a readable audio file" in n
               and n.endswith("its section is left out") for n in notes), notes  # fmt: skip
    assert "bright can be taken out." in (out / "concepts" / "bright.html").read_text()  # the verdicts stay


def test_a_render_deep_in_folders_gets_a_site_name_a_file_system_takes(dash_inputs, tmp_path):
    """Hunt 166: a render's whole path became one site file name: folders each well under 255 bytes made a name
    over it ("File name too long"), and the whole build stopped after all its work."""
    from training.dashboard.render import SITE_NAME_MOST, site_name

    bank_dir = tmp_path / "run"
    bank_dir.mkdir()
    bank = ConceptBank(bank_dir / "concepts.yaml")
    bank.add(Concept("bright", ModelRef("logmel24", "0" * 64), "mel", bank.relative_sae(dash_inputs.sae),
                     [ConceptFeature(5, 1.0, 2.0)], auroc={"sae_probe": 0.81}))  # fmt: skip
    bank.save()
    deep = bank_dir / "eval" / ("evening_rehearsal_with_the_new_interface_" * 3) / ("sweep_" * 30) / "take_2"
    deep.mkdir(parents=True)
    sf.write(deep / "bright_off.wav", (0.1 * np.sin(np.arange(8000) / 20)).astype(np.float32), 8000)
    out = tmp_path / "site"
    build_dashboard(dash_inputs.sae, dash_inputs.store, dash_inputs.audio_root, out, bank.path, None,
                    cfg=DashboardConfig(top_n=1, max_pages=1, snippet_seconds=1.0), progress=False)  # fmt: skip
    page = (out / "concepts" / "bright.html").read_text()
    srcs = [s.split('"')[0] for s in page.split('<audio controls preload="metadata" src="')[1:]]
    assert len(srcs) == 1 and (out / "concepts" / srcs[0]).resolve().is_file(), srcs
    assert len(srcs[0].rsplit("/", 1)[1].encode()) <= 255
    a, b = site_name("x" * 300 + "a.wav"), site_name("x" * 300 + "b.wav")
    assert a != b and a.endswith(".wav") and len(a.encode()) == SITE_NAME_MOST  # cut, still one name each
    assert len(site_name("é" * 120 + ".wav").encode()) <= SITE_NAME_MOST and site_name("a#b.wav") == "a_b.wav"
