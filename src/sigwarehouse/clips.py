"""Register a dataset's audio files as clips: scan, label, hash, validate, store.

`add_dataset` mirrors the dataset's folder into `clips` (valid files) and
`rejected_clips` (the rest, with a reason; see audio.py for the policy). Paths are
stored relative to the dataset's root, which `datasets` records once, so a shared
warehouse works elsewhere after `relocate`.

Re-adding is idempotent, decided per file by its path and sha256:
- same path, same hash: nothing is written (its label is updated if the catalog's
  labelling now says otherwise; its FLAC blob is added if `store_audio` asks for it);
- same path, new hash (the file changed): the old clip row is deleted and the new
  version registered under a *new* clip_id, or rejected. Results computed for the old id
  then join to no clip, so they are never mistaken for results on the new audio, and
  ingestion computes the new id afresh. Such paths are reported as changed;
- a registered file that is gone from disk keeps its row (with a blob it is still
  loadable) and is reported as missing.
Each batch of files is written in one transaction: a failure leaves whole batches only,
and rerunning completes the rest.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import duckdb
from tqdm import tqdm

from sigwarehouse import audio
from sigwarehouse.audio import Rejected
from sigwarehouse.errors import SigwhError
from sigwarehouse.store import transaction, transfer_counts


class DatasetError(SigwhError):
    """A dataset that cannot be scanned or relocated as asked."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str
    root: Path
    labels_from: str
    label_spec: str | None
    task_labels: list[str]
    sample_rate: int
    min_duration_s: float


def dataset_info(con: duckdb.DuckDBPyConnection, name: str) -> DatasetInfo:
    """The dataset's catalog row joined with its task. Raises DatasetError if unknown."""
    rows = con.execute(
        "SELECT d.dataset, d.task, d.root, d.labels_from, d.label_spec, t.labels, "
        "t.sample_rate, t.min_duration_s FROM datasets d JOIN tasks t ON t.task = d.task "
        "WHERE d.dataset = ?",
        [name],
    ).fetchall()
    if not rows:
        known = dataset_names(con)
        raise DatasetError(
            f"no dataset {name!r} in the warehouse (known: {known or 'none'}); add "
            f"ingest/datasets/{name}.toml and run `sigwh catalog sync`"
        )
    (row,) = rows
    return DatasetInfo(row[0], row[1], Path(row[2]), row[3], row[4], list(row[5]), *row[6:])


