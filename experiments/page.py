"""The executed book's page: one self-contained HTML file, readable offline, on a desk or a phone.

:func:`render_page` turns the build's results into ``index.html``: a sticky table of contents
with each chapter's pass/fail mark (a sidebar on a wide screen, a folding bar on a phone), and
per chapter a card listing its claims (:mod:`experiments.claims`) with the experiments that cover
each, then each experiment: its claim, its figures (the panels' SVGs embedded, with a caption and
alt text), its sliders (one precomputed frame per knob value, switched by a range input), the
assertions, the measured numbers in readable units (folded away), the command that reproduces it
and a link to its source, and previous/next links. Colours follow the system's light or dark
setting. Nothing is loaded from elsewhere: figures are data URIs, CSS and script are inline.

With ``#selftest`` in the address, the page's script checks itself once loaded (every image
loaded, alt texts and captions, no external resource, the smallest text of every figure in CSS
pixels as drawn, the table of contents, the sliders, the pager) and writes the results as
``data-*`` attributes of ``<body>``; the browser test reads them.
"""

from __future__ import annotations

import base64
import html
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

from experiments import claims as claims_lib

__all__ = ["render_page", "format_value", "metric_label"]

STATUS_TEXT = {
    "passed": "claim holds",
    "failed": "FAILED",
    "stale": "stale: the code changed since this result",
    "not built": "not built",
}
MIN_TEXT_PX = 10.0  # the smallest text a figure may show, in CSS pixels
_MARK = {"pass": "\u2713", "fail": "\u2717", "pending": "\u2022"}

