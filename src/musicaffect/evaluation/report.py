"""A small builder for the lab report: one self-contained HTML file and a Markdown twin.

``report.html`` embeds every figure as a base64 PNG data URI, carries its CSS inline and
loads nothing from anywhere (no script, no font, no external image), so it opens offline
and can be mailed as one file. ``report.md`` references the same figures as PNG files under
``figures/`` next to it.

Examples
--------
>>> rep = Report("Lab 3 results")
>>> rep.add_section("Genre classification", "LSTM on *beat-synchronous* mel spectrograms.")
>>> rep.add_table([{"experiment": "LSTM beat mel", "accuracy": 0.41}],
...               reference=[{"experiment": "LSTM beat mel", "accuracy": 0.37}],
...               caption="Test accuracy")
>>> rep.add_figure(fig, caption="Confusion matrix")  # doctest: +SKIP
>>> html_path, md_path = rep.write("out")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import math
import os
import platform
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from musicaffect.errors import DataError

__all__ = ["Report", "device_description", "markdown_to_html", "software_versions"]

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".gif": "image/gif", ".svg": "image/svg+xml"}
_DASH = "\u2013"
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?%?$")


# ----------------------------------------------------------------------------- text


def _slug(text: str) -> str:
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "section"


def _inline(text: str) -> str:
    """Markdown inline syntax (code, bold, italic, links) to escaped HTML."""
    out = []
    for i, part in enumerate(re.split(r"(`[^`]*`)", text)):
        if i % 2 == 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        s = html.escape(part)
        s = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", s)
        s = re.sub(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])", r"<em>\1</em>", s)
        s = re.sub(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)", r"<em>\1</em>", s)

        def link(m: re.Match) -> str:
            label, url = m.group(1), m.group(2)
            if re.match(r"^[a-z][a-z0-9+.-]*:", url, flags=re.I) and not url.startswith("#"):
                # External target: shown as text so the report makes no outside reference.
                return f"{label} (<span class=\"url\">{url}</span>)"
            return f"<a href=\"{url}\">{label}</a>"

        s = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", link, s)
        out.append(s)
    return "".join(out)


def markdown_to_html(text: str) -> str:
    """Convert the small Markdown subset used in report text to escaped HTML.

    Supported: paragraphs, ``#`` headings (rendered from ``<h3>`` down), ``-``/``*`` and
    ``1.`` lists, ``>`` quotes, fenced code blocks, inline code, ``**bold**``, ``*italic*``
    and links (external ones are written out as text). Everything else is escaped text.

    Parameters
    ----------
    text : str

    Returns
    -------
    html : str
    """
    lines = text.replace("\r\n", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []
    items: list[str] = []
    list_tag: str | None = None
    i = 0

    def flush_para() -> None:
        if para:
            out.append(f"<p>{_inline(' '.join(para))}</p>")
            para.clear()

    def flush_list() -> None:
        nonlocal list_tag
        if list_tag:
            body = "".join(f"<li>{_inline(it)}</li>" for it in items)
            out.append(f"<{list_tag}>{body}</{list_tag}>")
            items.clear()
            list_tag = None

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush_para()
            flush_list()
            code: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                code.append(lines[i])
                i += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
            i += 1
            continue
        heading = re.match(r"^(#{1,6})\s+(.*)$", stripped)
        bullet = re.match(r"^[-*+]\s+(.*)$", stripped)
        number = re.match(r"^\d+[.)]\s+(.*)$", stripped)
        if not stripped:
            flush_para()
            flush_list()
        elif heading:
            flush_para()
            flush_list()
            level = min(6, len(heading.group(1)) + 2)
            out.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif bullet or number:
            flush_para()
            tag = "ul" if bullet else "ol"
            if list_tag != tag:
                flush_list()
                list_tag = tag
            items.append((bullet or number).group(1))
        elif stripped.startswith(">"):
            flush_para()
            flush_list()
            out.append(f"<blockquote>{_inline(stripped.lstrip('> '))}</blockquote>")
        elif list_tag and line.startswith((" ", "\t")):
            items[-1] += " " + stripped
        else:
            flush_list()
            para.append(stripped)
        i += 1
    flush_para()
    flush_list()
    return "\n".join(out)


def _md_text(text: str) -> str:
    """Plain text made safe for a Markdown heading or link label."""
    return (html.escape(text, quote=False).replace("[", "\\[").replace("]", "\\]")
            .replace("\n", " "))


def _md_cell(text: str) -> str:
    return (text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
            .replace("<", "&lt;").replace(">", "&gt;"))


# ----------------------------------------------------------------------------- values


def _is_number(value) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    return isinstance(value, str) and bool(_NUMERIC.match(value.strip()))


def _format(value, digits: int) -> str:
    if value is None:
        return _DASH
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        v = float(value)
        if math.isnan(v):
            return _DASH
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        if v != 0 and (abs(v) >= 1e6 or abs(v) < 0.5 * 10.0 ** -digits):
            return f"{v:.{digits}g}"
        return f"{v:.{digits}f}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_format(v, digits) for v in value)
    return str(value)


def _flatten(mapping: Mapping, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            rows.extend(_flatten(value, prefix=f"{name}."))
        else:
            rows.append((name, value))
    return rows


# ----------------------------------------------------------------------------- blocks


@dataclass
class _Table:
    header: list[str]
    rows: list[list]
    ref_mask: list[bool]
    caption: str | None
    digits: int
    kind: str = "data"


@dataclass
class _Figure:
    data: bytes
    mime: str
    name: str
    caption: str | None
    source: Path | None = None


@dataclass
class _Section:
    title: str
    level: int
    anchor: str
    blocks: list[tuple[str, object]] = field(default_factory=list)


def _numeric_columns(t: _Table) -> list[bool]:
    """Columns whose cells are all numbers (or empty), at least one being a number."""
    return [
        all(_is_number(r[j]) or r[j] is None for r in t.rows)
        and any(_is_number(r[j]) for r in t.rows)
        for j in range(len(t.header))
    ]


class Report:
    """An ordered list of sections holding text, tables, figures, code and key/value lists.

    Parameters
    ----------
    title : str
        The report's title (``<h1>``).
    subtitle : str, optional
        A line of Markdown under the title (e.g. the data root and date).

    Notes
    -----
    Every ``add_*`` method appends to the last section added (or to the preamble before the
    first section) and returns the report, so calls can be chained. Text is escaped; the
    ``text_md`` arguments accept the Markdown subset of :func:`markdown_to_html`.
    """

    def __init__(self, title: str, *, subtitle: str | None = None):
        self.title = str(title)
        self.subtitle = subtitle
        self.created = _dt.datetime.now().astimezone()
        self._preamble = _Section(title="", level=1, anchor="top")
        self.sections: list[_Section] = []
        self._anchors: set[str] = {"top", "contents"}
        self._n_figures = 0

    # ------------------------------------------------------------------ building

    @property
    def _current(self) -> _Section:
        return self.sections[-1] if self.sections else self._preamble

    def add_section(self, title: str, text_md: str | None = None, *, level: int = 2) -> Report:
        """Start a section (``level=2``) or a subsection (``level=3``, ``4``).

        Parameters
        ----------
        title : str
        text_md : str, optional
            Markdown text opening the section.
        level : {2, 3, 4}
        """
        if level not in (2, 3, 4):
            raise ValueError(f"section level must be 2, 3 or 4, got {level}")
        anchor = base = _slug(str(title))
        k = 2
        while anchor in self._anchors:
            anchor = f"{base}-{k}"
            k += 1
        self._anchors.add(anchor)
        self.sections.append(_Section(title=str(title), level=level, anchor=anchor))
        if text_md:
            self.add_text(text_md)
        return self

    def add_text(self, text_md: str) -> Report:
        """A block of Markdown text."""
        self._current.blocks.append(("text", str(text_md)))
        return self

    def add_note(self, text_md: str, *, kind: str = "info") -> Report:
        """A highlighted box (``kind`` "info" or "warning"), e.g. "the data is synthetic"."""
        if kind not in ("info", "warning"):
            raise ValueError(f"note kind must be 'info' or 'warning', got {kind!r}")
        self._current.blocks.append(("note", (kind, str(text_md))))
        return self

    def add_table(self, rows: Sequence, *, header: Sequence[str] | None = None,
                  caption: str | None = None, reference: Sequence | None = None,
                  reference_label: str = "reference", digits: int = 3) -> Report:
        """A table of our results, optionally followed by the reference (public) rows.

        Parameters
        ----------
        rows : list of dict, or list of sequences (then ``header`` is required)
            Dict rows: the columns are ``header`` if given, else the union of the keys in
            order of appearance; a missing key shows as a dash.
        header : sequence of str, optional
        caption : str, optional
        reference : list of dict or of sequences, optional
            Rows of published numbers, in the same form as ``rows``. They are listed after
            our rows, shaded, with a ``source`` column reading "ours" / ``reference_label``
            (unless the table already has a ``source`` column).
        reference_label : str
        digits : int
            Decimals of float cells. Numeric cells are right-aligned.
        """
        rows = list(rows)
        ref_rows = list(reference or [])
        dict_rows = [r for r in rows + ref_rows if isinstance(r, Mapping)]
        if dict_rows and len(dict_rows) != len(rows) + len(ref_rows):
            raise ValueError("table rows must be all dicts or all sequences")
        if header is None:
            if not dict_rows and (rows or ref_rows):
                raise ValueError("sequence rows need a header")
            cols: list[str] = []
            for r in dict_rows:
                cols.extend(str(k) for k in r if str(k) not in cols)
        else:
            cols = [str(h) for h in header]

        def as_list(r) -> list:
            if isinstance(r, Mapping):
                by_name = {str(k): v for k, v in r.items()}
                return [by_name.get(c) for c in cols]
            r = list(r)
            if len(r) != len(cols):
                raise ValueError(f"row {r} has {len(r)} cells but the header has {len(cols)}")
            return r

        if not cols:
            empty = f"*{caption}:* no result" if caption else "*no result*"
            self._current.blocks.append(("text", empty))
            return self
        body = [as_list(r) for r in rows]
        ref_body = [as_list(r) for r in ref_rows]
        if ref_rows and "source" not in cols:
            cols = ["source", *cols]
            body = [["ours", *r] for r in body]
            ref_body = [[reference_label, *r] for r in ref_body]
        table = _Table(header=cols, rows=body + ref_body,
                       ref_mask=[False] * len(body) + [True] * len(ref_body),
                       caption=caption, digits=digits)
        self._current.blocks.append(("table", table))
        return self

    def add_kv(self, values: Mapping, *, caption: str | None = None) -> Report:
        """A two-column key/value table (configuration, versions, timings).

        Nested dicts are flattened to dotted keys (``model.hidden_size``).
        """
        rows = [[k, v] for k, v in _flatten(values)]
        table = _Table(header=["key", "value"], rows=rows, ref_mask=[False] * len(rows),
                       caption=caption, digits=4, kind="kv")
        self._current.blocks.append(("table", table))
        return self

    def add_code(self, text: str, *, caption: str | None = None) -> Report:
        """Preformatted text (a log excerpt, a classification report, a command line)."""
        self._current.blocks.append(("code", (str(text), caption)))
        return self

    add_pre = add_code

    def add_figure(self, figure, *, caption: str | None = None, name: str | None = None,
                   dpi: int = 110) -> Report:
        """A figure: a matplotlib Figure (rendered to PNG now) or an image file.

        Parameters
        ----------
        figure : matplotlib.figure.Figure or str or PathLike
            An image file may be PNG, JPEG, GIF or SVG.
        caption : str, optional
        name : str, optional
            File stem for ``figures/<name>.png`` in the Markdown version (default: from the
            caption, or the file's own name).
        dpi : int
            Resolution used to render a Figure.
        """
        self._n_figures += 1
        if isinstance(figure, (str, os.PathLike)):
            path = Path(figure)
            mime = _MIME.get(path.suffix.lower())
            if mime is None:
                raise DataError(f"cannot embed a {path.suffix or 'suffix-less'} file as a "
                                f"figure: use one of {', '.join(_MIME)}", path=path)
            try:
                data = path.read_bytes()
            except OSError as err:
                raise DataError(f"cannot read the figure ({err.strerror}); check that the "
                                "step that draws it has run", path=path) from err
            stem = name or path.stem
            suffix = path.suffix.lower()
            source = path
        elif hasattr(figure, "savefig"):
            buf = io.BytesIO()
            figure.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
            data, mime, suffix, source = buf.getvalue(), "image/png", ".png", None
            stem = name or (_slug(caption)[:60] if caption else "figure")
        else:
            raise TypeError(f"add_figure takes a Figure or an image path, not "
                            f"{type(figure).__name__}")
        fname = f"{self._n_figures:02d}-{_slug(stem)[:60]}{suffix}"
        self._current.blocks.append(("figure", _Figure(data=data, mime=mime, name=fname,
                                                       caption=caption, source=source)))
        return self

    # ------------------------------------------------------------------ rendering

    def _all_sections(self) -> list[_Section]:
        return [self._preamble, *self.sections]

    @staticmethod
    def _html_table(t: _Table) -> str:
        numeric_cols = _numeric_columns(t)
        parts = [f"<div class=\"table-wrap\"><table class=\"{t.kind}\">"]
        if t.caption:
            parts.append(f"<caption>{_inline(t.caption)}</caption>")
        num_attr = ' class="num"'
        head = "".join(
            f"<th scope=\"col\"{num_attr if numeric_cols[j] else ''}>{html.escape(h)}</th>"
            for j, h in enumerate(t.header))
        parts.append(f"<thead><tr>{head}</tr></thead><tbody>")
        for row, is_ref in zip(t.rows, t.ref_mask):
            cells = []
            for j, v in enumerate(row):
                cls = "num" if _is_number(v) or (numeric_cols[j] and v is None) else ""
                text = html.escape(_format(v, t.digits))
                if t.header[j] == "source" and is_ref:
                    text = f"<span class=\"badge\">{text}</span>"
                attr = f' class="{cls}"' if cls else ""
                cells.append(f"<td{attr}>{text}</td>")
            parts.append(f"<tr class=\"{'ref' if is_ref else 'ours'}\">{''.join(cells)}</tr>")
        parts.append("</tbody></table></div>")
        return "".join(parts)

    def _html_blocks(self, sec: _Section) -> list[str]:
        out = []
        for kind, item in sec.blocks:
            if kind == "text":
                out.append(markdown_to_html(item))
            elif kind == "note":
                note_kind, text = item
                out.append(f"<div class=\"note {note_kind}\">{markdown_to_html(text)}</div>")
            elif kind == "table":
                out.append(self._html_table(item))
            elif kind == "code":
                text, caption = item
                cap = f"<div class=\"code-caption\">{_inline(caption)}</div>" if caption else ""
                out.append(f"<figure class=\"code\">{cap}<pre>{html.escape(text)}</pre></figure>")
            elif kind == "figure":
                b64 = base64.b64encode(item.data).decode("ascii")
                alt = html.escape(item.caption or item.name)
                cap = f"<figcaption>{_inline(item.caption)}</figcaption>" if item.caption else ""
                out.append(f"<figure class=\"plot\"><img src=\"data:{item.mime};base64,{b64}\" "
                           f"alt=\"{alt}\">{cap}</figure>")
        return out

    def _toc_html(self) -> str:
        if not self.sections:
            return ""
        parts = ["<nav class=\"toc\" id=\"contents\"><h2>Contents</h2><ol>"]
        depth = self.sections[0].level
        base = depth
        for k, sec in enumerate(self.sections):
            level = max(sec.level, base)
            if k > 0:
                if level > depth:
                    parts.append("<ol>" * (level - depth))
                else:
                    parts.append("</li>" + "</ol></li>" * (depth - level))
            depth = level
            parts.append(f"<li><a href=\"#{sec.anchor}\">{html.escape(sec.title)}</a>")
        parts.append("</li>" + "</ol></li>" * (depth - base) + "</ol></nav>")
        return "".join(parts)

    def to_html(self) -> str:
        """The whole report as one self-contained HTML document."""
        stamp = self.created.strftime("%Y-%m-%d %H:%M %Z").strip()
        sub = f"<p class=\"subtitle\">{_inline(self.subtitle)}</p>" if self.subtitle else ""
        body = [f"<header id=\"top\"><h1>{html.escape(self.title)}</h1>{sub}"
                f"<p class=\"meta\">Generated {html.escape(stamp)} by musicaffect "
                f"{html.escape(_version('musicaffect'))}</p></header>"]
        pre = self._html_blocks(self._preamble)
        if pre:
            body.append(f"<div class=\"preamble\">{''.join(pre)}</div>")
        body.append(self._toc_html())
        body.append("<main>")
        for sec in self.sections:
            h = sec.level
            body.append(f"<section id=\"{sec.anchor}\" class=\"level{h}\">"
                        f"<h{h}>{html.escape(sec.title)}"
                        f"<a class=\"anchor\" href=\"#{sec.anchor}\" aria-label=\"link to this "
                        f"section\">#</a></h{h}>")
            body.extend(self._html_blocks(sec))
            body.append("</section>")
        body.append("</main><footer><a href=\"#top\">back to top</a></footer>")
        return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                f"<title>{html.escape(self.title)}</title>\n<style>{_CSS}</style>\n</head>\n"
                "<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")

    def to_markdown(self, figure_paths: Mapping[int, str] | None = None) -> str:
        """The report as Markdown; ``figure_paths`` maps ``id(figure block)`` to its file."""
        figure_paths = figure_paths or {}
        lines = [f"# {_md_text(self.title)}", ""]
        if self.subtitle:
            lines += [self.subtitle, ""]
        lines += [f"_Generated {self.created.strftime('%Y-%m-%d %H:%M %Z').strip()} by "
                  f"musicaffect {_version('musicaffect')}_", ""]
        if self.sections:
            lines += ["## Contents", ""]
            for sec in self.sections:
                indent = "  " * (sec.level - 2)
                lines.append(f"{indent}- [{_md_text(sec.title)}](#{sec.anchor})")
            lines.append("")
        for sec in self._all_sections():
            if sec is not self._preamble:
                lines += [f"<a id=\"{sec.anchor}\"></a>", "", f"{'#' * sec.level} {_md_text(sec.title)}",
                          ""]
            for kind, item in sec.blocks:
                lines += self._md_block(kind, item, figure_paths) + [""]
        return "\n".join(lines).rstrip() + "\n"

    @staticmethod
    def _md_block(kind: str, item, figure_paths: Mapping[int, str]) -> list[str]:
        if kind == "text":
            return [item]
        if kind == "note":
            note_kind, text = item
            label = "**Note.**" if note_kind == "info" else "**Warning.**"
            return [f"> {label} " + text.replace("\n", "\n> ")]
        if kind == "code":
            text, caption = item
            fence = "```"
            while fence in text:
                fence += "`"
            return ([f"_{caption}_", ""] if caption else []) + [fence, text, fence]
        if kind == "figure":
            path = figure_paths.get(id(item), f"figures/{item.name}")
            alt = (item.caption or item.name).replace("]", ")").replace("[", "(")
            out = [f"![{alt}]({path})"]
            if item.caption:
                out += ["", f"*{item.caption}*"]
            return out
        t: _Table = item
        out = [f"**{t.caption}**", ""] if t.caption else []
        numeric = _numeric_columns(t)
        out.append("| " + " | ".join(_md_cell(h) for h in t.header) + " |")
        out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        for row, is_ref in zip(t.rows, t.ref_mask):
            cells = [_md_cell(_format(v, t.digits)) for v in row]
            if is_ref and t.header and t.header[0] == "source":
                cells[0] = f"*{cells[0]}*"
            out.append("| " + " | ".join(cells) + " |")
        return out

    def write(self, out_dir: str | os.PathLike, *, basename: str = "report") -> tuple[Path, Path]:
        """Write ``<basename>.html``, ``<basename>.md`` and ``figures/`` into ``out_dir``.

        Figures given as files already inside ``out_dir`` are referenced where they are;
        other figures are written to ``out_dir/figures/``. Files are replaced atomically.

        Returns
        -------
        html_path, md_path : Path
        """
        out = Path(out_dir)
        try:
            out.mkdir(parents=True, exist_ok=True)
            figure_paths: dict[int, str] = {}
            root = out.resolve()
            for sec in self._all_sections():
                for kind, item in sec.blocks:
                    if kind != "figure":
                        continue
                    if item.source is not None:
                        src = item.source.resolve()
                        if src.is_relative_to(root):
                            figure_paths[id(item)] = src.relative_to(root).as_posix()
                            continue
                    target = out / "figures" / item.name
                    target.parent.mkdir(exist_ok=True)
                    if item.source is not None:
                        shutil.copyfile(item.source, target)
                    else:
                        _atomic_write(target, item.data)
                    figure_paths[id(item)] = f"figures/{item.name}"
            html_path = out / f"{basename}.html"
            md_path = out / f"{basename}.md"
            _atomic_write(html_path, self.to_html().encode("utf-8"))
            _atomic_write(md_path, self.to_markdown(figure_paths).encode("utf-8"))
        except OSError as err:
            raise DataError(f"cannot write the report ({err.strerror}); check that the "
                            "folder is writable and the disk is not full",
                            path=err.filename or out) from err
        return html_path, md_path


def _atomic_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# ----------------------------------------------------------------------------- environment


def _version(dist: str) -> str:
    if dist == "musicaffect":
        from musicaffect import __version__

        return __version__
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def software_versions() -> dict[str, str]:
    """Versions of Python and of the libraries a result depends on.

    Returns
    -------
    versions : dict[str, str]
        Keys ``python``, ``musicaffect``, ``torch``, ``lightning``, ``numpy``, ``scipy``,
        ``sklearn``, ``librosa``, ``matplotlib`` and ``platform``; "not installed" when a
        library is missing. Reads package metadata only (imports nothing heavy).
    """
    dists = {"musicaffect": "musicaffect", "torch": "torch", "lightning": "lightning",
             "numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn",
             "librosa": "librosa", "matplotlib": "matplotlib"}
    out = {"python": platform.python_version()}
    out.update({key: _version(dist) for key, dist in dists.items()})
    out["platform"] = platform.platform()
    return out


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_description() -> str:
    """One line describing the CPU and the accelerators torch can use.

    Returns
    -------
    description : str
        E.g. ``"CPU: AMD EPYC 7B13 (2 cores available); GPU 0: NVIDIA H100 80GB HBM3
        (79.1 GiB), CUDA 12.1"`` or ``"...; no GPU"``.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    parts = [f"CPU: {_cpu_name()} ({cores} cores available)"]
    try:
        import torch
    except ImportError:
        return parts[0] + "; torch not installed"
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            prop = torch.cuda.get_device_properties(i)
            parts.append(f"GPU {i}: {prop.name} ({prop.total_memory / 2**30:.1f} GiB)")
        parts[-1] += f", CUDA {torch.version.cuda}"
    elif getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        parts.append("Apple MPS")
    else:
        parts.append("no GPU")
    return "; ".join(parts)


_CSS = """
:root{--fg:#1d2430;--muted:#5b6677;--line:#d9dee7;--bg:#ffffff;--soft:#f4f6f9;
--accent:#1f6fb2;--ref:#eef1f5;--warn:#fff6e0;--warnline:#e0a800;--info:#e9f2fb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:16px/1.55 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,"Helvetica Neue",Arial,
sans-serif}
header,main,footer,nav.toc,.preamble{max-width:1080px;margin:0 auto;padding:0 24px}
header{padding-top:32px;border-bottom:3px solid var(--accent);padding-bottom:12px}
h1{font-size:2rem;margin:0 0 4px}
.subtitle{margin:4px 0;font-size:1.1rem}
.meta{color:var(--muted);font-size:.9rem;margin:4px 0}
nav.toc{margin-top:20px}
nav.toc h2{font-size:1.1rem;margin:0 0 6px;color:var(--muted);text-transform:uppercase;
letter-spacing:.05em}
nav.toc ol{margin:0;padding-left:1.4em}
nav.toc a{color:var(--accent);text-decoration:none}
nav.toc a:hover{text-decoration:underline}
section{margin:28px 0}
section.level2{border-top:1px solid var(--line);padding-top:8px}
h2{font-size:1.5rem;margin:12px 0 8px}h3{font-size:1.2rem;margin:18px 0 6px}
h4{font-size:1.05rem;margin:14px 0 6px}
a.anchor{margin-left:.4em;color:var(--line);text-decoration:none;font-weight:400}
h2:hover a.anchor,h3:hover a.anchor,h4:hover a.anchor{color:var(--muted)}
p{margin:8px 0}
code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.9em;
background:var(--soft);padding:1px 4px;border-radius:3px}
pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85rem;
background:var(--soft);border:1px solid var(--line);border-radius:6px;padding:10px 12px;
overflow-x:auto;margin:0}
pre code{background:none;padding:0}
figure{margin:16px 0}
figure.code .code-caption{color:var(--muted);font-size:.9rem;margin-bottom:4px}
figure.plot{text-align:center}
figure.plot img{max-width:100%;height:auto;border:1px solid var(--line);border-radius:6px;
background:#fff}
figcaption{color:var(--muted);font-size:.92rem;margin-top:6px}
.table-wrap{overflow-x:auto;margin:14px 0}
table{border-collapse:collapse;font-size:.92rem;min-width:40%}
caption{caption-side:top;text-align:left;font-weight:600;padding-bottom:6px}
th,td{border-bottom:1px solid var(--line);padding:5px 12px;text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600;border-bottom:2px solid var(--line)}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.ours td{font-weight:500}
tr.ref td{background:var(--ref);color:var(--muted);font-style:italic}
tr.ours + tr.ref td{border-top:2px solid var(--muted)}
table.kv td:first-child{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
font-size:.85rem;color:var(--muted)}
.badge{display:inline-block;font-size:.75rem;font-style:normal;padding:0 6px;border-radius:8px;
background:var(--line);color:var(--fg)}
.note{border-left:4px solid var(--accent);background:var(--info);padding:6px 14px;margin:14px 0;
border-radius:0 6px 6px 0}
.note.warning{border-left-color:var(--warnline);background:var(--warn)}
blockquote{margin:8px 0;padding-left:12px;border-left:3px solid var(--line);color:var(--muted)}
.url{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.85em}
footer{border-top:1px solid var(--line);margin-top:36px;padding-top:10px;padding-bottom:30px;
font-size:.9rem}
footer a{color:var(--accent)}
@media print{nav.toc{page-break-after:always}section.level2{page-break-inside:avoid}
a.anchor{display:none}}
"""
