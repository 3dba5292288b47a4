"""The site's stylesheet and script (written to OUT/assets/)."""

STYLE = """
:root { --fg: #1d2330; --muted: #6b7280; --line: #e3e6ea; --accent: #1a7fa0; --bg: #fafbfc; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg);
       margin: 0 auto; max-width: 1180px; padding: 18px 24px 60px; }
h1 { font-size: 22px; margin: 4px 0 6px; } h2 { font-size: 17px; margin: 26px 0 8px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
nav { font-size: 13px; margin-bottom: 10px; color: var(--muted); } nav a { margin-right: 14px; }
.muted { color: var(--muted); } .small { font-size: 12px; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: #f1f3f5; position: sticky; top: 0; font-weight: 600; white-space: nowrap; }
th[data-key] { cursor: pointer; user-select: none; } th[data-key]:hover { background: #e6eaee; }
th.asc::after { content: " \\25B2"; font-size: 10px; } th.desc::after { content: " \\25BC"; font-size: 10px; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.tag { display: inline-block; background: #eef4f7; border-radius: 10px; padding: 0 7px; margin: 1px 2px;
       font-size: 12px; color: #24586a; }
.concept { background: #fdf0e1; color: #7a4a12; }
.cards { display: flex; flex-wrap: wrap; gap: 14px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 10px; width: 440px; }
.card img { width: 100%; height: auto; display: block; } .card audio { width: 100%; margin-top: 4px; }
.stats { display: flex; gap: 26px; flex-wrap: wrap; margin: 8px 0; }
.stats div b { display: block; font-size: 18px; }
.controls { margin: 10px 0; display: flex; gap: 18px; align-items: center; flex-wrap: wrap; }
svg.hist rect { fill: var(--accent); } svg.hist text { font-size: 10px; fill: var(--muted); }
.pair { display: flex; gap: 16px; flex-wrap: wrap; } .pair div { min-width: 260px; }
table.listen td { vertical-align: top; } table.listen img { display: block; width: 240px; height: 72px; }
table.listen audio { width: 240px; margin-top: 3px; }
p.lead { font-size: 16px; margin: 10px 0; } p.verdict { font-size: 16px; font-weight: 600; }
ul.verdict li { margin: 4px 0; } b.ok { color: #1a7f37; } b.no { color: #b42318; }
"""

SCRIPT = """
(function () {
  // Errors of scripts and of media / image loads (captured), for the self-check below.
  var errors = [];
  window.addEventListener('error', function (e) {
    var t = e.target;
    if (t && t !== window && (t.src || t.currentSrc)) errors.push('failed to load ' + (t.currentSrc || t.src));
    else errors.push(String(e.message || e));
  }, true);

  function cellValue(row, i) {
    var c = row.cells[i];
    var v = c.getAttribute('data-v');
    if (v === null) v = c.textContent.trim();
    var n = parseFloat(v);
    return (v !== '' && !isNaN(n) && /^[-+0-9.eE]+$/.test(v)) ? n : v.toLowerCase();
  }

  function sortBy(table, th) {
    var i = Array.prototype.indexOf.call(th.parentNode.children, th);
    var was = th.classList.contains('asc') ? 'asc' : th.classList.contains('desc') ? 'desc' : null;
    var asc = was ? was === 'desc' : th.getAttribute('data-first') !== 'desc';
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.classList.remove('asc', 'desc'); });
    th.classList.add(asc ? 'asc' : 'desc');
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = cellValue(a, i), y = cellValue(b, i);
      if (typeof x !== typeof y) { x = String(x); y = String(y); }
      return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function number(id) {
    var el = document.getElementById(id);
    var v = el ? parseFloat(el.value) : NaN;
    return isNaN(v) ? null : v;
  }

  function applyFilters() {
    var only = document.getElementById('inrange');
    var q = document.getElementById('q');
    var pages = document.getElementById('pages');
    var label = document.getElementById('label');
    var want = label ? label.value : '';
    var lo = number('minrate'), hi = number('maxrate');
    var text = q ? q.value.trim().toLowerCase() : '';
    var shown = 0;
    document.querySelectorAll('table.sortable tbody tr').forEach(function (r) {
      var rate = parseFloat(r.getAttribute('data-rate'));
      var ok = (!only || !only.checked || r.getAttribute('data-inrange') === '1') &&
               (!pages || !pages.checked || r.getAttribute('data-page') === '1') &&
               (!want || r.getAttribute('data-label') === want) &&
               (lo === null || isNaN(rate) || rate >= lo) && (hi === null || isNaN(rate) || rate <= hi) &&
               (!text || r.textContent.toLowerCase().indexOf(text) >= 0);
      r.style.display = ok ? '' : 'none';
      if (ok) shown += 1;
    });
    var count = document.getElementById('shown');
    if (count) count.textContent = shown;
  }

  function selfCheck() {
    var media = Array.prototype.slice.call(document.querySelectorAll('audio'));
    var images = Array.prototype.slice.call(document.images);
    var waits = media.map(function (a) {
      return new Promise(function (resolve) {
        if (a.readyState >= 1 || a.error) return resolve();
        a.addEventListener('loadedmetadata', resolve, { once: true });
        a.addEventListener('error', resolve, { once: true });
        if (a.networkState === 0 || a.networkState === 3) a.load();
      });
    }).concat(images.map(function (im) {
      return new Promise(function (resolve) {
        if (im.complete) return resolve();
        im.addEventListener('load', resolve, { once: true });
        im.addEventListener('error', resolve, { once: true });
      });
    }));
    Promise.all(waits).then(function () {
      var out = {
        errors: errors,
        audio: media.map(function (a) {
          return { src: a.currentSrc || a.src, readyState: a.readyState, duration: a.duration,
                   error: a.error ? a.error.code : null };
        }),
        images: images.map(function (im) { return { src: im.src, naturalWidth: im.naturalWidth }; }),
        shown: document.getElementById('shown') ? Number(document.getElementById('shown').textContent) : null,
      };
      var pre = document.createElement('pre');
      pre.id = 'selfcheck';
      pre.hidden = true;
      pre.textContent = JSON.stringify(out);
      document.body.appendChild(pre);
    });
  }

  document.addEventListener('DOMContentLoaded', function () {
    document.querySelectorAll('table.sortable').forEach(function (table) {
      table.querySelectorAll('th[data-key]').forEach(function (th) {
        th.addEventListener('click', function () { sortBy(table, th); });
      });
    });
    ['inrange', 'q', 'pages', 'label', 'minrate', 'maxrate'].forEach(function (id) {
      var el = document.getElementById(id);
      if (el) { el.addEventListener('input', applyFilters); el.addEventListener('change', applyFilters); }
    });
    var params = new URLSearchParams(location.search);  // ?label=guitar&minrate=1&maxrate=25 preset the filters
    ['label', 'minrate', 'maxrate', 'q'].forEach(function (id) {
      var el = document.getElementById(id);
      if (el && params.has(id)) el.value = params.get(id);
    });
    applyFilters();
    if (location.hash === '#selfcheck') {
      if (document.readyState === 'complete') selfCheck(); else window.addEventListener('load', selfCheck);
    }
  });
})();
"""
