"""SQL tables as an output (SQLAlchemy Core): PostgreSQL (psycopg 3) and SQLite.

One apply writes the table in ONE transaction, so a reader sees the previous rows or
the new ones, never half of them:

1. connect and begin;
2. create the table if it is missing, with one typed column per output column (see
   ``io.columns``: string → TEXT, integer → BIGINT, number → DOUBLE PRECISION / REAL,
   boolean → BOOLEAN; nested values as JSON text); columns the table lacks are added;
3. ``write: replace`` deletes every row of the table (it is the job's), ``write: upsert``
   keeps them and inserts or updates by ``id`` (created as the primary key);
4. insert the rows in batches of ``_BATCH``;
5. commit — or, on any error (a failed row, a lost connection, a crash), roll back: the
   table keeps its previous contents.

The URL's password never appears in a message: errors name the URL through
``urls.display_url`` and their text is passed through ``log.redact``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from agentflow_jobs.errors import OutputError
from agentflow_jobs.io.columns import ColumnKind, cell
from agentflow_jobs.io.locations import SQL_SCHEMES, is_sql_url
from agentflow_jobs.log import redact
from agentflow_jobs.urls import display_url

__all__ = ["SQL_SCHEMES", "TableWriter", "is_sql_url", "sql_engine_url"]

WriteMode = Literal["replace", "upsert"]
_BATCH = 1000
_SQL_TYPES: dict[ColumnKind, Any] = {
    "string": sa.Text(),
    "integer": sa.BigInteger(),
    "number": sa.Float(precision=53),
    "boolean": sa.Boolean(),
}


def sql_engine_url(url: str) -> sa.URL:
    """The SQLAlchemy URL: PostgreSQL through psycopg 3 unless the URL names a driver."""
    parsed = sa.make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


class TableWriter:
    """Writes rows to one table in one transaction; ``commit`` publishes them all."""

    def __init__(
        self, url: str, table: str, kinds: Mapping[str, ColumnKind], *, write: WriteMode
    ) -> None:
        self._url, self._kinds, self._write = url, dict(kinds), write
        self._rows: list[dict[str, Any]] = []
        self._table = _table(table, self._kinds, key=write == "upsert")
        with self._errors():
            engine_url = sql_engine_url(url)
            if engine_url.get_backend_name() == "sqlite" and engine_url.database:
                # like a file output, a SQLite file's folder is made when missing
                Path(engine_url.database).parent.mkdir(parents=True, exist_ok=True)
            self._engine = sa.create_engine(engine_url)
            self._conn = self._engine.connect()
            self._trans = self._conn.begin()
            self._prepare()

    def _prepare(self) -> None:
        inspector = sa.inspect(self._conn)
        if not inspector.has_table(self._table.name):
            self._table.create(self._conn)
        else:
            have = {c["name"] for c in inspector.get_columns(self._table.name)}
            for column in self._table.columns:
                if column.name not in have:
                    kind = column.type.compile(dialect=self._conn.dialect)
                    name = self._conn.dialect.identifier_preparer.quote(column.name)
                    table = self._conn.dialect.identifier_preparer.quote(self._table.name)
                    self._conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))
        if self._write == "replace":
            self._conn.execute(self._table.delete())

    def write(self, row: Mapping[str, Any]) -> None:
        self._rows.append({name: cell(kind, row.get(name)) for name, kind in self._kinds.items()})
        if len(self._rows) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if not self._rows:
            return
        with self._errors():
            self._conn.execute(self._statement(), self._rows)
        self._rows = []

    def _statement(self) -> Any:
        if self._write == "replace":
            return self._table.insert()
        dialect = postgresql if self._conn.dialect.name == "postgresql" else sqlite
        insert = dialect.insert(self._table)
        updates = {c.name: insert.excluded[c.name] for c in self._table.columns if c.name != "id"}
        if not updates:
            return insert.on_conflict_do_nothing(index_elements=["id"])
        return insert.on_conflict_do_update(index_elements=["id"], set_=updates)

    def close(self) -> None:
        self._flush()

    def commit(self) -> None:
        with self._errors():
            self._flush()
            self._trans.commit()
        self._dispose()

    def abort(self) -> None:
        # a connection that is gone had its transaction rolled back by the server
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            self._trans.rollback()
        self._dispose()

    def _dispose(self) -> None:
        self._conn.close()
        self._engine.dispose()

    def _errors(self) -> _SqlErrors:
        return _SqlErrors(self._url, self._table.name)


class _SqlErrors:
    """Turns a database error into an OutputError naming the table, password-free."""

    def __init__(self, url: str, table: str) -> None:
        self.url, self.table = url, table

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if not isinstance(exc, sa.exc.SQLAlchemyError | ImportError):
            return
        orig = getattr(exc, "orig", None) or exc
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        password = sa.make_url(self.url).password if "://" in self.url else None
        message = redact(f"cannot write table `{self.table}`: {text}", str(password) if password else None)
        raise OutputError(message, path=display_url(self.url)) from None


def _table(name: str, kinds: Mapping[str, ColumnKind], *, key: bool) -> sa.Table:
    columns = [
        sa.Column(column, _SQL_TYPES[kind], primary_key=key and column == "id")
        for column, kind in kinds.items()
    ]
    return sa.Table(name, sa.MetaData(), *columns)
