"""How `--help` reads: click's plain layout, arguments named as click names them.

Typer's rich panels keep every line break of a docstring, fold a column that is too
narrow in the middle of a word (`parque t`), and print a type after every flag
(`--dry-run <bool>`). The plain layout (`rich_markup_mode=None` on the app) reflows each
paragraph to the terminal, puts a long option on a line of its own instead of cutting
it, and shows no type for a flag. What it still does Typer's way, `{query}` for a
required argument in the usage line and `query <str>` in the list, `HelpCommand` does
the click way: `QUERY`, `[NAME]` when optional; and a group lists each command with
its first sentence whole, where click would cut it to the terminal's width. Click also
cuts a word longer than the column (`$SL` / `URM_ARRAY_TASK_COUNT`) and breaks at
hyphens (`read-` / `only`); `UnbrokenFormatter` wraps at spaces only, letting such a
word run past the column instead.
"""

from __future__ import annotations

import textwrap

import typer
from typer.core import TyperCommand, TyperGroup

_Context = TyperCommand.context_class  # click's Context (typer vendors click in 0.2x)


def _wrap(text: str, width: int, indent: str = "") -> list[str]:
    """Lines of `text` at most `width` wide where words allow, never cutting a word or
    at a hyphen. Paragraphs (split by a blank line) are wrapped one by one; one whose
    first line is click's no-rewrap mark (\\b) keeps its lines."""
    lines: list[str] = []
    for n, paragraph in enumerate(text.expandtabs().split("\n\n")):
        if n:
            lines.append("")
        kept = paragraph.splitlines()
        if kept and kept[0].strip() == "\b":
            lines += [indent + line for line in kept[1:]]
            continue
        lines += textwrap.wrap(
            " ".join(line.strip() for line in kept),
            max(width, 10),
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines


class UnbrokenFormatter(_Context.formatter_class):
    """click's help layout, wrapped by `_wrap`: no word is ever cut."""

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        self.write("\n".join(_wrap(text, self.width, indent)) + "\n")

    def write_dl(self, rows, col_max: int = 30, col_spacing: int = 2) -> None:
        rows = list(rows)
        first_col = min(max((len(first) for first, _ in rows), default=0), col_max) + col_spacing
        margin = " " * (self.current_indent + first_col)
        for first, second in rows:
            self.write(" " * self.current_indent + first)
            if not second:
                self.write("\n")
                continue
            if len(first) <= first_col - col_spacing:
                self.write(" " * (first_col - len(first)))
            else:  # a long option: its help starts on the next line
                self.write("\n" + margin)
            lines = _wrap(second, self.width - first_col - self.current_indent - 2) or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write((margin + line if line else "") + "\n")


class HelpContext(_Context):
    formatter_class = UnbrokenFormatter


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

    context_class = HelpContext


class HelpCommand(_WholeSummary, TyperCommand):
    """A command whose help names its arguments in upper case, without a type."""

    context_class = HelpContext

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
