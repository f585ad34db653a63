"""Self-contained HTML pages with plots: what every report (data, monitoring) is built from.

Plots are matplotlib figures embedded as base64 PNG, so a page opens offline, from a
mail attachment or an artifact link, with nothing to fetch.
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no screen: render to memory
# Labels are shop text (categories, regions): a "$" in one is a dollar sign, not TeX to parse.
matplotlib.rcParams["text.parse_math"] = False

import matplotlib.pyplot as plt  # noqa: E402
from pydantic import BaseModel  # noqa: E402

STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:auto}table{border-collapse:collapse}"
    "td,th{border:1px solid #ccc;padding:2px 6px;font-size:90%}figure{display:inline-block}"
)


def png(figure) -> str:
    """The figure as base64 PNG (and closed: a report renders many)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def img(alt: str, encoded_png: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded_png}">'


def html_table(rows: list[dict]) -> str:
    if not rows:
        return "<p>none</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>{body}</body></html>"
    )


class Figure(BaseModel):
    name: str
    title: str
    values: int  # how many values it plots (0 = nothing to show)


def figure_html(name: str, title: str, encoded_png: str, values: int) -> str:
    """A figure that says how many values it plots (data-values), so a test or a reader can
    tell a figure with data from empty axes."""
    return (
        f'<figure data-name="{html.escape(name)}" data-values="{values}">'
        f"{img(title, encoded_png)}</figure>"
    )


def figure_sections(sections: list[tuple[str, str, tuple[str, int]]]) -> tuple[list[Figure], str]:
    """(name, title, (png, values)) per figure → their descriptions, and their HTML with a
    heading each."""
    figures = [
        Figure(name=name, title=title, values=values) for name, title, (_, values) in sections
    ]
    body = "".join(
        f"<h2>{html.escape(title)}</h2>" + figure_html(name, title, encoded, values)
        for name, title, (encoded, values) in sections
    )
    return figures, body


def write_page(folder: Path, filename: str, title: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / filename
    path.write_text(page(title, body))
    return path