_CSS = """
:root{--bg:#f7f7f4;--fg:#1d1d1f;--muted:#5b5b60;--card:#fff;--line:#deded8;--code:#f0f0ec;
 --pass:#1b7a33;--fail:#c62828;--pend:#9a6b00;--link:#0b5cad;--chip:#eef2f7;color-scheme:light dark}
@media (prefers-color-scheme:dark){:root{--bg:#15161a;--fg:#e8e8ea;--muted:#a4a4ad;--card:#1f2126;
 --line:#34363d;--code:#2a2c33;--pass:#5cc27a;--fail:#ff7b72;--pend:#e0b341;--link:#8ab4f8;
 --chip:#262a33}}
*{box-sizing:border-box}
html{scroll-behavior:smooth}
body{font:16px/1.55 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;
 color:var(--fg);background:var(--bg);margin:0}
a{color:var(--link)}
.layout{display:grid;grid-template-columns:230px minmax(0,1fr);max-width:1480px;margin:0 auto}
nav.side{position:sticky;top:0;align-self:start;height:100vh;overflow-y:auto;padding:20px 12px 20px
 18px;border-right:1px solid var(--line);font-size:14px}
nav.side h2{font-size:13px;text-transform:uppercase;letter-spacing:.06em;color:var(--muted);
 margin:0 0 8px;border:0}
nav.toc ol{list-style:none;margin:0;padding:0}
nav.toc li{margin:0}
nav.toc a{display:flex;gap:8px;padding:3px 6px;border-radius:6px;text-decoration:none;
 color:var(--fg)}
nav.toc a:hover,nav.toc a.here{background:var(--chip)}
nav.toc .num{min-width:1.4em;text-align:right;color:var(--muted)}
.mark{font-weight:700}.mark.pass{color:var(--pass)}.mark.fail{color:var(--fail)}
.mark.pending{color:var(--pend)}
nav.top{display:none}
main{padding:24px 28px 60px;min-width:0}
header.page h1{margin:0 0 6px;font-size:30px;line-height:1.2}
header.page p{margin:6px 0;max-width:60em}
.quick{background:#fff3cd;color:#3d2f00;border:1px solid #e0c36c;padding:8px 12px;border-radius:6px}
.summary{font-weight:600}
section.chapter{scroll-margin-top:12px;margin-top:28px}
section.chapter>h2{font-size:24px;margin:0 0 2px;padding-top:12px;border-top:2px solid var(--line)}
p.where{color:var(--muted);margin:0 0 10px;font-size:14px}
p.where code{font-size:13px}
.claims{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:10px 16px;
 margin:10px 0 16px}
.claims h3{margin:4px 0 6px;font-size:15px;text-transform:uppercase;letter-spacing:.05em;
 color:var(--muted)}
.claims ul{list-style:none;padding:0;margin:0}
.claims li{padding:6px 0;border-top:1px solid var(--line)}
.claims li:first-child{border-top:0}
.claims .sec{display:block;font-size:13px;color:var(--muted)}
.claims .by{display:block;font-size:14px;overflow-wrap:anywhere}
.claims .why{display:block;font-size:14px;font-style:italic;color:var(--muted)}
article{background:var(--card);border:1px solid var(--line);border-left:6px solid var(--muted);
 border-radius:8px;padding:14px 18px;margin:14px 0;scroll-margin-top:12px}
article.passed{border-left-color:var(--pass)}article.failed{border-left-color:var(--fail)}
article.stale,article.notbuilt{border-left-color:var(--pend)}
article h3{display:inline;font-size:17px;margin:0;font-family:Menlo,Consolas,monospace;
 overflow-wrap:anywhere}
.badge{display:inline-block;padding:1px 9px;border-radius:10px;color:#fff;font-weight:600;
 font-size:13px;margin-right:8px;vertical-align:2px}
.badge.passed{background:#1b7a33}.badge.failed{background:#c62828}
.badge.stale,.badge.notbuilt,.badge.missing{background:#8a6000}
p.claim{font-size:16px;margin:8px 0 4px;max-width:62em}
figure{margin:14px 0}
.panels{display:grid;gap:12px;align-items:start;justify-items:start;
 grid-template-columns:repeat(auto-fit,minmax(min(var(--min,300px),100%),1fr))}
.panels img,.frames img{display:block;width:100%;height:auto;background:#fff;border-radius:6px;
 border:1px solid var(--line)}
.frames img[hidden]{display:none}
figcaption{font-size:15px;color:var(--muted);margin-top:6px;max-width:60em}
figure.slider .knob{display:flex;align-items:center;gap:10px;flex-wrap:wrap;margin:8px 0 0;
 font-size:15px}
figure.slider input[type=range]{flex:1 1 220px;max-width:420px;accent-color:var(--link)}
figure.slider output{font-family:Menlo,Consolas,monospace;font-weight:600;min-width:5em}
h4{font-size:14px;margin:14px 0 4px;text-transform:uppercase;letter-spacing:.05em;
 color:var(--muted)}
ul.checks{margin:4px 0;padding-left:22px}
ul.checks li{margin:2px 0}
li.held::marker{content:"\\2713  ";color:var(--pass)}
li.broken::marker{content:"\\2717  ";color:var(--fail)}
details.metrics{margin:10px 0}
details.metrics summary{cursor:pointer;font-weight:600}
table.metrics{border-collapse:collapse;font-size:14px;margin-top:6px;width:100%}
table.metrics td{border-top:1px solid var(--line);padding:3px 8px 3px 0;vertical-align:top}
table.metrics td.v{font-family:Menlo,Consolas,monospace;font-size:13px;overflow-wrap:anywhere}
pre,code{font-family:Menlo,Consolas,monospace;font-size:13px}
code{background:var(--code);padding:1px 4px;border-radius:4px}
pre{background:var(--code);padding:8px;overflow-x:auto;white-space:pre-wrap}
.meta{color:var(--muted);font-size:14px;margin:8px 0 0}
.meta code{overflow-wrap:anywhere}
nav.pager{display:flex;justify-content:space-between;gap:12px;margin:16px 0 0;font-size:15px}
nav.pager a{text-decoration:none}
@media (max-width:900px){
 .layout{display:block}
 nav.side{display:none}
 nav.top{display:block;position:sticky;top:0;z-index:10;background:var(--bg);
  border-bottom:1px solid var(--line);padding:6px 12px}
 nav.top summary{cursor:pointer;font-weight:600;padding:4px 0;list-style-position:inside}
 nav.top ol{max-height:70vh;overflow-y:auto;padding-bottom:6px}
 section.chapter,article{scroll-margin-top:52px}
 main{padding:12px 10px 40px}
 header.page h1{font-size:24px}
 article{padding:10px 10px;border-left-width:5px}
}
"""

