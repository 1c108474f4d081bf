"""`sigwh demo`: the whole analysis on the shipped corpus and zoo, from an empty warehouse.

init → catalog sync → register the evaluation clips (audio stored in the warehouse, so
the file can be shared) → ingest every zoo model of every task → on the real/fake task,
composites, label transfer and ASR fidelity (section 5 of the paper) → report. Every step is
the same library call the individual commands make, and every step is resumable: a
second `sigwh demo` only does what is missing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

from sigwarehouse import store
from sigwarehouse.errors import SigwhError
from sigwarehouse.freqrex.params import PRESETS, FreqrexParams
from sigwarehouse.jobs.plans import carry_out
from sigwarehouse.models import trust
from sigwarehouse.store import views

# The demo explains with the "quick" preset (freqrex/params.py): the same definitions as
# `sigwh ingest`'s defaults at 0.3-0.6 of the queries, so that every model of every task
# fits in about ten minutes on two cores. `sigwh ingest --preset quick` continues it on
# the demo's warehouse; `sigwh demo --preset default` gives the figures to publish.
DEMO_PRESET = "quick"
DEMO_PARAMS = PRESETS[DEMO_PRESET]
# Clips of each label every model explains. `sigwh demo --all-clips` explains the whole
# evaluation split.
DEMO_PER_LABEL = 1


@dataclass
class DemoResult:
    warehouse: Path
    report: Path | None
    seconds: dict[str, float] = field(default_factory=dict)


def _deepfake_jobs(path: Path, device: str, say: Callable[[str], None]) -> None:
    """Section 5 of the paper on every real/fake task: composites, label transfer, ASR."""
    from sigwarehouse.jobs import asr, compose, label_transfer  # torch: not at CLI start-up

    def told(summary) -> None:
        if summary is not None:
            say(summary.describe())

    real_fake = "list_sort(tasks.labels) = ['fake', 'real']"
    with store.opened(path, read_only=True) as con:
        models = con.execute(
            f"SELECT model FROM models JOIN tasks USING (task) WHERE {real_fake} ORDER BY 1"
        ).fetchall()
        datasets = con.execute(
            f"SELECT dataset FROM datasets JOIN tasks USING (task) WHERE {real_fake} ORDER BY 1"
        ).fetchall()
    for (model,) in models:
        with store.opened(path, read_only=True) as con:
            plan = compose.plan_compose(con, model)
        told(carry_out(plan, lambda p: compose.run_compose(path, p, device=device)))
        # The paper applies the fake composite to real clips; a model that calls silence
        # "fake" has an empty fake composite, and then only the other direction says much.
        for source in ("fake", "real"):
            try:
                with store.opened(path, read_only=True) as con:
                    plan = label_transfer.plan_transfer(con, model, from_label=source)
            except SigwhError as exc:
                say(f"label transfer from {source} on {model}: {exc}")
                continue
            told(carry_out(plan, lambda p: label_transfer.run_transfer(path, p, device=device)))
    for (dataset,) in datasets:
        with store.opened(path, read_only=True) as con:
            plan = asr.plan_asr(con, asr.DEFAULT_ASR, dataset=dataset)
        told(carry_out(plan, lambda p: asr.run_asr(path, p, device="cpu")))


def _prepare(path: Path) -> None:
    """Create the warehouse, or migrate it and store this sigwarehouse's views in it; a
    file that is current in both is left as it is (migrating rewrites the views, and so
    the file, which would make the report look changed)."""
    if path.exists():
        with store.opened(path, read_only=True) as con:
            applied = store.applied_versions(con)
            pending = {m.version for m in store.migrations()} - set(applied)
            stale = [d for d in views.differences(con, applied) if d.status != "extra"]
        if not pending and not stale:
            return
    store.init(path)


def run_demo(
    path: Path,
    catalog_dir: Path,
    out_dir: Path,
    *,
    params: FreqrexParams = DEMO_PARAMS,
    device: str = "cpu",
    per_label: int | None = DEMO_PER_LABEL,
    say: Callable[[str], None] = print,
    progress: bool = True,
) -> DemoResult:
    """Build (or complete) the demo warehouse at `path` and write the report to `out_dir`.

    The warehouse registers the first `per_label` clips of each label (None: every
    clip), and every model explains them, so `sigwh ingest` on the demo's warehouse finds
    nothing to do until `sigwh dataset add` registers the rest. Ingest shows the
    progress bar of `sigwh ingest` on stderr unless `progress` is False. On a
    finished warehouse nothing is computed or stored, and the report is rebuilt only if
    the warehouse or the analysis code changed. Returns what was done and how long each
    step took.
    """
    result = DemoResult(path, None)
    # The zoo's transformer models are kind "hf", which jobs load only from the local
    # catalog: here that is the catalog the demo registers, wherever it is.
    with _models_from(catalog_dir):
        return _run(path, catalog_dir, out_dir, result, params, device, per_label, say, progress)


@contextmanager
def _models_from(catalog_dir: Path) -> Iterator[None]:
    """Let model jobs take non-zoo models from `catalog_dir` for the duration."""
    before = trust.current()
    trust.set_source(replace(before, catalog_dir=Path(catalog_dir)))
    try:
        yield
    finally:
        trust.set_source(before)


def _run(
    path: Path,
    catalog_dir: Path,
    out_dir: Path,
    result: DemoResult,
    params: FreqrexParams,
    device: str,
    per_label: int | None,
    say: Callable[[str], None],
    progress: bool,
) -> DemoResult:
    from sigwarehouse import catalog, clips  # sqlmodel, scipy: not at CLI start-up
    from sigwarehouse.jobs import ingest  # torch: not at CLI start-up

    clock = time.perf_counter()

    def step(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.seconds[name] = now - clock
        clock = now

    _prepare(path)
    with store.opened(path) as con:
        for line in catalog.sync(con, catalog_dir).lines():
            say(line)
        for name in clips.dataset_names(con):
            added = clips.add_dataset(
                con, name, store_audio=True, progress=False, per_label=per_label
            )
            for line in added.lines():
                say(line)
        models = [
            m for (m,) in con.execute("SELECT model FROM models ORDER BY task, model").fetchall()
        ]
    step("catalog and clips")

    def explain(plan: ingest.IngestPlan) -> ingest.IngestSummary:
        say(f"{plan.model}: explaining {len(plan.clip_ids)} clip(s)")
        with ingest.progress_bar(plan) if progress else nullcontext() as bar:
            return ingest.run_ingest(path, plan, device=device, progress=bar)

    stored = []
    for model in models:
        with store.opened(path, read_only=True) as con:
            plan = ingest.plan_ingest(con, model, params, per_label=per_label)
        summary = carry_out(plan, explain)
        if summary is None:
            stored.append(model)
        else:
            say(summary.describe())
    if stored:
        say(f"ingest: everything is stored for {', '.join(stored)}")
    step("ingest")
    _deepfake_jobs(path, device, say)
    step("deepfake jobs")
    from sigwarehouse.analyses import build_report  # torch and altair: not at start-up

    say(build_report(path, out_dir, if_changed=True).message)
    result.report = out_dir / "index.html"
    step("report")
    return result
