"""Warehouse jobs: library functions that run models and store what they find.

Concurrency design (DuckDB lets one process write a file at a time, and a read-only
process cannot open a file while another writes it): a job never keeps the warehouse
open while it computes. It reads what it needs, closes the file, works on the model,
then opens the file for one short transaction per batch of results and closes it again.
`store.connect` waits while another process holds the file, so two jobs and any
number of `sigwh sql` readers take turns in milliseconds-long slots. Every stored row
has a natural key and is written with INSERT OR IGNORE, so two jobs that happen to do
the same work store it once.

Layout: one module per job (compose, label_transfer, asr) and one package (ingest: its
plan, its batch computation, and its local, shard and Ray drivers behind one
interface), none importing another; what they share is `skeleton` (plan → dry run →
run, the recorded run, the chunks) and `writer` (the file held open across batches).
The rows they store go through `sigwarehouse.store.write_path`. What a job computes
with lives below the jobs, where the analyses and the report use it too:
`sigwarehouse.records`, `sigwarehouse.signals`, `sigwarehouse.probes`,
`sigwarehouse.models`.
"""