_SCRIPT = r"""
(function () {
  "use strict";
  function values(fig) { return JSON.parse(fig.getAttribute("data-values")); }
  function show(fig, i) {
    var frames = fig.querySelectorAll("img.frame");
    for (var k = 0; k < frames.length; k++) { frames[k].hidden = k !== i; }
    fig.querySelector("input[type=range]").value = String(i);
    fig.querySelector("output").textContent = values(fig)[i];
  }
  var sliders = document.querySelectorAll("figure.slider");
  Array.prototype.forEach.call(sliders, function (fig) {
    var input = fig.querySelector("input[type=range]");
    input.addEventListener("input", function () { show(fig, parseInt(input.value, 10)); });
  });
  var top = document.querySelector("nav.top details");
  Array.prototype.forEach.call(document.querySelectorAll("nav.top a"), function (a) {
    a.addEventListener("click", function () { if (top) { top.open = false; } });
  });

  var svgCache = new Map();
  function svgInfo(img) {
    if (svgCache.has(img)) { return svgCache.get(img); }
    var raw = atob(img.src.split(",")[1]);
    var bytes = Uint8Array.from(raw, function (c) { return c.charCodeAt(0); });
    var doc = new DOMParser().parseFromString(new TextDecoder().decode(bytes), "image/svg+xml");
    var width = parseFloat(doc.documentElement.getAttribute("viewBox").split(/[\s,]+/)[2]);
    var min = Infinity;
    Array.prototype.forEach.call(doc.querySelectorAll("text, tspan"), function (t) {
      var m = /font-size:\s*([\d.]+)px/.exec(t.getAttribute("style") || "");
      if (m && t.textContent.trim()) { min = Math.min(min, parseFloat(m[1])); }
    });
    var info = { width: width, minFont: min };
    svgCache.set(img, info);
    return info;
  }

  function selftest() {
    var r = {}, b = document.body;
    var imgs = Array.prototype.slice.call(document.images);
    r.images = imgs.length;
    r["images-loaded"] = imgs.filter(function (i) {
      return i.complete && i.naturalWidth > 0;
    }).length;
    r["alt-bad"] = imgs.filter(function (i) {
      var alt = (i.getAttribute("alt") || "").trim();
      return alt.length < 20 || /\.(png|svg)$/i.test(alt);
    }).length;
    var figs = Array.prototype.slice.call(document.querySelectorAll("figure"));
    r.figures = figs.length;
    r["captions-missing"] = figs.filter(function (f) {
      var c = f.querySelector("figcaption"); return !c || c.textContent.trim().length < 20;
    }).length;
    var nodes = Array.prototype.slice.call(document.querySelectorAll("[src],[href]"));
    var refs = nodes.map(function (e) { return e.getAttribute("src") || e.getAttribute("href"); });
    var fetched = performance.getEntriesByType("resource").map(function (e) { return e.name; })
      .filter(function (n) { return !/^data:/.test(n); });
    var outside = refs.filter(function (u) { return /^([a-z]+:)?\/\//i.test(u || ""); });
    r.external = outside.length + fetched.length;

    var smallest = Infinity, where = "";
    function measure(img) {
      var info = svgInfo(img), w = img.getBoundingClientRect().width;
      if (!w) { return; }
      var px = info.minFont * w / info.width;
      if (px < smallest) { smallest = px; where = img.getAttribute("data-name"); }
    }
    Array.prototype.forEach.call(document.querySelectorAll("img.panel"), measure);

    var sliderOk = 0;
    Array.prototype.forEach.call(sliders, function (fig) {
      var input = fig.querySelector("input[type=range]");
      var frames = fig.querySelectorAll("img.frame"), ok = frames.length >= 2;
      var initial = parseInt(input.value, 10);
      for (var i = 0; i < frames.length; i++) {
        input.value = String(i);
        input.dispatchEvent(new Event("input", { bubbles: true }));
        var shown = Array.prototype.filter.call(frames, function (f) {
          return f.getBoundingClientRect().width > 0;  // drawn, whatever its attribute says
        });
        ok = ok && shown.length === 1 && shown[0] === frames[i] &&
          fig.querySelector("output").textContent === values(fig)[i];
        if (shown.length) { measure(shown[0]); }
      }
      show(fig, initial);
      if (ok) { sliderOk += 1; }
    });
    r.sliders = sliders.length;
    r["sliders-ok"] = sliderOk;
    r["min-text-px"] = smallest === Infinity ? "none" : smallest.toFixed(2);
    r["min-text-where"] = where;

    var tocs = Array.prototype.filter.call(document.querySelectorAll("nav.toc"), function (n) {
      return getComputedStyle(n).display !== "none";
    });
    r["toc-visible"] = tocs.length;
    if (tocs.length === 1) {
      var toc = tocs[0], d = toc.querySelector("details");
      if (d) { d.open = true; }
      var links = Array.prototype.slice.call(toc.querySelectorAll("a[href^='#']"));
      r["toc-links"] = links.length;
      r["toc-marks"] = toc.querySelectorAll(".mark").length;
      r["toc-broken"] = links.filter(function (a) {
        return !document.getElementById(a.getAttribute("href").slice(1));
      }).length;
      if (d) { d.open = false; }
      document.documentElement.style.scrollBehavior = "auto";
      var last = document.querySelector("section.chapter:last-of-type");
      last.scrollIntoView();
      var box = toc.getBoundingClientRect();
      var stuck = Math.abs(box.top) <= 1 && box.height > 0 && window.scrollY > 1000;
      r["toc-sticky"] = stuck ? "yes" : "no";
      window.scrollTo(0, 0);
    }
    var pager = Array.prototype.slice.call(document.querySelectorAll("nav.pager a"));
    r["pager-links"] = pager.length;
    r["pager-broken"] = pager.filter(function (a) {
      return !document.getElementById(a.getAttribute("href").slice(1));
    }).length;
    r["overflow-x"] = document.documentElement.scrollWidth - window.innerWidth;
    r["viewport"] = window.innerWidth;
    Object.keys(r).forEach(function (k) { b.setAttribute("data-" + k, String(r[k])); });
    b.setAttribute("data-sections", document.querySelectorAll("section.chapter").length);
    b.setAttribute("data-rendered", "yes");
  }
  window.addEventListener("load", function () {
    if (location.hash === "#selftest") { selftest(); }
  });
})();
"""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# Measured numbers in readable units
# --------------------------------------------------------------------------------------------

