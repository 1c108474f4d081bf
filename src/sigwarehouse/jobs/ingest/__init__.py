"""The ingest job: `sigwh ingest --model M` explains every clip of M's task with freqrex
and stores it all.

For each clip not yet done with the same parameters, one ingest job stores M's original
probabilities, the freqrex explanation (responsibility map, sufficient and complete
masks), and the probabilities that *every* model of the task gives the sufficient,
complete and inverse signals. It also gives M's probabilities on every other model's
stored signals that M has not seen, so the order in which models are ingested does not
matter: the cross-model matrix fills itself.

Modules, each importing only those above it in this list:

    plan       what a job will do (IngestPlan, plan_ingest) and what it did (IngestSummary)
    batch      what one batch computes: waves and models in, rows out
    rows       what the drivers read from the warehouse and store in it; the recorded run
    runtime    the precision and batch size chosen once the models are loaded
    progress   the progress bar
    local, shards, on_ray   the drivers: in this process, into a shard file, on Ray
    drivers    the one interface to them, and the factory `create` that picks one

A batch of clips is computed with the warehouse closed and written in one transaction
(see `sigwarehouse.jobs` for why), so a job killed at any moment loses at most its
in-flight batch, and rerunning it does exactly the work that is missing.
"""

from sigwarehouse.jobs.ingest.batch import (
    EXPLANATION_COLUMNS,
    ORIGINAL_COLUMNS,
    RANK_COLUMNS,
    SIGNAL_COLUMNS,
)
from sigwarehouse.jobs.ingest.drivers import Selection, Settings, create
from sigwarehouse.jobs.ingest.local import check_models, run_ingest
from sigwarehouse.jobs.ingest.plan import IngestPlan, IngestSummary, plan_ingest
from sigwarehouse.jobs.ingest.progress import progress_bar, warnings_held
from sigwarehouse.jobs.ingest.rows import batch_tables, ingest_writer, probe_table, write_batch

__all__ = [
    "EXPLANATION_COLUMNS",
    "ORIGINAL_COLUMNS",
    "RANK_COLUMNS",
    "SIGNAL_COLUMNS",
    "IngestPlan",
    "IngestSummary",
    "Selection",
    "Settings",
    "batch_tables",
    "check_models",
    "create",
    "ingest_writer",
    "plan_ingest",
    "probe_table",
    "progress_bar",
    "warnings_held",
    "run_ingest",
    "write_batch",
]
