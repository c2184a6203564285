"""Report builder: self-contained HTML, Markdown twin, escaping, and a headless-browser render."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from musicaffect.errors import DataError
from musicaffect.evaluation.report import (
    Report,
    device_description,
    markdown_to_html,
    software_versions,
)

CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
SECTIONS = ["Exploration", "Genre classification", "LSTM", "Environment"]


class _Structure(HTMLParser):
    """Collects what the tests check: headings, sections, tables, images, external links."""

    def __init__(self):
        super().__init__()
        self.tags: list[str] = []
        self.section_ids: list[str] = []
        self.headings: list[str] = []
        self.images: list[str] = []
        self.urls: list[str] = []
        self.cells: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == "section":
            self.section_ids.append(attrs.get("id"))
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if key in attrs:
                self.urls.append(attrs[key])
        if tag in ("h2", "h3", "td"):
            self._in = tag
            self.cells.append("") if tag == "td" else self.headings.append("")

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "td":
            self.cells[-1] += data
        elif self._in in ("h2", "h3"):
            self.headings[-1] += data


def _figure() -> Figure:
    fig = Figure(figsize=(2, 2))
    fig.add_subplot().plot([0, 1], [1, 0])
    return fig


def _report(tmp_path: Path) -> Report:
    png = tmp_path / "external.png"
    _figure().savefig(png, dpi=30)
    rep = Report("Lab <3> results", subtitle="data root `/x` & friends")
    rep.add_note("The data is **synthetic**.", kind="warning")
    rep.add_section("Exploration", "Spectrograms of a <b>clip</b>; see [Kaggle](https://kaggle.com).")
    rep.add_figure(_figure(), caption="A figure object")
    rep.add_figure(png, caption="A PNG file")
    rep.add_section("Genre classification")
    rep.add_section("LSTM", "Trained with *Adam*.", level=3)
    rep.add_table([{"experiment": "LSTM beat mel", "accuracy": 0.4123, "macro_f1": None},
                   {"experiment": "CNN mel", "accuracy": 0.5, "macro_f1": 0.45}],
                  reference=[{"experiment": "LSTM beat mel", "accuracy": 0.37, "macro_f1": 0.28}],
                  caption="Test set")
    rep.add_code("precision recall\n<script>alert('x')</script>", caption="report")
    rep.add_section("Environment")
    rep.add_kv({"versions": software_versions(), "device": "CPU: test", "seed": 420})
    return rep


def test_write_html_and_markdown(tmp_path):
    html_path, md_path = _report(tmp_path).write(tmp_path / "out")
    assert html_path == tmp_path / "out" / "report.html" and md_path.name == "report.md"
    text = html_path.read_text()

    doc = _Structure()
    doc.feed(text)
    assert "script" not in doc.tags and "link" not in doc.tags
    assert not [u for u in doc.urls if u.startswith(("http:", "https:", "//"))]
    assert [u for u in doc.urls if u.startswith("#")]  # table of contents links
    assert len(doc.images) == 2
    for src in doc.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:4] == b"\x89PNG"
    assert doc.headings[:4] == ["Contents", *(h + "#" for h in SECTIONS[:3])]
    assert {"exploration", "genre-classification", "lstm", "environment"} <= set(doc.section_ids)
    assert doc.tags.count("table") == 2
    assert "0.412" in doc.cells and "reference" in doc.cells and "ours" in doc.cells

    # escaping: text never becomes markup
    assert "Lab &lt;3&gt; results" in text
    assert "&lt;b&gt;clip&lt;/b&gt;" in text and "<b>clip</b>" not in text
    assert "&lt;script&gt;" in text
    assert '<td class="num">0.412</td>' in text  # numbers right-aligned

    md = md_path.read_text()
    assert md.startswith("# Lab &lt;3&gt; results")
    figure_refs = [line for line in md.splitlines() if line.startswith("![")]
    assert len(figure_refs) == 2
    for line in figure_refs:
        rel = line[line.index("](") + 2:-1]
        assert not Path(rel).is_absolute() and (html_path.parent / rel).is_file()
    assert "| source | experiment | accuracy | macro_f1 |" in md
    assert "|---|---|---:|---:|" in md
    assert "| *reference* | LSTM beat mel | 0.370 | 0.280 |" in md


def test_figure_inside_out_dir_is_referenced_in_place(tmp_path):
    out = tmp_path / "out"
    (out / "runs").mkdir(parents=True)
    _figure().savefig(out / "runs" / "cm.png", dpi=30)
    rep = Report("r")
    rep.add_section("s").add_figure(out / "runs" / "cm.png", caption="cm")
    _, md_path = rep.write(out, basename="summary")
    assert "![cm](runs/cm.png)" in md_path.read_text()
    assert not (out / "figures").exists()


def test_bad_figure_and_rows(tmp_path):
    rep = Report("r")
    with pytest.raises(DataError, match="missing.png"):
        rep.add_figure(tmp_path / "missing.png")
    with pytest.raises(DataError, match="cannot embed a .csv file"):
        rep.add_figure(tmp_path / "data.csv")
    with pytest.raises(ValueError, match="header"):
        rep.add_table([[1, 2]])
    rep.add_table([[1, np.float32(0.5)]], header=["n", "x"])
    assert "<td class=\"num\">0.500</td>" in rep.to_html()


def test_markdown_subset():
    out = markdown_to_html("# Title\n\nSome `a<b` and **bold** *it*.\n\n- x\n- y\n\n```\n<raw>\n```")
    assert "<h3>Title</h3>" in out
    assert "<code>a&lt;b</code>" in out and "<strong>bold</strong>" in out and "<em>it</em>" in out
    assert re.sub(r"\s+", "", out).count("<ul><li>x</li><li>y</li></ul>") == 1
    assert "<pre><code>&lt;raw&gt;\n</code></pre>" in out


def test_markdown_links_stay_inside_the_report():
    out = markdown_to_html("see [LAB](https://example.org/lab) and [below](#env)")
    assert "<a href" not in out.replace('<a href="#env">', "")
    assert 'LAB (<span class="url">https://example.org/lab</span>)' in out
    assert '<a href="#env">below</a>' in out
    assert "&lt;script&gt;" in markdown_to_html("<script>alert(1)</script>")


def test_environment_descriptions():
    versions = software_versions()
    for key in ("python", "torch", "numpy", "librosa", "sklearn", "lightning", "musicaffect"):
        assert versions[key]
    assert versions["musicaffect"] != "not installed"
    assert device_description().startswith("CPU: ")


def test_report_html_structure(tmp_path):
    """The structure a browser would show, checked with html.parser (no browser needed)."""
    html_path, _ = _report(tmp_path).write(tmp_path / "out")
    doc = _Structure()
    doc.feed(html_path.read_text())
    assert doc.tags[0] == "html" and "head" in doc.tags and "body" in doc.tags
    assert doc.tags.count("section") == len(SECTIONS) and doc.tags.count("table") == 2
    assert doc.tags.count("img") == 2 and doc.tags.count("nav") == 1


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)")
def test_report_renders_in_headless_browser(tmp_path):
    """Render report.html in Debian's chromium with the flags that work offline."""
    html_path, _ = _report(tmp_path).write(tmp_path / "out")
    profile = tmp_path / "profile"
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
           "--no-first-run", "--disable-background-networking", "--disable-component-update",
           "--disable-sync", f"--user-data-dir={profile}", "--window-size=1200,1600"]
    url = html_path.resolve().as_uri()
    done = subprocess.run([*cmd, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = _Structure()
    dom.feed(done.stdout)
    assert [h.rstrip("#") for h in dom.headings[1:5]] == SECTIONS
    assert dom.tags.count("table") == 2 and len(dom.images) == 2
    assert "0.412" in dom.cells
    assert "ERR_" not in done.stdout  # no network/file error page
