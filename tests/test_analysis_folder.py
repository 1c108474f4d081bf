"""The top-level analyses/ folder: the shipped analyses live there and ship in the wheel
as sql/ does, and `sigwh report` runs the user's own analysis modules beside them (from
that folder, or `--analyses DIR`), chosen by local files only, never by the warehouse."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import numpy as np
import pytest
from sharing import copy_of, sigwh

from sigwarehouse import analyses
from sigwarehouse.report.user_analyses import UserAnalysis

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "examples" / "kept_share.py"

# builds reports of the session's small warehouse, as tests/test_report.py does
pytestmark = pytest.mark.xdist_group("report")


def _section(page: str, key: str) -> str:
    return page.split(f'<section id="{key}">', 1)[1].split("</section>", 1)[0]


def _kept_shares(path: Path) -> dict[str, tuple[int, int, float, float]]:
    """model -> (explanations, with a mask, mean and max kept share) from the stored
    packed masks, unpacked with NumPy (not the stored sizes the example reads)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.execute("SELECT model, n_bins, sufficient_mask FROM explanations").fetchall()
    finally:
        con.close()
    shares: dict[str, list[float | None]] = {}
    for model, n_bins, mask in rows:
        kept = None
        if mask is not None:
            kept = np.unpackbits(np.frombuffer(mask, np.uint8))[:n_bins].sum() / n_bins
        shares.setdefault(model, []).append(kept)
    found = {}
    for model, values in shares.items():
        known = [v for v in values if v is not None]
        found[model] = (len(values), len(known), float(np.mean(known)), float(np.max(known)))
    return found


def test_a_users_analysis_shows_in_the_report(small_filled, tmp_path: Path) -> None:
    """The documented example, copied into a folder of the user's, is a section of the
    page and a CSV whose figures are the stored masks' kept shares; the shipped sections
    are all still there, and the user's comes after the shipped results."""
    path = copy_of(small_filled[0], tmp_path)
    mine = tmp_path / "my_analyses"
    mine.mkdir()
    shutil.copy(EXAMPLE, mine / "kept_share.py")
    out = tmp_path / "out"
    result = sigwh(path, "report", "--out", str(out), "--analyses", str(mine))
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text()

    expected = _kept_shares(path)
    assert len(expected) == 7 and expected["m1"][1] == 9  # m1 on clip 2 has no mask
    lines = (out / "tables" / "kept_share.csv").read_text().splitlines()
    assert lines[0] == "model,explanations,with_mask,mean_kept_share,max_kept_share"
    got = {}
    for line in lines[1:]:
        model, n, with_mask, mean, top = line.split(",")
        got[model] = (int(n), int(with_mask), float(mean), float(top))
    assert sorted(got) == sorted(expected)
    for model, (n, with_mask, mean, top) in expected.items():
        assert got[model][:2] == (n, with_mask)
        assert got[model][2:] == pytest.approx((mean, top), rel=1e-12)

    section = _section(page, "kept-share")
    assert "<h2>How much of the spectrum do sufficient masks keep?</h2>" in section
    cells = re.findall(r"<tr>(.*?)</tr>", section.split("<tbody>", 1)[1])
    shown = [re.findall(r"<td[^>]*>([^<]*)</td>", row) for row in cells]
    assert shown == [
        [m, str(n), str(k), f"{mean:.3f}", f"{top:.3f}"]
        for m, (n, k, mean, top) in sorted(expected.items())
    ]
    order = re.findall(r'<section id="([^"]+)">', page)
    shipped = [m.__name__.rpartition(".")[2] for m in analyses.REPORT]
    assert order == [*shipped[: len(analyses.RESULTS)], "kept-share", *shipped[-3:]]


def test_the_docs_show_the_example_file_as_it_is() -> None:
    doc = (REPO / "docs" / "analyses.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", doc, flags=re.S)
    assert EXAMPLE.read_text() in blocks
    assert "](examples/kept_share.py)" in doc
    assert "](docs/analyses.md)" in (REPO / "README.md").read_text()


def test_other_files_of_the_shipped_folder_are_the_users(tmp_path: Path, monkeypatch) -> None:
    """In the analyses/ folder, a file that the package does not ship is a user's
    analysis; the shipped names are not loaded again, and `_` files are left out."""
    folder = tmp_path / "analyses"
    folder.mkdir()
    for name in analyses.SHIPPED:  # never imported from here: importing them would fail
        (folder / f"{name}.py").write_text("raise RuntimeError('loaded a shipped name')\n")
    (folder / "_helpers.py").write_text("raise RuntimeError('loaded a _ file')\n")
    shutil.copy(EXAMPLE, folder / "kept_share.py")
    monkeypatch.setattr(analyses, "FOLDER", folder.resolve())
    chosen = analyses.report_analyses()
    users = [a for a in chosen if isinstance(a, UserAnalysis)]
    assert [a.path for a in users] == [(folder / "kept_share.py").resolve()]
    n = len(analyses.RESULTS)
    assert chosen[:n] == list(analyses.RESULTS) and chosen[n] is users[0]
    # The same folder named again with --analyses runs nothing twice.
    assert len(analyses.report_analyses([folder])) == len(chosen)


