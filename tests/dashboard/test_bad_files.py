"""A damaged file beside an SAE the dashboard reads: shown as missing, never a traceback."""

from __future__ import annotations

import pytest

from sae.errors import UserError
from sae.io import save_sae
from sae.model import SAEConfig, SparseAutoencoder
from training.dashboard.layers import layer_rows, layer_table_html


@pytest.mark.parametrize(
    "metrics",
    [b"[1, 2]", b'{"fvu": "0.1", "l0": [8], "dead_fraction": null}', b"\xff\xfe\x00", b'{"fvu": NaN}'],
    ids=["a-list", "wrong-types", "binary", "nan"],
)
def test_a_damaged_metrics_json_shows_as_missing(tmp_path, metrics):
    """metrics.json (optional: an SAE trained elsewhere has none) holding a list, strings or binary bytes was an
    AttributeError / ValueError / UnicodeDecodeError traceback from `musicsae dashboard`, for the SAE given and for
    every SAE folder beside it."""
    sae = save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4, hook_name="latent")), tmp_path / "latent")
    (sae / "metrics.json").write_bytes(metrics)
    (row,) = layer_rows([sae])
    assert (row.fvu, row.l0, row.dead, row.fvu_interval) == (None, None, None, None)
    assert '<td class="num">–</td>' in layer_table_html([row])


def test_a_manifest_saved_by_a_spreadsheet_is_read(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte order mark: `--manifest` refused it with "expected rows with a 'file'
    column", which it has."""
    from training.dashboard.labels import read_manifest

    (tmp_path / "m.csv").write_bytes("\ufefffile,guitar\r\nc0.wav,1\r\nc1.wav,0\r\n".encode())
    assert read_manifest(tmp_path / "m.csv") == [{"file": "c0.wav", "guitar": "1"}, {"file": "c1.wav", "guitar": "0"}]
    (tmp_path / "m.jsonl").write_bytes('\ufeff{"file": "c0.wav"}\n'.encode())
    assert read_manifest(tmp_path / "m.jsonl") == [{"file": "c0.wav"}]
    (tmp_path / "M.CSV").write_text("file,guitar\nc0.wav,1\n")  # hunt 166: read as JSON lines, "Expecting value"
    assert read_manifest(tmp_path / "M.CSV") == [{"file": "c0.wav", "guitar": "1"}]


@pytest.mark.parametrize("row", ['{"file": null}', '{"file": 3}', '{"file": ""}', '{"file": "a\\u0000b.wav"}'])
def test_a_manifest_row_whose_file_is_no_name_is_one_line(tmp_path, row):
    """`"file": null` was a TypeError traceback (PosixPath / NoneType) when the dashboard matched the rows (hunt 83);
    a NUL in it, realpath's ValueError (hunt 166)."""
    from training.dashboard.labels import read_manifest

    (tmp_path / "m.jsonl").write_text('{"file": "c0.wav"}\n' + row + "\n")
    with pytest.raises(UserError, match=r"^manifest .*m\.jsonl: row 2: file .*; expected a file name$"):
        read_manifest(tmp_path / "m.jsonl")


def test_an_fvu_on_the_training_rows_is_not_shown_as_held_out(tmp_path):
    """`sae train --eval-fraction 0` measures on its training rows (`split: train`); the layer map showed that FVU
    under "FVU: on the held-out clips" (hunt 83)."""
    import json

    sae = save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4, hook_name="latent")), tmp_path / "latent")
    for split, marked in (("train", True), ("eval", False)):
        (sae / "metrics.json").write_text(json.dumps({"fvu": 0.25, "l0": 4.0, "dead_fraction": 0.1, "split": split}))
        (row,) = layer_rows([sae])
        assert ('0.250 <span class="small muted">(train)</span>' in layer_table_html([row])) == marked


def test_a_spreadsheets_empty_last_row_is_no_row():
    """A spreadsheet's CSV often ends with an empty row (","): it is no clip, not a row whose file is no name."""
    import tempfile
    from pathlib import Path

    from training.dashboard.labels import read_manifest

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "m.csv").write_text("file,guitar\nc0.wav,1\nc1.wav,0\n,\n")
        assert [r["file"] for r in read_manifest(Path(tmp) / "m.csv")] == ["c0.wav", "c1.wav"]


def test_a_sibling_folder_that_cannot_be_opened_is_no_sae(tmp_path, monkeypatch):
    """A folder beside --sae this user may not open (another's, in /tmp) stopped the build at its end: Python 3.11's
    Path.is_file raises PermissionError there (hunt 153). Injected, as root opens every folder."""
    from pathlib import Path

    from training.dashboard.layers import sae_dirs_beside

    sae = save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4, hook_name="latent")), tmp_path / "latent")
    (tmp_path / "private").mkdir()
    real = Path.is_file

    def is_file(self):
        if self.parent.name == "private":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    monkeypatch.setattr("os.path.isfile", lambda p: Path(p).parent.name != "private" and real(Path(p)))
    assert sae_dirs_beside(sae) == [sae.resolve()]


def test_a_concept_named_with_a_leading_underscore_has_its_legend_entry(tmp_path, monkeypatch):
    """matplotlib leaves out of a legend a line whose label starts with "_": `_bass` (a valid concept name) was
    drawn on the per-layer AUROC plot with no entry (hunt 153)."""
    from training.dashboard import layers

    sae = save_sae(SparseAutoencoder(SAEConfig(d_in=8, d_sae=32, k=4, hook_name="latent")), tmp_path / "latent")
    (row,) = layer_rows([sae])
    row.auroc, row.interval = {"_bass": 0.8, "guitar": 0.7}, {"_bass": (0.7, 0.9)}
    figs = []
    monkeypatch.setattr(layers, "save_png", lambda fig, path: figs.append(fig))
    layers.plot_layers([row], tmp_path / "layers.png")
    assert [t.get_text() for t in figs[0].axes[3].get_legend().get_texts()] == ["_bass", "guitar"]