_PERCENT_WORDS = ("accuracy", "precision", "recall", "share", "fraction", "agreement", "rate")
_ACRONYMS = {"lr": "LR", "mse": "MSE", "lm": "LM", "cnn": "CNN", "mlp": "MLP", "gru": "GRU",
             "svg": "SVG", "sha256": "SHA-256", "val": "validation", "wd": "weight decay",
             "sgd": "SGD", "flops": "FLOPs", "px": "px"}  # fmt: skip


def metric_label(key: str) -> str:
    """``val_mse_by_width`` -> ``Validation MSE by width``."""
    words = [_ACRONYMS.get(w, w) for w in key.split("_")]
    text = " ".join(words)
    return text[:1].upper() + text[1:]


def _bytes(n: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def _seconds(s: float) -> str:
    if abs(s) >= 1:
        return f"{s:.3g} s"
    if abs(s) >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} \u00b5s"


def _number(v) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v == 0:
            return "0"
        if abs(v) >= 1e5 or abs(v) < 1e-3:
            return f"{v:.3g}"
        return f"{v:,.4g}"
    return str(v)


def format_value(key: str, value, *, limit: int = 12) -> str:
    """One measured value in readable units, judged by its name: bytes in kB/MB, seconds in
    s/ms, shares and accuracies in percent, lists and mappings item by item."""
    low = key.lower()
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        items = [f"{k}: {format_value(key, v, limit=limit)}" for k, v in value.items()]
        return "; ".join(items[:limit]) + ("; \u2026" if len(items) > limit else "")
    if isinstance(value, (list, tuple)):
        items = [format_value(key, v, limit=limit) for v in value]
        more = f", \u2026 ({len(items)} in all)" if len(items) > limit else ""
        return ", ".join(items[:limit]) + more
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _number(value)
    if "bytes" in low:
        return _bytes(float(value))
    if "seconds" in low or low.endswith("_s"):
        return _seconds(float(value))
    if isinstance(value, float) and any(w in low for w in _PERCENT_WORDS) and 0 <= value <= 1:
        if "lr" not in low.split("_") and "learning" not in low:
            return f"{100 * value:.1f}%"
    return _number(value)


def _metrics_table(metrics: dict) -> str:
    rows = [
        f'<tr><td class="k">{_esc(metric_label(k))}</td>'
        f'<td class="v">{_esc(format_value(k, v))}</td></tr>'
        for k, v in metrics.items()
        if k != "figures"
    ]
    if not rows:
        return ""
    return (
        f'<details class="metrics"><summary>Measured numbers ({len(rows)})</summary>'
        f'<table class="metrics">{"".join(rows)}</table></details>'
    )


