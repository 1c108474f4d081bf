"""The README's quoted queries and their outputs, as a demo warehouse gives them.

The README's "queries to start with" sit between two markers (BEGIN, END). Each
`$ sigwh sql "..."` there is followed by what `sigwh sql` prints for it on the demo
warehouse the test suite builds (tests/demo_catalog.py); tests/test_demo.py runs the
same queries on its own demo warehouse and fails when the README's outputs differ, so a
change that moves a figure fails until the README follows. To refresh the outputs after
such a change (run from the repository root):

    .venv/bin/python tests/readme_examples.py --write

builds that demo warehouse in a temporary folder (a few minutes), runs the queries and
rewrites the outputs between the markers; `--warehouse PATH` reads an existing one
instead, and without `--write` it only says whether the README is current (exit 1 if not).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BEGIN = "<!-- readme-examples: begin -->"
END = "<!-- readme-examples: end -->"
COMMAND = re.compile(r'^\$ sigwh sql "([^"]*)"\n', flags=re.M)


def block(text: str) -> str:
    """The README's text between the markers."""
    start = text.index(BEGIN) + len(BEGIN)
    return text[start : text.index(END, start)]


def queries(text: str) -> list[tuple[str, str]]:
    """(the command as written, its SQL) for each command between the markers."""
    return [(m.group(0), m.group(1)) for m in COMMAND.finditer(block(text))]


def output(warehouse: Path, sql: str) -> str:
    """What `sigwh sql` prints for `sql` on the warehouse (trailing blanks removed)."""
    from typer.testing import CliRunner

    from sigwarehouse.cli import app

    result = CliRunner().invoke(app, ["--warehouse", str(warehouse), "sql", " ".join(sql.split())])
    if result.exit_code != 0:
        raise RuntimeError(f"sigwh sql failed on the README's query {sql!r}:\n{result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def render(text: str, warehouse: Path) -> str:
    """The block between the markers: one code block, each command followed by its
    output on `warehouse`, a blank line between them."""
    shown = "\n\n".join(f"{command}{output(warehouse, sql)}" for command, sql in queries(text))
    return f"\n```\n{shown}\n```\n"


def rewritten(text: str, warehouse: Path) -> str:
    """The README with its block rendered on `warehouse`."""
    start = text.index(BEGIN) + len(BEGIN)
    end = text.index(END, start)
    return text[:start] + render(text, warehouse) + text[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the README's outputs")
    parser.add_argument("--warehouse", type=Path, help="an existing demo warehouse to read")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    text = README.read_text()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.warehouse
        if path is None:
            import demo_catalog

            print("building the test suite's demo warehouse ...", file=sys.stderr)
            path, _lines, _err = demo_catalog.build(Path(tmp))
        new = rewritten(text, path)
    if new == text:
        print(f"{README.name}: its examples are what the demo warehouse gives")
        return 0
    if not args.write:
        print(f"{README.name}: its examples differ from the demo warehouse's; run with --write")
        return 1
    README.write_text(new)
    print(f"{README.name}: examples rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
