"""The generated site in a real browser: headless Chromium (Debian `chromium`) loads pages from file://,
with no console errors, every audio element loads its file, every image renders; a screenshot of the
index is kept under the pytest tmp dir."""

import json
import shutil

import pytest


def test_site_in_headless_chromium(built_site, tmp_path, browser):
    data = json.loads((built_site / "features.json").read_text())
    described = [f for f in data["features"] if f.get("clips")]
    feature = max(described, key=lambda f: len(f["clips"]))
    pages = {
        built_site / "index.html": 0,
        built_site / "features" / f"f{feature['index']:05d}.html": len(feature["clips"]),
        built_site / "concepts" / "bright.html": 0,
        built_site / "layers.html": 0,
    }
    for page, n_audio in pages.items():
        report, console = browser.load(page)
        browser.assert_clean(report, console, page, n_audio)
        if n_audio:
            assert len(report["images"]) == n_audio  # one spectrogram per clip
            assert all(a["duration"] == pytest.approx(1.5, abs=0.05) for a in report["audio"])
    shot = tmp_path / "index.png"
    r = browser.run((built_site / "index.html").as_uri(), f"--screenshot={shot}", "--window-size=1280,900")
    assert shot.is_file() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    print(f"index screenshot: {shot}")


def test_self_check_catches_broken_media(built_site, tmp_path, browser):
    """The check can fail: a missing snippet, a missing image and a script error are all reported."""
    site = tmp_path / "site"
    shutil.copytree(built_site, site)
    data = json.loads((site / "features.json").read_text())
    feature = next(f for f in data["features"] if f.get("clips"))
    (site / feature["clips"][0]["wav"]).unlink()
    (site / feature["clips"][0]["png"]).unlink()
    page = site / "features" / f"f{feature['index']:05d}.html"
    page.write_text(page.read_text().replace("</body>", "<script>undefinedFunction();</script></body>"))
    report, console = browser.load(page)
    assert any("undefinedFunction" in e for e in report["errors"])
    assert any(feature["clips"][0]["wav"] in e for e in report["errors"])
    assert any(im["naturalWidth"] == 0 for im in report["images"])
    assert any(a["error"] is not None or a["readyState"] == 0 for a in report["audio"])
    assert any("undefinedFunction" in ln for ln in console)


def test_index_filters_by_label_and_firing_rate(built_site, browser):
    """The index's label menu and firing-rate range (preset from the URL) show exactly the matching rows."""
    import re

    index = built_site / "index.html"
    row = r'<tr data-inrange="\d" data-page="\d" data-label="([^"]*)" data-rate="([^"]+)">'
    rows = re.findall(row, index.read_text())
    assert rows
    labels = sorted({lab for lab, _ in rows if lab})
    assert labels, "no feature with a top label"
    label = max(labels, key=lambda x: sum(lab == x for lab, _ in rows))
    rates = sorted(float(r) for _, r in rows)
    lo, hi = rates[len(rates) // 4], rates[3 * len(rates) // 4]
    cases = {
        "": len(rows),
        f"label={label}": sum(lab == label for lab, _ in rows),
        f"minrate={lo}&maxrate={hi}": sum(lo <= float(r) <= hi for _, r in rows),
        f"label={label}&minrate={hi}": sum(lab == label and float(r) >= hi for lab, r in rows),
    }
    assert len(set(cases.values())) > 1  # the filters are not all no-ops on this site
    for query, expected in cases.items():
        report, console = browser.load(index, query)
        browser.assert_clean(report, console, index)
        assert report["shown"] == expected, (query, report["shown"], expected)