# --------------------------------------------------------------------------------------------
# Figures and sliders
# --------------------------------------------------------------------------------------------


def svg_geometry(data: bytes) -> tuple[float, float] | None:
    """``(width, smallest font size)`` of a matplotlib SVG, both in its units (points: shown at
    its natural size, one unit is 4/3 CSS pixels)."""
    m = re.search(rb'<svg[^>]*\sviewBox="[\d.\s-]+?\s([\d.]+)\s[\d.]+"', data[:4000])
    sizes = [float(v) for v in re.findall(rb"font-size: ?([\d.]+)px", data)]
    if not m or not sizes:
        return None
    return float(m.group(1)), min(sizes)


def _img(path: Path, alt: str, cls: str, name: str, *, hidden: bool = False) -> tuple[str, float]:
    """The ``<img>`` (a data URI) and the narrowest width in CSS pixels at which its smallest
    text still reads at :data:`MIN_TEXT_PX`."""
    data = path.read_bytes()
    kind = "svg+xml" if path.suffix == ".svg" else "png"
    geometry = svg_geometry(data) if kind == "svg+xml" else None
    style, narrowest = "", 0.0
    if geometry:
        width, font = geometry
        style = f' style="max-width:{width * 4 / 3:.0f}px"'
        narrowest = width * MIN_TEXT_PX / font
    src = f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"
    hide = " hidden" if hidden else ""
    tag = f'<img class="{cls}" data-name="{_esc(name)}" alt="{_esc(alt)}"{style}{hide} src="{src}">'
    return tag, narrowest


def _figure(exp_dir: Path, doc: dict) -> str:
    imgs = [
        _img(exp_dir / svg, alt, "panel", svg)
        for svg, alt in zip(doc["svgs"], doc["alt"], strict=True)
        if (exp_dir / svg).is_file()
    ]
    if not imgs:
        return ""
    narrowest = max(n for _, n in imgs)
    return (
        f'<figure class="fig"><div class="panels" style="--min:{narrowest:.0f}px">'
        f"{''.join(t for t, _ in imgs)}</div>"
        f"<figcaption>{_esc(doc['caption'])}</figcaption></figure>"
    )


def _slider(exp_dir: Path, experiment: str, doc: dict) -> str:
    frames = [exp_dir / f for f in doc["frames"]]
    if not all(f.is_file() for f in frames):
        return ""
    initial, values = int(doc.get("initial", 0)), doc["values"]
    ident = f"{experiment}-{doc['name']}"
    imgs = "".join(
        _img(f, alt, "frame", f.name, hidden=i != initial)[0]
        for i, (f, alt) in enumerate(zip(frames, doc["alt"], strict=True))
    )
    return (
        f'<figure class="slider" id="{_esc(ident)}" data-values="{_esc(json.dumps(values))}">'
        f'<div class="frames">{imgs}</div><div class="knob">'
        f'<label for="{_esc(ident)}-knob">{_esc(doc["knob"])}</label>'
        f'<input type="range" id="{_esc(ident)}-knob" min="0" max="{len(frames) - 1}" step="1" '
        f'value="{initial}"><output for="{_esc(ident)}-knob">{_esc(values[initial])}</output>'
        f"</div><figcaption>{_esc(doc['caption'])} Move the slider: each position is a "
        "measured run, computed in advance.</figcaption></figure>"
    )


def _legacy_figures(exp_dir: Path, doc: dict) -> str:
    """PNG figures of a result written before captions existed (shown until it is rebuilt)."""
    out = []
    for fig in doc.get("metrics", {}).get("figures", []):
        if (exp_dir / fig).is_file() and fig.endswith(".png"):
            alt = f"figure of an earlier build of {doc.get('experiment', exp_dir.name)}"
            tag, _ = _img(exp_dir / fig, alt, "panel", fig)
            out.append(
                f'<figure class="fig"><div class="panels">{tag}'
                "</div><figcaption>A figure from an earlier build, without its caption."
                "</figcaption></figure>"
            )
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Experiments, chapters, the table of contents
# --------------------------------------------------------------------------------------------


def _checks_list(doc: dict) -> str:
    items = [
        f'<li class="{"held" if c.get("held") else "broken"}">{_esc(c.get("assertion", ""))}</li>'
        for c in doc.get("checks", [])
    ]
    if not items:
        return ""
    return f'<h4>Assertions ({len(items)})</h4><ul class="checks">{"".join(items)}</ul>'


