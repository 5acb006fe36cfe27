"""Tables the HTML report can show inline (Snakemake embeds .html) and the same rows as CSV for scripts."""

from __future__ import annotations

import csv
import html
import io

from ..atomic import write_text

_STYLE = ("<style>body{font-family:sans-serif;font-size:14px;margin:12px}table{border-collapse:collapse;"
          "margin:6px 0 18px}th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}"
          "td:first-child,th:first-child{text-align:left}td.bad{background:#fde2e1}td.best{font-weight:bold}"
          "</style>")


def fmt(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def html_table(header: list[str], rows: list[list], classes: list[list[str]] | None = None) -> str:
    """rows of already formatted cells; classes (same shape) marks cells 'best' / 'bad'."""
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for i, row in enumerate(rows):
        marks = classes[i] if classes else [""] * len(row)
        body.append("<tr>" + "".join(f'<td class="{m}">{html.escape(str(c))}</td>' for c, m in zip(row, marks))
                    + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def html_page(title: str, parts: list[str]) -> str:
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{_STYLE}"
            f"</head><body><h2>{html.escape(title)}</h2>{''.join(parts)}</body></html>")


def paragraph(text: str) -> str:
    return f"<p>{html.escape(text)}</p>"


def heading(text: str) -> str:
    return f"<h3>{html.escape(text)}</h3>"


def write_csv(path, header: list[str], rows: list[list]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    write_text(path, buffer.getvalue())
