"""The warehouse file: its schema, its checks, its views, and the one way to open it.

Modules, each importing only those below it (tests/test_layers.py checks it):

    sql_files, atomic        the SQL this package ships; BEGIN … COMMIT (transaction)
    file_format              DuckDB's file header and the storage version
    integrity                is the file a whole sigwarehouse warehouse?
    views                    the package's views in front of the file's
    io_errors                a full disk or a failed write told apart from damage
    connection               connect (in turn with other processes), opened, migrate, init
    transfer_counts          per-cell counts of the stored signals
    write_path               the runs rows and a job's batches, in one transaction each
    convert, views_check     maintenance: `sigwh convert`, `sigwh views --check`

What most callers need is exported here: `store.opened(path)`, `store.transaction(con)`,
`store.init(path)`; the modules beside it are imported by name
(`from sigwarehouse.store import write_path`).
"""

from sigwarehouse.errors import WarehouseError
from sigwarehouse.store.atomic import transaction
from sigwarehouse.store.connection import (
    DEFAULT_WAREHOUSE,
    connect,
    default_path,
    init,
    migrate,
    opened,
    pending,
    require_current,
    table_counts,
)
from sigwarehouse.store.sql_files import (
    MIGRATIONS_TABLE,
    Migration,
    applied_versions,
    code_schema_version,
    migrations,
    read_sql,
    sql_dir,
    view_files,
)

__all__ = [
    "DEFAULT_WAREHOUSE",
    "MIGRATIONS_TABLE",
    "Migration",
    "WarehouseError",
    "applied_versions",
    "code_schema_version",
    "connect",
    "default_path",
    "init",
    "migrate",
    "migrations",
    "opened",
    "pending",
    "read_sql",
    "require_current",
    "sql_dir",
    "table_counts",
    "transaction",
    "view_files",
]