def _machine_line(record: dict) -> str:
    m = record.get("machine") or {}
    parts = [
        m.get("platform"),
        m.get("cpu"),
        f"{m.get('cpu_count')} cores" if m.get("cpu_count") else None,
        f"Python {m['python']}" if m.get("python") else None,
        f"jax {m['jax']}" if m.get("jax") else None,
        f"backend {m['backend']}" if m.get("backend") else None,
        m.get("devices"),
    ]
    return "; ".join(_esc(p) for p in parts if p)


def _source_link(out: Path, folder: Path, name: str) -> str:
    source = folder / f"{name}.py"
    rel = Path(os.path.relpath(source, out.resolve())).as_posix()
    return f'<a href="{_esc(rel)}">source: {_esc(source.name)}</a>'


def _experiment(out: Path, folder: Path, package: str, record: dict, tail) -> str:
    """One experiment's ``<article>``."""
    name, status = record["name"], record["status"]
    exp_dir = out / name
    doc = _read_json(exp_dir / "metrics.json") if status != "not built" else None
    cls = status.replace(" ", "")
    parts = [
        f'<article class="{cls}" id="{_esc(name)}" data-status="{_esc(status)}">',
        f'<div><span class="badge {cls}">{_esc(STATUS_TEXT[status])}</span>'
        f"<h3>{_esc(name)}</h3></div>",
    ]
    if doc is not None:
        parts.append(f'<p class="claim">{_esc(doc.get("claim", ""))}</p>')
        if "figure_docs" in doc:
            parts += [_figure(exp_dir, f) for f in doc["figure_docs"]]
            parts += [_slider(exp_dir, name, s) for s in doc.get("sliders", [])]
        else:
            parts.append(_legacy_figures(exp_dir, doc))
        parts.append(_checks_list(doc))
        parts.append(_metrics_table(doc.get("metrics", {})))
        parts += [f'<p class="meta">Note: {_esc(n)}</p>' for n in doc.get("notes", [])]
    if status == "failed":
        parts.append(f"<p>Output (tail):</p><pre>{_esc(tail(exp_dir / 'log.txt'))}</pre>")
    command = f"python -m {package}.{name}" + (" --quick" if record.get("quick") else "")
    meta = f"Reproduce: <code>{_esc(command)}</code> &middot; {_source_link(out, folder, name)}"
    if "seconds" in record:
        cpu = f" (CPU {record['cpu_seconds']:.1f} s)" if "cpu_seconds" in record else ""
        meta += (
            f"<br>Took {record['seconds']:.1f} s{cpu}, {_esc(record.get('finished', ''))}, on "
            f"{_machine_line(record)}"
        )
    parts.append(f'<p class="meta">{meta}</p></article>')
    return "\n".join(parts)


def _chapter_mark(records: list[dict]) -> str:
    if any(r["status"] == "failed" for r in records):
        return "fail"
    if records and all(r["status"] == "passed" for r in records):
        return "pass"
    return "pending"


def _claims_card(number: int, status_of: dict) -> str:
    items = []
    for claim in claims_lib.for_chapter(number):
        head = f'<span class="sec">{_esc(claim.section)}</span>{_esc(claim.text)}'
        if claim.covered_by:
            links = []
            for name in claim.covered_by:
                status = status_of.get(name, "missing")
                mark = {"passed": "pass", "failed": "fail"}.get(status, "pending")
                links.append(
                    f'<span class="mark {mark}" title="{_esc(status)}">{_MARK[mark]}</span> '
                    f'<a href="#{_esc(name)}">{_esc(name)}</a>'
                    if status != "missing"
                    else f'<span class="mark pending">{_MARK["pending"]}</span> {_esc(name)} '
                    "(not in this build)"
                )
            items.append(f'<li>{head}<span class="by">measured by {", ".join(links)}</span></li>')
        else:
            why = f'<span class="why">not measured: {_esc(claim.uncovered)}</span>'
            items.append(f"<li>{head}{why}</li>")
    if not items:
        return ""
    return f'<div class="claims"><h3>Claims of this chapter</h3><ul>{"".join(items)}</ul></div>'


