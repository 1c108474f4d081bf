"""The ingest drivers behind one interface, and the one factory that picks one.

A driver carries out an IngestPlan and returns its IngestSummary. Three exist:

- `local`: in this process, on its device, writing the warehouse (local.py);
- `shard`: in this process, reading the warehouse and writing a shard file that
  `sigwh merge` folds in later (shards.py), so that many jobs run at once;
- `ray`: the batches computed by a pool of Ray actors, this process the one writer
  (on_ray.py).

`create(...)` chooses one from what the user asked for, as the CLI's options say it;
each driver plans from the warehouse in the same way (`plan`), less what it already
holds (a shard file), so `sigwh ingest` keeps only its options.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

from sigwarehouse import devices, store
from sigwarehouse.freqrex.params import FreqrexParams
from sigwarehouse.jobs.ingest import local, on_ray, shards
from sigwarehouse.jobs.ingest.plan import IngestPlan, IngestSummary, plan_ingest
from sigwarehouse.jobs.writer import HoldPolicy
from sigwarehouse.store import write_path

Progress = Callable[[int, write_path.RunCounters], None]
RAY_LOCAL = "local"  # --ray local: ray.init's own choice (RAY_ADDRESS, else a new instance)


@dataclass(frozen=True)
class Settings:
    """How a driver computes, whichever it is."""

    device: str | None = None  # None: cuda when available
    clips_per_batch: int | None = None  # None: the device's (devices.clips_per_batch)
    hold: HoldPolicy = field(default_factory=HoldPolicy)
    auto_batch: bool = False  # size the search's batches from the device's free memory
    threads: int | None = None  # CPU threads torch may use in this process (None: its own)


@dataclass(frozen=True)
class Selection:
    """Which clips a plan takes (plan_ingest's keywords)."""

    dataset: str | None = None
    limit: int | None = None
    per_label: int | None = None
    shard: tuple[int, int] | None = None


class Driver(Protocol):
    def plan(self, model: str, params: FreqrexParams, selection: Selection) -> IngestPlan:
        """What is missing for `model` with these parameters."""
        ...

    def run(self, plan: IngestPlan, progress: Progress | None = None) -> IngestSummary:
        """Carry out the plan; `progress(clips_just_done, counters)` after each batch."""
        ...


class LocalDriver:
    """A plan carried out in this process, writing the warehouse."""

    def __init__(self, path: Path, settings: Settings) -> None:
        self.path, self.settings = path, settings

    def plan(self, model: str, params: FreqrexParams, selection: Selection) -> IngestPlan:
        """What is missing for `model` with these parameters (the warehouse read-only)."""
        with store.opened(self.path, read_only=True) as con:
            store.require_current(con, self.path)
            return plan_ingest(
                con,
                model,
                params,
                dataset=selection.dataset,
                limit=selection.limit,
                per_label=selection.per_label,
                shard=selection.shard,
            )

    def run(self, plan: IngestPlan, progress: Progress | None = None) -> IngestSummary:
        return self._run_local(plan, progress, into=None)

    def _run_local(
        self, plan: IngestPlan, progress: Progress | None, into: Path | None
    ) -> IngestSummary:
        s = self.settings
        return local.run_ingest(
            self.path,
            plan,
            device=devices.default_device(s.device),
            clips_per_batch=s.clips_per_batch,
            progress=progress,
            hold=s.hold,
            auto_batch=s.auto_batch,
            into=into,
        )


class ShardDriver(LocalDriver):
    """A plan carried out in this process, reading the warehouse and writing `into`."""

    def __init__(self, path: Path, settings: Settings, into: Path) -> None:
        shards.refuse_self(into, path)
        super().__init__(path, settings)
        self.into = into

    def plan(self, model: str, params: FreqrexParams, selection: Selection) -> IngestPlan:
        plan = super().plan(model, params, selection)
        if self.into.exists():  # a rerun: less what the shard holds
            plan = shards.without_stored(plan, self.into)
        return plan

    def run(self, plan: IngestPlan, progress: Progress | None = None) -> IngestSummary:
        touched = {*plan.clip_ids, *(clip for _, clip in plan.cross_fill)}
        shards.open_shard(self.into, self.path, sorted(touched))
        return self._run_local(plan, progress, into=self.into)


class RayDriver(LocalDriver):
    """A plan's batches computed by Ray actors; this process plans and writes."""

    def __init__(
        self, path: Path, settings: Settings, address: str | None, actors: int | None
    ) -> None:
        super().__init__(path, settings)
        self.address, self.actors = address, actors
        on_ray.import_ray()  # only this driver imports Ray; a missing Ray is said at once

    def run(self, plan: IngestPlan, progress: Progress | None = None) -> IngestSummary:
        s = self.settings
        return on_ray.run_ingest_ray(
            self.path,
            plan,
            address=self.address,
            device=s.device,
            actors=self.actors,
            clips_per_batch=s.clips_per_batch,
            progress=progress,
            hold=s.hold,
            auto_batch=s.auto_batch,
        )


def create(
    path: Path, settings: Settings, into: Path | None, ray: str | None, actors: int | None
) -> Driver:
    """The driver for these options: Ray when `ray` names a cluster address (None inside
    it: ray.init's own choice), a shard job when `into` names a shard file, else local."""
    if settings.threads is not None:
        torch.set_num_threads(settings.threads)
    if ray is not None:
        return RayDriver(path, settings, None if ray == RAY_LOCAL else ray, actors)
    if into is not None:
        return ShardDriver(path, settings, into)
    return LocalDriver(path, settings)
