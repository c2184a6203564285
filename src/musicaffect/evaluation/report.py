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
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from musicaffect.errors import DataError
from musicaffect.evaluation.environment import (
    device_description,
    package_version,
    software_versions,
)
from musicaffect.evaluation.report_text import (
    flatten,
    format_value,
    inline_html,
    is_number,
    markdown_to_html,
    md_cell,
    md_text,
    slug,
)
from musicaffect.io import atomic_write

__all__ = ["Report", "device_description", "markdown_to_html", "software_versions"]

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
         ".gif": "image/gif", ".svg": "image/svg+xml"}


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
        all(is_number(r[j]) or r[j] is None for r in t.rows)
        and any(is_number(r[j]) for r in t.rows)
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
        anchor = base = slug(str(title))
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
        rows = [[k, v] for k, v in flatten(values)]
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
            stem = name or (slug(caption)[:60] if caption else "figure")
        else:
            raise TypeError(f"add_figure takes a Figure or an image path, not "
                            f"{type(figure).__name__}")
        fname = f"{self._n_figures:02d}-{slug(stem)[:60]}{suffix}"
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
            parts.append(f"<caption>{inline_html(t.caption)}</caption>")
        num_attr = ' class="num"'
        head = "".join(
            f"<th scope=\"col\"{num_attr if numeric_cols[j] else ''}>{html.escape(h)}</th>"
            for j, h in enumerate(t.header))
        parts.append(f"<thead><tr>{head}</tr></thead><tbody>")
        for row, is_ref in zip(t.rows, t.ref_mask):
            cells = []
            for j, v in enumerate(row):
                cls = "num" if is_number(v) or (numeric_cols[j] and v is None) else ""
                text = html.escape(format_value(v, t.digits))
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
                cap = f"<div class=\"code-caption\">{inline_html(caption)}</div>" if caption else ""
                out.append(f"<figure class=\"code\">{cap}<pre>{html.escape(text)}</pre></figure>")
            elif kind == "figure":
                b64 = base64.b64encode(item.data).decode("ascii")
                alt = html.escape(item.caption or item.name)
                cap = f"<figcaption>{inline_html(item.caption)}</figcaption>" if item.caption else ""
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
        """The whole report as one self-contained HTML document.

        The page is ``templates/report.html.j2`` (Jinja2, autoescaped) with
        ``templates/report.css`` inlined; both are package data.
        """
        sections = [{"anchor": sec.anchor, "level": sec.level, "title": sec.title,
                     "body_html": "\n".join(self._html_blocks(sec))} for sec in self.sections]
        return _template().render(
            title=self.title, css=_package_text("report.css"),
            subtitle_html=inline_html(self.subtitle) if self.subtitle else "",
            stamp=self.created.strftime("%Y-%m-%d %H:%M %Z").strip(),
            version=package_version("musicaffect"),
            preamble_html="".join(self._html_blocks(self._preamble)),
            toc_html=self._toc_html(), sections=sections) + "\n"

    def to_markdown(self, figure_paths: Mapping[int, str] | None = None) -> str:
        """The report as Markdown; ``figure_paths`` maps ``id(figure block)`` to its file."""
        figure_paths = figure_paths or {}
        lines = [f"# {md_text(self.title)}", ""]
        if self.subtitle:
            lines += [self.subtitle, ""]
        lines += [f"_Generated {self.created.strftime('%Y-%m-%d %H:%M %Z').strip()} by "
                  f"musicaffect {package_version('musicaffect')}_", ""]
        if self.sections:
            lines += ["## Contents", ""]
            for sec in self.sections:
                indent = "  " * (sec.level - 2)
                lines.append(f"{indent}- [{md_text(sec.title)}](#{sec.anchor})")
            lines.append("")
        for sec in self._all_sections():
            if sec is not self._preamble:
                lines += [f"<a id=\"{sec.anchor}\"></a>", "", f"{'#' * sec.level} {md_text(sec.title)}",
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
        out.append("| " + " | ".join(md_cell(h) for h in t.header) + " |")
        out.append("|" + "|".join("---:" if n else "---" for n in numeric) + "|")
        for row, is_ref in zip(t.rows, t.ref_mask):
            cells = [md_cell(format_value(v, t.digits)) for v in row]
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
                        atomic_write(target, item.data)
                    figure_paths[id(item)] = f"figures/{item.name}"
            html_path = out / f"{basename}.html"
            md_path = out / f"{basename}.md"
            atomic_write(html_path, self.to_html().encode("utf-8"))
            atomic_write(md_path, self.to_markdown(figure_paths).encode("utf-8"))
        except OSError as err:
            raise DataError(f"cannot write the report ({err.strerror}); check that the "
                            "folder is writable and the disk is not full",
                            path=err.filename or out) from err
        return html_path, md_path


def _package_text(name: str) -> str:
    from importlib import resources

    return (resources.files("musicaffect.evaluation") / "templates" / name).read_text()


def _template():
    import jinja2

    env = jinja2.Environment(autoescape=True, keep_trailing_newline=True,
                             undefined=jinja2.StrictUndefined)
    return env.from_string(_package_text("report.html.j2"))