def _pager(book, i: int) -> str:
    links = []
    if i > 0:
        n, title, _ = book[i - 1]
        links.append(f'<a href="#chapter-{n}" rel="prev">\u2190 {n}. {_esc(title)}</a>')
    else:
        links.append("<span></span>")
    if i + 1 < len(book):
        n, title, _ = book[i + 1]
        links.append(f'<a href="#chapter-{n}" rel="next">{n}. {_esc(title)} \u2192</a>')
    return f'<nav class="pager" aria-label="chapters">{"".join(links)}</nav>'


def _toc_items(book, marks: dict) -> str:
    return "".join(
        f'<li><a href="#chapter-{n}"><span class="mark {marks[n]}" title="{marks[n]}">'
        f'{_MARK[marks[n]]}</span><span class="num">{n}.</span><span>{_esc(title)}</span></a></li>'
        for n, title, _ in book
    )


def render_page(
    out: Path, results: list[dict], *, quick: bool, host: dict, book, folder, package, chapter_of,
    tail,
) -> str:  # fmt: skip
    """The whole ``index.html`` as a string: contents, header, summary, chapters 1-15."""
    by_chapter = {n: [r for r in results if chapter_of(r["name"]) == n] for n, _, _ in book}
    status_of = {r["name"]: r["status"] for r in results}
    marks = {n: _chapter_mark(by_chapter[n]) for n, _, _ in book}
    counts = {s: sum(r["status"] == s for r in results) for s in STATUS_TEXT}
    checks = 0
    for r in results:
        doc = _read_json(out / r["name"] / "metrics.json") if r["status"] != "not built" else None
        checks += len(doc.get("checks", [])) if doc else 0
    missing = [n for n, _, _ in book if not by_chapter[n]]
    sections = []
    for i, (n, title, where) in enumerate(book):
        records = by_chapter[n]
        body = (
            "\n".join(_experiment(out, folder, package, r, tail) for r in records)
            if records
            else '<p><span class="badge missing">missing</span>no experiment for this chapter</p>'
        )
        sections.append(
            f'<section class="chapter" id="chapter-{n}" data-chapter="{n}">'
            f'<h2><span class="mark {marks[n]}">{_MARK[marks[n]]}</span> {n}. {_esc(title)}</h2>'
            f'<p class="where">In the library: <code>{_esc(where)}</code></p>'
            f"{_claims_card(n, status_of)}\n{body}\n{_pager(book, i)}</section>"
        )
    mode = (
        '<p class="quick"><b>Quick mode</b>: tiny sizes that run in seconds on a CPU; the '
        "numbers are not those of a full run (<code>python -m experiments build --out book"
        "</code> without <code>--quick</code>). Every figure carries a red QUICK RUN banner.</p>"
        if quick
        else "<p>Full mode: every experiment at its full size.</p>"
    )
    measured = [c for c in claims_lib.CLAIMS if c.covered_by]
    holding = [c for c in measured if all(status_of.get(n) == "passed" for n in c.covered_by)]
    summary = (
        f'<p class="summary">The book makes {len(claims_lib.CLAIMS)} claims here: '
        f"{len(measured)} measured, {len(holding)} of them holding on this build, "
        f"{len(claims_lib.CLAIMS) - len(measured)} not measurable (the card says why). "
        f"{counts['passed']} of {len(results)} experiments hold their claim "
        f"({checks} assertions); {counts['failed']} failed; "
        f"{counts['stale'] + counts['not built']} not (re)built; chapters without an "
        f"experiment: {', '.join(map(str, missing)) or 'none'}.</p>"
    )
    items = _toc_items(book, marks)
    passed_chapters = sum(m == "pass" for m in marks.values())
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f"<title>Neural Networks Explained, executed</title><style>{_CSS}</style></head>\n"
        '<body><div class="layout">'
        f'<nav class="toc side" aria-label="contents"><h2>Chapters</h2><ol>{items}</ol></nav>'
        '<div class="content">'
        f'<nav class="toc top" aria-label="contents"><details><summary>Contents &middot; '
        f"{passed_chapters} of {len(book)} chapters hold</summary><ol>{items}</ol></details></nav>"
        '<main><header class="page"><h1>Neural Networks Explained, executed</h1>'
        "<p>Each chapter's claims, measured with jaxnn, drawn and asserted: a claim holds when "
        "every assertion under it passed on the run shown.</p>"
        f"{mode}{summary}<p class=meta>Built {built} on {_machine_line({'machine': host})}.</p>"
        "</header>\n" + "\n".join(sections) + f"\n</main></div></div><script>{_SCRIPT}</script>"
        "</body></html>\n"
    )