def dataset_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every dataset the warehouse knows, by name."""
    return [n for (n,) in con.execute("SELECT dataset FROM datasets ORDER BY dataset").fetchall()]


def scan(root: Path) -> list[str]:
    """Audio files under root (recursive, hidden ones skipped), as sorted POSIX relative paths."""
    found = []
    for p in root.rglob("*"):
        rel = p.relative_to(root)
        hidden = any(s.startswith(".") for s in rel.parts)
        if p.suffix.lower() in audio.EXTENSIONS and not hidden and p.is_file():
            found.append(rel.as_posix())
    return sorted(found)


def _labeler(ds: DatasetInfo) -> Callable[[str], str]:
    """A function from a relative path to its label; it raises Rejected (no-label)."""
    if ds.labels_from == "folder":

        def by_folder(rel: str) -> str:
            parts = PurePosixPath(rel).parts
            if len(parts) < 2:
                raise Rejected("no-label: the file is not inside a label sub-folder")
            return parts[0]

        return by_folder
    if ds.labels_from == "csv":
        table = _read_label_csv(ds)

        def by_csv(rel: str) -> str:
            if rel not in table:
                raise Rejected(f"no-label: not listed in {ds.label_spec}")
            return table[rel]

        return by_csv
    if ds.labels_from == "regex":
        pattern = re.compile(ds.label_spec or "")

        def by_regex(rel: str) -> str:
            m = pattern.search(PurePosixPath(rel).name)
            if not m or not m["label"]:
                raise Rejected(f"no-label: the file name does not match {pattern.pattern!r}")
            return m["label"]

        return by_regex
    raise DatasetError(f"dataset {ds.name!r}: unknown labels_from {ds.labels_from!r}")


def _read_label_csv(ds: DatasetInfo) -> dict[str, str]:
    path = ds.root / (ds.label_spec or "")
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not {"path", "label"} <= set(reader.fieldnames or []):
                raise DatasetError(f"{path}: needs a header with columns path,label")
            return {PurePosixPath(r["path"].strip()).as_posix(): r["label"].strip() for r in reader}
    except OSError as exc:
        raise DatasetError(
            f"dataset {ds.name!r}: cannot read its label file {path}: {exc}"
        ) from exc


@dataclass
class AddSummary:
    """What add_dataset found and did."""

    dataset: str
    files: int = 0
    added: int = 0
    unchanged: int = 0
    changed: list[str] = field(default_factory=list)  # replaced by a new version or withdrawn
    relabelled: int = 0
    blobs_added: int = 0
    rejected: Counter[str] = field(default_factory=Counter)  # reason kind -> files
    missing: list[str] = field(default_factory=list)  # registered, no longer on disk
    sampled: int | None = None  # files of each label examined (None: every file)

    def line(self) -> str:
        """The one-line summary."""
        registered = self.added + self.unchanged
        text = (
            f"{self.dataset}: {self.files} files, {registered} registered "
            f"({self.added} new, {self.unchanged} unchanged)"
        )
        if self.sampled is not None:
            text += f" of a sample of {self.sampled} per label"
        if self.rejected:
            kinds = ", ".join(f"{n} {k}" for k, n in sorted(self.rejected.items()))
            text += f", {sum(self.rejected.values())} rejected ({kinds})"
        else:
            text += ", 0 rejected"
        if self.changed:
            text += f", {len(self.changed)} changed"
        if self.missing:
            text += f", {len(self.missing)} missing"
        if self.blobs_added:
            text += f", {self.blobs_added} audio blobs stored"
        return text

    def lines(self) -> list[str]:
        """The summary line, then what needs attention (changed and missing files)."""
        out = [self.line()]
        if self.changed:
            out.append(
                f"  changed since registered (re-registered with new clip ids, or rejected): "
                f"{_few(self.changed)}"
            )
        if self.missing:
            out.append(f"  registered but missing on disk (rows kept): {_few(self.missing)}")
        if self.rejected:
            out.append(f"  see `sigwh dataset rejected {self.dataset}` for the reasons")
        return out


def _few(items: list[str], n: int = 5) -> str:
    more = f" and {len(items) - n} more" if len(items) > n else ""
    return ", ".join(items[:n]) + more


@dataclass
class _Batch:
    """The writes one batch of files needs, applied in one transaction."""

    paths: list[str] = field(default_factory=list)
    delete_ids: list[int] = field(default_factory=list)
    inserts: list[tuple] = field(default_factory=list)
    rejects: list[tuple[str, str, str]] = field(default_factory=list)
    relabels: list[tuple[str, int]] = field(default_factory=list)
    blobs: list[tuple[bytes, int]] = field(default_factory=list)


def add_dataset(
    con: duckdb.DuckDBPyConnection,
    name: str,
    store_audio: bool = False,
    progress: bool = True,
    batch_size: int = 200,
    per_label: int | None = None,
) -> AddSummary:
    """Scan dataset `name`'s root and register its clips; see the module docstring.

    `per_label` examines only the first N files of each label (in path order), a
    balanced sample (the demo's); the other files are neither registered nor rejected,
    and a later call without it registers them.

    With store_audio, each clip's audio is also stored as a FLAC blob (at the task's
    rate), so the warehouse no longer needs the files. Returns an AddSummary. Raises
    DatasetError for an unknown dataset, a root that is not a folder or an unreadable
    label file; individual bad files are rejected, never raised.
    """
    ds = dataset_info(con, name)
    if not ds.root.is_dir():
        raise DatasetError(
            f"dataset {name!r}: root {ds.root} is not a folder; fix 'root' in its catalog file "
            f"and run `sigwh catalog sync`, or `sigwh dataset relocate {name} NEWROOT`"
        )
    label_of = _labeler(ds)
    files = scan(ds.root)
    examined = files if per_label is None else _first_of_each_label(files, label_of, per_label)
    known = {
        path: (clip_id, digest, label, has_audio)
        for clip_id, path, digest, label, has_audio in con.execute(
            "SELECT clip_id, path, sha256, label, audio IS NOT NULL FROM clips WHERE dataset = ?",
            [name],
        ).fetchall()
    }
    summary = AddSummary(name, files=len(files), sampled=per_label)
    bar = tqdm(total=len(examined), desc=name, unit="file", disable=None if progress else True)
    try:
        for start in range(0, len(examined), batch_size):
            batch = _Batch()
            for rel in examined[start : start + batch_size]:
                _examine(ds, rel, label_of, known.get(rel), store_audio, batch, summary)
            _write(con, name, batch)
            bar.update(len(batch.paths))
    finally:
        bar.close()
    on_disk = set(files)
    summary.missing = sorted(p for p in known if p not in on_disk)
    # Rejections of files that are gone are no longer news.
    con.execute(
        "DELETE FROM rejected_clips WHERE dataset = ? AND NOT list_contains(?::VARCHAR[], path)",
        [name, files],
    )
    return summary


def _first_of_each_label(files: list[str], label_of: Callable[[str], str], n: int) -> list[str]:
    """The first n files of each label, in the order given (unlabelled files left out)."""
    taken: Counter[str] = Counter()
    out = []
    for rel in files:
        try:
            label = label_of(rel)
        except Rejected:
            continue
        if taken[label] < n:
            taken[label] += 1
            out.append(rel)
    return out


def _examine(
    ds: DatasetInfo,
    rel: str,
    label_of: Callable[[str], str],
    old: tuple[int, str, str, bool] | None,
    store_audio: bool,
    batch: _Batch,
    summary: AddSummary,
) -> None:
    """Decide what one file needs and record it in the batch (no writes here)."""
    batch.paths.append(rel)
    try:
        label = label_of(rel)
        if label not in ds.task_labels:
            raise Rejected(
                f"unknown-label: {label!r} is not a label of task {ds.task!r} "
                f"({', '.join(ds.task_labels)})"
            )
        try:
            data = (ds.root / rel).read_bytes()
        except OSError as exc:
            raise Rejected(f"unreadable: {exc.strerror or exc}") from exc
        digest = audio.sha256(data)
        if old is not None and old[1] == digest:
            clip_id, _, old_label, has_audio = old
            if old_label != label:
                batch.relabels.append((label, clip_id))
                summary.relabelled += 1
            if store_audio and not has_audio:
                clip = audio.decode(data, ds.sample_rate)
                batch.blobs.append((audio.encode_flac(clip.samples, ds.sample_rate), clip_id))
                summary.blobs_added += 1
            summary.unchanged += 1
            return
        clip = audio.decode(data, ds.sample_rate, ds.min_duration_s)
    except Rejected as rejection:
        batch.rejects.append((ds.name, rel, str(rejection)))
        summary.rejected[rejection.kind] += 1
        if old is not None:  # a registered file whose current version is refused
            batch.delete_ids.append(old[0])
            summary.changed.append(rel)
        return
    if old is not None:
        batch.delete_ids.append(old[0])
        summary.changed.append(rel)
    blob = audio.encode_flac(clip.samples, ds.sample_rate) if store_audio else None
    summary.blobs_added += blob is not None
    summary.added += 1
    batch.inserts.append(
        (
            ds.name,
            rel,
            digest,
            label,
            clip.duration_s,
            clip.native_sample_rate,
            clip.native_channels,
            clip.native_subtype,
            len(clip.samples),
            blob,
        )
    )


def _write(con: duckdb.DuckDBPyConnection, name: str, batch: _Batch) -> None:
    with transaction(con):
        if batch.delete_ids:
            transfer_counts.forget_clips(con, batch.delete_ids)
            con.execute(
                "DELETE FROM clips WHERE clip_id IN (SELECT unnest(?::INTEGER[]))",
                [batch.delete_ids],
            )
        if batch.inserts:
            con.executemany(
                "INSERT INTO clips (dataset, path, sha256, label, duration_s, native_sample_rate,"
                " native_channels, native_subtype, n_samples, audio)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                batch.inserts,
            )
        if batch.relabels:
            con.executemany("UPDATE clips SET label = ? WHERE clip_id = ?", batch.relabels)
        if batch.blobs:
            con.executemany("UPDATE clips SET audio = ? WHERE clip_id = ?", batch.blobs)
        con.execute(
            "DELETE FROM rejected_clips WHERE dataset = ? AND list_contains(?::VARCHAR[], path)",
            [name, batch.paths],
        )
        if batch.rejects:
            con.executemany(
                "INSERT INTO rejected_clips (dataset, path, reason) VALUES (?, ?, ?)",
                batch.rejects,
            )


@dataclass
class RelocateSummary:
    dataset: str
    old_root: str
    new_root: str
    clips: int
    from_blobs: int  # clips whose file is absent but whose audio is stored

    def line(self) -> str:
        text = f"{self.dataset}: root {self.old_root} -> {self.new_root} ({self.clips} clips found"
        if self.from_blobs:
            text += f"; {self.from_blobs} absent but stored in the warehouse"
        return text + ")"


def relocate(con: duckdb.DuckDBPyConnection, name: str, new_root: str | Path) -> RelocateSummary:
    """Point dataset `name` at `new_root`, after checking every clip's file is there.

    Clips with a stored blob need no file. Raises DatasetError (and changes nothing) if
    new_root is not a folder or a clip without a blob has no file under it. Note that a
    later `sigwh catalog sync` sets the root from the catalog again.
    """
    ds = dataset_info(con, name)
    root = Path(new_root).expanduser().resolve()
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder; give the folder that holds {name!r}'s files")
    rows = con.execute(
        "SELECT path, audio IS NOT NULL FROM clips WHERE dataset = ? ORDER BY path", [name]
    ).fetchall()
    absent = [(path, stored) for path, stored in rows if not (root / path).is_file()]
    lost = [path for path, stored in absent if not stored]
    if lost:
        raise DatasetError(
            f"{len(lost)} of {len(rows)} clips of {name!r} are not under {root} "
            f"(e.g. {_few(lost, 3)}); nothing changed"
        )
    con.execute("UPDATE datasets SET root = ? WHERE dataset = ?", [str(root), name])
    return RelocateSummary(name, str(ds.root), str(root), len(rows), len(absent))


def listing(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyRelation:
    """Every dataset with its task, clip count, stored blobs, rejections and root."""
    return con.sql(
        "SELECT d.dataset, d.task, "
        "(SELECT count(*) FROM clips c WHERE c.dataset = d.dataset) AS clips, "
        "(SELECT count(audio) FROM clips c WHERE c.dataset = d.dataset) AS with_audio, "
        "(SELECT count(*) FROM rejected_clips r WHERE r.dataset = d.dataset) AS rejected, "
        "d.root FROM datasets d ORDER BY d.dataset"
    )


def rejected(con: duckdb.DuckDBPyConnection, name: str) -> duckdb.DuckDBPyRelation:
    """The rejected files of dataset `name` (path, reason). Raises DatasetError if unknown."""
    dataset_info(con, name)
    return con.sql(
        "SELECT path, reason FROM rejected_clips WHERE dataset = $name ORDER BY path",
        params={"name": name},
    )
