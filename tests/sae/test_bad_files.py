"""Files users bring or hand-edit, damaged: one line naming the file and what was expected, never a traceback."""

from __future__ import annotations

import json

import pytest
import torch

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
