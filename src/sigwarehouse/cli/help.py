"""How `--help` reads: click's plain layout, arguments named as click names them.

Typer's rich panels keep every line break of a docstring, fold a column that is too
narrow in the middle of a word (`parque t`), and print a type after every flag
(`--dry-run <bool>`). The plain layout (`rich_markup_mode=None` on the app) reflows each
paragraph to the terminal, puts a long option on a line of its own instead of cutting
it, and shows no type for a flag. What it still does Typer's way, `{query}` for a
required argument in the usage line and `query <str>` in the list, `HelpCommand` does
the click way: `QUERY`, `[NAME]` when optional; and a group lists each command with
its first sentence whole, where click would cut it to the terminal's width.
"""

from __future__ import annotations

import typer
from typer.core import TyperCommand, TyperGroup


def _name(param) -> str:
    """An argument as usage lines name it: QUERY, [NAME] when optional, NAME... when it
    takes several values."""
    name = (param.metavar or param.name).upper()
    if param.nargs != 1:
        name += "..."
    return name if param.required else f"[{name}]"


class _WholeSummary:
    """In a group's list of commands, a command's first sentence whole (wrapped), never
    cut to the terminal width with "..."."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return super().get_short_help_str(limit=10_000)


class HelpGroup(_WholeSummary, TyperGroup):
    """A group (`sigwh`, `sigwh dataset`, ...) whose list of commands is never cut."""


class HelpCommand(_WholeSummary, TyperCommand):
    """A command whose help names its arguments in upper case, without a type."""

    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        arguments = [p for p in self.get_params(ctx) if p.param_type_name == "argument"]
        return pieces + [_name(p) for p in arguments]

    def format_options(self, ctx, formatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((_name(param).strip("[]"), record[1]))
            else:
                options.append(record)
        for title, rows in (("Arguments", arguments), ("Options", options)):
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


def apply(app: typer.Typer) -> None:
    """Give `app` and its sub-apps HelpGroup, and every command HelpCommand (unless it
    asks for another class). Call once every command is registered."""
    app.info.cls = HelpGroup
    for info in app.registered_commands:
        if info.cls in (None, TyperCommand):  # Typer's default, filled in at registration
            info.cls = HelpCommand
    for group in app.registered_groups:
        apply(group.typer_instance)
