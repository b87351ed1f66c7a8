"""The documentation site: its API pages are current, it builds offline with no warning, every
internal link resolves, no page loads anything from outside the site, the search finds a public
function, and every Python block on it runs as printed.

The build needs the ``docs`` extra (mkdocs, mkdocs-material, mkdocstrings); without it those
tests skip. The browser test also needs Chromium.
"""

from __future__ import annotations

import html.parser
import http.server
import json
import re
import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from scripts import api_pages

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
#: pages whose Python blocks a test of their own runs (with what they need installed)
TESTED_APART = {"weights.md": "tests/test_docs_weights.py"}


def _python_blocks(page: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", page.read_text(), re.S | re.M)


def test_the_api_pages_list_every_public_module():
    done = subprocess.run(
        [sys.executable, "scripts/api_pages.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    listed = {
        m
        for p in (DOCS / "api").glob("*.md")
        for m in re.findall(r"^::: (\S+)", p.read_text(), re.M)
    }
    library = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts)
        for p in (ROOT / "jaxnn").rglob("*.py")
        if not any(part.startswith("_") for part in p.relative_to(ROOT / "jaxnn").parts)
    }
    assert library - listed - set(api_pages.DEPRECATED) == set()


def test_every_page_in_the_navigation_exists_and_every_page_is_in_it():
    config = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r":\s*([\w/-]+\.md)\s*$", config, re.M))
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert nav == pages


class _Links(html.parser.HTMLParser):
    """The links, loaded resources and element ids of one page."""

    def __init__(self):
        super().__init__()
        self.links, self.loads, self.ids = [], [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        if tag in ("script", "img", "iframe", "source") and attrs.get("src"):
            self.loads.append(attrs["src"])
        if tag == "link" and attrs.get("href"):
            self.loads.append(attrs["href"])


def _parse(page: Path) -> _Links:
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    out = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return out


def _external(url: str) -> bool:
    return bool(re.match(r"^([a-z][a-z0-9+.-]*:)?//", url)) and not url.startswith("data:")


def test_the_site_loads_nothing_from_outside_it(site):
    pages = list(site.rglob("*.html"))
    assert len(pages) >= 20
    outside = {p.name: [u for u in _parse(p).loads if _external(u)] for p in pages}
    assert {k: v for k, v in outside.items() if v} == {}


def test_every_internal_link_resolves_to_a_page_and_an_anchor(site):
    broken = []
    parsed = {p: _parse(p) for p in site.rglob("*.html")}
    for page, links in parsed.items():
        for href in links.links:
            if _external(href) or href.startswith(("mailto:", "javascript:")):
                continue
            url = urllib.parse.urlparse(href)
            path = urllib.parse.unquote(url.path)
            base = site if path.startswith("/") else page.parent  # 404.html: from the site's root
            target = (base / path.lstrip("/")).resolve() if path else page
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{page.relative_to(site)} -> {href}")
            elif url.fragment and target.suffix == ".html":
                ids = parsed[target].ids if target in parsed else _parse(target).ids
                if urllib.parse.unquote(url.fragment) not in ids:
                    broken.append(f"{page.relative_to(site)} -> {href} (no such anchor)")
    assert broken == []


def test_the_api_reference_renders_the_docstrings(site):
    layers = (site / "api" / "layers.html").read_text()
    assert 'id="jaxnn.layers.dense.dense"' in layers
    assert "Chapter" in layers  # the docstrings' chapter notes came through
    index = json.loads((site / "search" / "search_index.json").read_text())
    titles = {doc["location"] for doc in index["docs"]}
    assert any("jaxnn.losses.cross_entropy" in t for t in titles)


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


#: A page of the test's own, served beside the site: it types a query into the site's search box
#: in a frame and posts the result links back. Its image ``hold`` keeps the page loading until
#: then, so ``--dump-dom`` waits for the search (the search runs in a web worker, which virtual
#: time does not advance).
PROBE = """<!doctype html><html><body><img src="hold" alt="">
<iframe id="f" src="index.html" style="width:1200px;height:800px"></iframe><script>
var f = document.getElementById("f");
f.onload = function () {
  var d = f.contentDocument, tries = 0, input = d.querySelector("input.md-search__input");
  input.focus(); input.value = "cross_entropy";
  input.dispatchEvent(new Event("input", {bubbles: true}));
  input.dispatchEvent(new KeyboardEvent("keyup", {bubbles: true, key: "y"}));
  (function poll() {
    var links = d.querySelectorAll(".md-search-result__link");
    if (!links.length && tries++ < 150) { setTimeout(poll, 100); return; }
    var hrefs = Array.prototype.map.call(links, function (a) { return a.getAttribute("href"); });
    fetch("result", {method: "POST", body: JSON.stringify(hrefs)});
  })();
};
</script></body></html>"""


def _probe_server(site: Path, found: dict, done: threading.Event):
    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(site), **kwargs)

        def log_message(self, *args):
            pass

        def do_GET(self):
            if self.path.startswith("/probe.html"):
                return self._reply(PROBE.encode(), "text/html")
            if self.path.startswith("/hold"):
                done.wait(30)
                return self._reply(b"", "image/gif")
            return super().do_GET()

        def do_POST(self):
            found["links"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            done.set()
            self._reply(b"", "text/plain")

        def _reply(self, body: bytes, kind: str):
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (apt-get install chromium)")
def test_the_search_finds_a_function_in_a_browser(site, tmp_path):
    found, done = {}, threading.Event()
    with _probe_server(site, found, done) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        args = [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--dump-dom",
            f"http://127.0.0.1:{server.server_port}/probe.html",
        ]
        subprocess.run(args, capture_output=True, text=True, timeout=180)
        server.shutdown()
    assert done.is_set(), "the probe page posted no result"
    assert any("losses" in href for href in found["links"]), found


@pytest.mark.parametrize(
    "page",
    sorted(p.name for p in DOCS.glob("*.md") if _python_blocks(p) and p.name not in TESTED_APART),
)
def test_every_python_block_on_the_site_runs_as_printed(page, tmp_path):
    if page == "runs.md":  # its block reads a run directory: make one
        setup = (
            "import jax\nfrom jaxnn.data import load\nfrom jaxnn.models import build\n"
            "from jaxnn.train import FitConfig, fit\n"
            "splits = load('digits', seed=0)\n"
            "fit(build('mlp', splits.info, hidden=(16,)), splits, "
            "FitConfig(epochs=1, progress=False), out_dir='RUN', verbose=False)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", setup], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr[-2000:]
    script = tmp_path / "page.py"
    script.write_text("\n".join(_python_blocks(DOCS / page)))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
