"""`--help` of every command as a user reads it in an 80- or 60-column terminal: no type
after a flag, arguments named QUERY (not `{query}`), choices never cut inside a word,
paragraphs reflowed (no line broken early), and a default for every option that has
one."""

from __future__ import annotations

import re

import pytest
import typer
from typer.testing import CliRunner

from sigwarehouse.cli import app
from sigwarehouse.cli.demo import DEMO_PER_LABEL, DEMO_PRESET
from sigwarehouse.freqrex.params import FreqrexParams


def _commands(cmd, path: tuple[str, ...] = ()):
    """(path, command) of the root and every command below it. (Typer's groups are not
    click.Group instances, so this walks whatever has `commands`.)"""
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(app)))


def _help(path: tuple[str, ...], columns: int) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], terminal_width=columns)
    assert result.exit_code == 0, result.output
    return result.output


def test_the_walk_reaches_sub_commands() -> None:
    names = {" ".join(path) for path, _ in COMMANDS}
    assert {"sql", "ingest", "dataset add", "dataset relocate", "zoo train"} <= names


@pytest.mark.parametrize("path", [p for p, _ in COMMANDS], ids=lambda p: " ".join(p) or "sigwh")
@pytest.mark.parametrize("columns", [80, 60])
def test_help_reads_as_plain_text(path: tuple[str, ...], columns: int) -> None:
    cmd = dict(COMMANDS)[path]
    text = _help(path, columns)
    assert "<bool>" not in text
    assert not re.search(r"\{\w+\}", text.split("\n", 1)[0]), text  # usage: QUERY, not {query}
    width = columns
    assert max(len(line) for line in text.splitlines()) <= width, text
    for param in cmd.params:
        desc = param.type_descriptor
        if desc.is_choice:  # listed whole, on one line
            choices = [getattr(c, "value", c) for c in desc.choices]
            assert "|".join(map(str, choices)) in text
    _assert_paragraphs_filled(text, width)


def _assert_paragraphs_filled(text: str, width: int) -> None:
    """The description under the usage line is filled greedily: no line of a paragraph
    ends while the next line's first word would still have fitted."""
    description = text.split("\n\n", 1)[1].split("\n\nOptions:")[0].split("\n\nArguments:")[0]
    for paragraph in description.split("\n\n"):
        lines = paragraph.splitlines()
        for line, after in zip(lines, lines[1:], strict=False):
            word = after.split()[0]
            assert len(line) + 1 + len(word) > width, f"broken early: {line!r} / {after!r}"


def test_arguments_are_named_in_upper_case_without_a_type() -> None:
    text = _help(("sql",), 80)
    assert text.startswith("Usage: sigwh sql [OPTIONS] QUERY\n")
    assert "\n  QUERY  The SQL to run" in text and "<str>" not in text.split("Options:")[0]
    relocate = _help(("dataset", "relocate"), 80)
    assert "[OPTIONS] NAME NEW_ROOT\n" in relocate
    assert "[OPTIONS] [NAME]\n" in _help(("dataset", "add"), 80)


def test_flags_show_no_type_and_lists_a_metavar() -> None:
    text = _help(("ingest",), 80)
    assert re.search(r"\n  --dry-run +Print the plan", text)
    assert "--param KEY=VALUE" in text and "list[str]" not in text
    assert "--to CLASS" in _help(("transfer-label",), 80)


def test_defaults_are_shown_and_are_the_ones_used() -> None:
    ingest = " ".join(_help(("ingest",), 80).split())
    defaults = FreqrexParams()
    assert "--iterations <int> freqrex responsibility iterations" in ingest
    assert f"(default: the set's; {defaults.iterations} in 'default')" in ingest
    assert f"δ of δ-completeness. (default: the set's; {defaults.delta} in 'default')" in ingest
    assert "to start from (default: the warehouse's current set, the one it was built" in ingest
    assert "'default' (masks certified" in ingest
    assert f"[default: {defaults.batch_size}]" in ingest
    demo = " ".join(_help(("demo",), 80).split())
    assert f"registers the rest later). [default: {DEMO_PER_LABEL}]" in demo
    assert f"[default: {DEMO_PRESET}]" in demo


def test_every_option_without_a_default_says_what_omitting_it_means() -> None:
    silent = []
    for path, cmd in COMMANDS:
        for p in cmd.params:
            if p.param_type_name != "option" or p.is_flag or p.required:
                continue
            if p.default not in (None, []):
                continue  # the help shows [default: ...]
            words = (p.help or "").lower()
            if not any(w in words for w in ("default", "only", "instead of", "without it")):
                silent.append(f"{' '.join(path)} {p.opts[0]}")
    assert silent == []


@pytest.mark.parametrize("columns", [60, 80, 100])
def test_no_word_of_any_help_is_cut(columns: int) -> None:
    """Every word of every option's help, `$SLURM_ARRAY_TASK_COUNT` and `1-minimal`
    included, is printed whole at any width (click cuts a word longer than the column,
    and breaks at hyphens)."""
    cut = []
    for path, cmd in COMMANDS:
        printed = set(_help(path, columns).split())
        for param in cmd.params:
            for word in (getattr(param, "help", None) or "").split():
                if word not in printed:
                    cut.append((" ".join(path), param.name, word))
    assert cut == []
    ingest = _help(("ingest",), 60).split()
    assert "$SLURM_ARRAY_TASK_COUNT." in ingest and "1-minimal" in ingest
