"""``churnclv demo``'s lines on the learned actions: the gate's verdict and, by the synthetic
truth, what the learned, the policy formula's and the oracle's actions are worth."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from churnclv._cli_output import out

if TYPE_CHECKING:
    from churnclv._demo import DemoResult

__all__ = ["DemoUplift", "print_learned_actions"]

DemoUplift = Annotated[
    bool,
    typer.Option(
        "--uplift/--no-uplift",
        help="Learn the actions from the generated campaign log (train-uplift --promote) "
        "and score with the uplift model; --no-uplift keeps the policy formula.",
    ),
]

_HEADERS = {
    "learned": "uplift model",
    "policy": "policy formula",
    "oracle": "oracle (truth)",
}


def print_learned_actions(result: DemoResult) -> None:
    """The uplift step's outcome; nothing when the demo ran without it."""
    from churnclv._report_figures import words
    from churnclv._report_uplift import basis_sentence

    trained = result.uplift
    if trained is None:
        return
    promoted = "promoted to champion" if trained.promoted else "not promoted"
    out.print(
        f"uplift model v{trained.version} ({promoted}), trained on "
        f"{trained.n_sends.get('train', 0) + trained.n_sends.get('holdout', 0):,} campaign sends"
    )
    decision = result.champion.uplift.decision_ if result.champion.uplift is not None else None
    out.print(basis_sentence(result.scored, decision))
    comparison = result.comparison
    if comparison is None:
        return
    t = Table(title="Customers contacted per action: learned vs policy formula vs oracle")
    t.add_column("action")
    for key in comparison.counts.columns:
        t.add_column(_HEADERS.get(key, key), justify="right")
    for action, row in comparison.counts.iterrows():
        t.add_row(words(str(action)).lower(), *(f"{int(n):,}" for n in row))
    t.add_section()
    t.add_row(
        "true value per customer",
        *(f"{comparison.true_value[k]:,.2f}" for k in comparison.counts.columns),
    )
    out.print(t)
