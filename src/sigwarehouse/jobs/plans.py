"""plan → dry run → run, said the same way by every command: `carry_out`.

A job module supplies a plan (`describe`, `is_empty`) and a function that runs it; the
commands and the demo call `carry_out`, so each says "nothing to do" the same way and a
plan with nothing missing starts no run. Apart from skeleton.py, which imports the write
path (pyarrow), so that the commands import only this at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar


class Plan(Protocol):
    def describe(self) -> str: ...

    def is_empty(self) -> bool: ...


class Summary(Protocol):
    status: str

    def describe(self) -> str: ...


P = TypeVar("P", bound=Plan)
S = TypeVar("S", bound=Summary)


def carry_out(
    plan: P,
    run: Callable[[P], S],
    *,
    dry_run: bool = False,
    say: Callable[[str], None] | None = None,
    nothing: str = "everything is stored",
) -> S | None:
    """Show the plan, and run it unless it is empty or a dry run; the run's summary, or
    None when nothing ran. `say` (None: silent) gets the plan, "nothing to do: <nothing>"
    and the summary; a caller that says nothing reports the summary itself."""
    if say:
        say(plan.describe())
    if plan.is_empty():
        if say:
            say(f"nothing to do: {nothing}")
        return None
    if dry_run:
        return None
    summary = run(plan)
    if say:
        say(summary.describe())
    return summary
