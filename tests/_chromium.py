"""Headless Chromium for the tests that read a page as a person sees it (report, notebooks)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: A count as people write it: 1,675 (no decimals).
COUNT = re.compile(r"^\d{1,3}(,\d{3})*$")
#: A count printed as a float: 1675.00, 1,675.0.
FLOAT_COUNT = re.compile(r"^-?\d[\d,]*\.0+$")

_BASE = ["--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars"]


class Page(HTMLParser):
    """Tables (rows of cell text, header row first), images and links of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: list[list[list[str]]] = []
        self.images: list[dict[str, str]] = []
        self.links: list[str] = []
        self.captions = 0
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "img":
            self.images.append(a)
        elif tag == "a" and "href" in a:
            self.links.append(a["href"])
        elif tag == "figcaption":
            self.captions += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            if self.tables and self.tables[-1]:
                self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@dataclass
class Rendered:
    """What Chromium made of a page: the DOM after layout, console lines, the parsed page."""

    dom: str
    console: list[str]
    page: Page


def render(html: Path, width: int = 1280, height: int = 2400, png: Path | None = None) -> Rendered:
    """Load ``html`` in headless Chromium; return its DOM and every console message.

    With ``png``, the same load also saves a ``width`` x ``height`` screenshot there.

    A page that runs no script of its own logs nothing: any console line
    (chromium logs them as ``INFO:CONSOLE``) or uncaught error is a fault.
    """
    assert CHROMIUM is not None
    out = subprocess.run(
        [
            CHROMIUM,
            *_BASE,
            f"--window-size={width},{height}",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            *([f"--screenshot={png}"] if png is not None else []),
            html.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    console = [line for line in out.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    page = Page()
    page.feed(out.stdout)
    return Rendered(out.stdout, console, page)


def count_columns(table: list[list[str]]) -> list[int]:
    """Indexes of the header cells that name a count (customers, orders, runs, rows)."""
    if not table:
        return []
    words = ("customers", "orders", "runs", "rows", "count", "cust.")
    return [
        j
        for j, name in enumerate(table[0])
        if any(w in name.lower() for w in words) and "share" not in name.lower()
    ]


def float_counts(page: Page) -> list[tuple[str, str]]:
    """(header, cell) of every count cell printed as a float (``1675.00``), in any table."""
    bad = []
    for table in page.tables:
        for j in count_columns(table):
            bad.extend(
                (table[0][j], row[j])
                for row in table[1:]
                if j < len(row) and FLOAT_COUNT.match(row[j])
            )
    return bad


def unlabelled_images(page: Page) -> list[dict[str, str]]:
    """Images without alt text or without a title."""
    return [
        {k: v for k, v in img.items() if k != "src"}
        for img in page.images
        if not img.get("alt", "").strip() or not img.get("title", "").strip()
    ]
