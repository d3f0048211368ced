"""What the analyst notebooks show: figures with a title and alt text, tables in words.

A matplotlib figure shown inline is a bare PNG (no alt text, no title), and a
pandas table prints counts that went through a float as ``1675.0``. These two
helpers give a notebook's outputs the same form as the decision report's:
captioned images and numbers formatted for people.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from churnclv._report_figures import count, money, pct, words

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

__all__ = ["CaptionedFigure", "captioned_figure", "readable_table"]


class CaptionedFigure:
    """A rendered figure with its title and alt text, displayed as ``<figure>`` in Jupyter.

    Jupyter and ``nbconvert`` prefer the HTML form (an ``<img>`` with ``alt``
    and ``title`` and a caption); the PNG is kept beside it for other frontends.

    Parameters
    ----------
    png : bytes
        The image.
    title : str
        The caption, also the image's ``title``.
    alt : str
        What the image shows, for readers who cannot see it.

    Examples
    --------
    >>> from churnclv import CaptionedFigure
    >>> fig = CaptionedFigure(b"png", "Churn by month", "Churn rises in spring")
    >>> fig
    <figure: Churn by month>
    >>> "alt='Churn rises in spring'" in fig.html
    True
    """

    def __init__(self, png: bytes, title: str, alt: str) -> None:
        self.png = png
        self.title = title
        self.alt = alt

    @property
    def html(self) -> str:
        """The ``<figure>`` element, the image inlined as base64."""
        b64 = base64.b64encode(self.png).decode()
        title, alt = html.escape(self.title, quote=True), html.escape(self.alt, quote=True)
        return (
            f"<figure style='margin:0'><img src='data:image/png;base64,{b64}' alt='{alt}' "
            f"title='{title}' style='max-width:100%'><figcaption>{title}</figcaption></figure>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        return {
            "text/html": self.html,
            "image/png": base64.b64encode(self.png).decode(),
            "text/plain": repr(self),
        }

    def __repr__(self) -> str:
        return f"<figure: {self.title}>"


def captioned_figure(fig: Figure, title: str, alt: str | None = None) -> CaptionedFigure:
    """Render ``fig`` to PNG with a title and alt text, and close it.

    Closing it keeps the inline backend from showing a second, unlabelled copy:
    display the result instead (``display(captioned_figure(fig, ...))``, or as
    a cell's last expression).

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        The figure to show.
    title : str
        Its caption and image title.
    alt : str, optional
        What it shows, in a sentence; default ``title``.

    Returns
    -------
    CaptionedFigure

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> from churnclv import captioned_figure
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([1, 2, 3])
    >>> shown = captioned_figure(fig, "A line", "A line rising from 1 to 3")
    >>> shown.png[:4], plt.fignum_exists(fig.number)
    (b'\\x89PNG', False)
    """
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=96, bbox_inches="tight")
    plt.close(fig)
    return CaptionedFigure(buf.getvalue(), title, alt if alt else title)


def _is_count(col: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(col) or not pd.api.types.is_numeric_dtype(col):
        return False
    if pd.api.types.is_integer_dtype(col):
        return True
    values = col.dropna().to_numpy(float)
    return bool(len(values)) and bool(np.all(values == np.round(values)))


def _label(name: object, labels: Mapping[str, str]) -> object:
    if not isinstance(name, str):
        return name
    return labels.get(name, words(name) if "_" in name or name.islower() else name)


def readable_table(
    frame: pd.DataFrame,
    *,
    money_cols: Iterable[str] = (),
    share_cols: Iterable[str] = (),
    digits: int = 3,
    labels: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """``frame`` as text for people: counts ``1,675``, money ``10,970``, shares ``3.1%``.

    Columns of whole numbers are counts; columns named in ``money_cols`` and
    ``share_cols`` are money and shares; other numbers keep ``digits``
    decimals. Column and index names become words (``expected_net_gain`` ->
    ``Expected net gain``) unless ``labels`` names them.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table to show.
    money_cols, share_cols : iterable of str
        Columns holding money and shares (0.031 = 3.1%).
    digits : int, default 3
        Decimals of the other numeric columns.
    labels : mapping, optional
        Column or index name -> header shown.

    Returns
    -------
    pandas.DataFrame
        Same index and columns (renamed), every cell a string.

    Examples
    --------
    >>> import pandas as pd
    >>> from churnclv import readable_table
    >>> t = pd.DataFrame({"customers": [1675.0, 20.0], "cost": [10970.2, 4.5],
    ...                   "share": [0.031, 0.5], "auc": [0.81234, 0.7]},
    ...                  index=pd.Index(["email_reminder", "none"], name="action"))
    >>> readable_table(t, money_cols=["cost"], share_cols=["share"])
                   Customers    Cost  Share    Auc
    Action
    email_reminder     1,675  10,970   3.1%  0.812
    none                  20    4.50  50.0%  0.700
    """
    labels = dict(labels or {})
    money_set, share_set = set(money_cols), set(share_cols)
    out = pd.DataFrame(index=frame.index)
    for name in frame.columns:
        col = frame[name]
        if name in money_set:
            cells = [money(v) if pd.notna(v) else "-" for v in col]
        elif name in share_set:
            cells = [pct(v) if pd.notna(v) else "-" for v in col]
        elif _is_count(col):
            cells = [count(v) if pd.notna(v) else "-" for v in col]
        elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
            cells = [f"{float(v):,.{digits}f}" if pd.notna(v) else "-" for v in col]
        else:
            cells = ["-" if v is None or v is pd.NA else str(v) for v in col]
        out[name] = pd.Series(cells, index=frame.index, dtype=object)
    out.columns = [_label(c, labels) for c in frame.columns]
    out.columns.name = _label(frame.columns.name, labels)
    out.index = out.index.set_names([_label(n, labels) for n in frame.index.names])
    return out