def test_every_tracked_file_of_analyses_is_shipped() -> None:
    """A module added to the folder is declared as shipped (REPORT or HELPERS): otherwise
    the report would run it a second time, as if it were the user's."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "analyses"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    names = {Path(f).stem for f in tracked if f.endswith(".py") and "/_" not in f}
    assert names == set(analyses.SHIPPED)


def _cli_error(result) -> str:
    """The one line a failed command printed (and that there was one, and no traceback)."""
    errors = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.mark.parametrize(
    ("source", "said"),
    [
        ("x = 1\ndef run(con)\n    return None\n", r"bad\.py:2: SyntaxError: "),
        ("import no_such_module_here\n", r"bad\.py:1: ModuleNotFoundError: No module named"),
        ("x = 1\n", r"bad\.py: defines no run\(con\) function"),
    ],
    ids=["syntax", "import", "no-run"],
)
def test_a_file_that_cannot_load_stops_before_anything_is_written(
    wh_path: Path, tmp_path: Path, source: str, said: str
) -> None:
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "bad.py").write_text(source)
    out = tmp_path / "out"
    result = sigwh(wh_path, "report", "--out", str(out), "--analyses", str(mine))
    assert result.exit_code == 1
    line = _cli_error(result)
    assert re.search(said, line) and str(mine / "bad.py") in line, line
    assert not out.exists()


def test_a_folder_without_analyses_is_refused(wh_path: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    for folder, said in ((tmp_path / "empty", "no analysis file in it"),
                         (tmp_path / "absent", "no such folder")):  # fmt: skip
        result = sigwh(wh_path, "report", "--out", str(tmp_path / "o"), "--analyses", str(folder))
        assert result.exit_code == 1 and said in _cli_error(result)


def test_an_analysis_that_fails_leaves_the_rest_of_the_report(small_filled, tmp_path) -> None:
    """A run that raises: its section says where and why, every shipped section is
    built, the command ends with exit 1 and one line, and --if-changed builds again (the
    failure is said every time, not hidden behind 'unchanged')."""
    path = copy_of(small_filled[0], tmp_path)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "boom.py").write_text("def run(con):\n    n = 0\n    return 1 / n\n")
    shutil.copy(EXAMPLE, mine / "kept_share.py")
    out = tmp_path / "out"
    for _ in range(2):
        result = sigwh(path, "report", "--out", str(out), "--analyses", str(mine), "--if-changed")
        assert result.exit_code == 1 and "wrote" in result.output, result.output
        line = _cli_error(result)
        assert line == f"error: {mine / 'boom.py'}:3: ZeroDivisionError: division by zero"
        assert not (out / ".fingerprint.json").exists()
    page = (out / "index.html").read_text()
    failed = _section(page, "user-boom")
    assert "This analysis failed: " in failed and "boom.py:3: ZeroDivisionError" in failed
    for module in analyses.REPORT:
        assert f'<section id="{module.__name__.rpartition(".")[2]}">' in page
    assert '<section id="kept-share">' in page  # the other user analysis still runs


def test_a_section_that_would_overwrite_anothers_files_fails(tmp_path: Path) -> None:
    """A user's table named as a shipped one (tables/accuracy.csv), or with a name that
    leaves the folder, is not written: its section says which name to change."""
    from small_warehouse import fill

    from sigwarehouse import store

    path, _ = store.init(tmp_path / "w.duckdb")
    fill(path, n_clips=3)
    mine = tmp_path / "mine"
    mine.mkdir()
    body = (
        "import polars as pl\nfrom sigwarehouse.report import Section, Table\n"
        "def run(con):\n    frame = pl.DataFrame({{'planted': [1]}})\n"
        "    return Section(key={key!r}, title='t', intro='i', "
        "tables=[Table({table!r}, 'c', frame)])\n"
    )
    (mine / "clash.py").write_text(body.format(key="mine", table="accuracy"))
    (mine / "escape.py").write_text(body.format(key="mine2", table="../../escaped"))
    out = tmp_path / "out"
    result = sigwh(path, "report", "--out", str(out), "--analyses", str(mine))
    assert result.exit_code == 1
    line = _cli_error(result)
    assert f"{mine / 'clash.py'}: its table accuracy has a name another section" in line
    assert f"{mine / 'escape.py'}: its table name '../../escaped' is not file-safe" in line
    assert "planted" not in (out / "tables" / "accuracy.csv").read_text()
    assert not list(tmp_path.rglob("escaped*"))
    page = (out / "index.html").read_text()
    assert "rename it" in _section(page, "user-clash") and "rename it" in _section(
        page, "user-escape"
    )


def test_if_changed_counts_the_users_analyses(tmp_path: Path) -> None:
    """--if-changed decides without importing anything, and an edit of a user's file
    rebuilds the report as an edit of a shipped one would."""
    from small_warehouse import fill

    from sigwarehouse import store

    path, _ = store.init(tmp_path / "w.duckdb")
    fill(path, n_clips=3)
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(EXAMPLE, mine / "kept_share.py")
    args = ("report", "--out", str(tmp_path / "out"), "--analyses", str(mine), "--if-changed")
    assert "wrote" in sigwh(path, *args).output
    again = sigwh(path, *args)
    assert again.exit_code == 0 and "unchanged" in again.output, again.output
    (mine / "kept_share.py").write_text(EXAMPLE.read_text().replace("max", "min"))
    edited = sigwh(path, *args)
    assert edited.exit_code == 0 and "wrote" in edited.output, edited.output
    csv = (tmp_path / "out" / "tables" / "kept_share.csv").read_text()
    assert csv.startswith("model,explanations,with_mask,mean_kept_share,min_kept_share")


def test_nothing_in_a_warehouse_selects_an_analysis(small_filled, tmp_path: Path) -> None:
    """A shared warehouse whose tables and rows name a module file does not get it
    imported: only the folders the user names are read for code."""
    path = copy_of(small_filled[0], tmp_path)
    lure = tmp_path / "lure"
    lure.mkdir()
    marker = tmp_path / "imported"
    (lure / "planted.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        "def run(con):\n    raise SystemExit('ran')\n"
    )
    con = duckdb.connect(str(path))
    try:
        planted = str(lure / "planted.py")
        con.execute(f'CREATE TABLE "{planted}" (analysis VARCHAR)')
        con.execute("CREATE TABLE analyses (module VARCHAR, folder VARCHAR)")
        con.execute("INSERT INTO analyses VALUES (?, ?)", [planted, str(lure)])
        con.execute("CREATE TABLE report_analyses AS SELECT ? AS path", [str(lure)])
    finally:
        con.close()
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(EXAMPLE, mine / "kept_share.py")
    for extra in ([], ["--analyses", str(mine)]):
        out = tmp_path / f"out{len(extra)}"
        result = sigwh(path, "report", "--out", str(out), *extra)
        assert result.exit_code == 0, result.output
        assert not marker.exists()
        page = (out / "index.html").read_text()
        assert "planted" not in re.findall(r'<section id="([^"]+)">', page)
    assert '<section id="kept-share">' in page


def test_the_wheel_ships_the_analyses_and_sql_inside_the_package(tmp_path: Path) -> None:
    """Built from this checkout (hatchling, offline), the wheel holds analyses/ and sql/
    at sigwarehouse/analyses and sigwarehouse/sql; unpacked elsewhere, the package imports
    its analyses and finds its SQL there, with no checkout finder, and loads a user's
    analysis."""
    wheel_builder = pytest.importorskip("hatchling.builders.wheel")
    built = list(wheel_builder.WheelBuilder(str(REPO)).build(directory=str(tmp_path)))
    names = set(zipfile.ZipFile(built[0]).namelist())
    shipped = {p.name for p in (REPO / "analyses").glob("*.py")}
    assert {f"sigwarehouse/analyses/{n}" for n in shipped} <= names
    views = {f"sigwarehouse/sql/views/{p.name}" for p in (REPO / "sql" / "views").glob("*.sql")}
    assert views <= names and "sigwarehouse/shipped.py" in names
    assert not [n for n in names if n.endswith(".pyc") or n.startswith(("analyses/", "docs/"))]

    site = tmp_path / "site"
    zipfile.ZipFile(built[0]).extractall(site)
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(EXAMPLE, mine / "kept_share.py")
    probe = (
        "import json, sys; import sigwarehouse, sigwarehouse.analyses as a;"
        "from sigwarehouse import shipped; from sigwarehouse.store import sql_files;"
        "print(json.dumps([sigwarehouse.__file__, a.__file__, str(sql_files.sql_dir()),"
        " [type(f).__name__ for f in sys.meta_path],"
        f" [str(x.path) for x in a.report_analyses([{str(mine)!r}])[len(a.RESULTS):-3]]]))"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    run = subprocess.run(
        [sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    package, init, sql, finders, users = json.loads(run.stdout.splitlines()[-1])
    assert Path(package).parent == site / "sigwarehouse"
    assert Path(init) == site / "sigwarehouse" / "analyses" / "__init__.py"
    assert Path(sql) == site / "sigwarehouse" / "sql"
    assert "CheckoutAnalyses" not in finders
    assert users == [str((mine / "kept_share.py").resolve())]
