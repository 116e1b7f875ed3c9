"""SQL table outputs against a real PostgreSQL (127.0.0.1:5432, or $AGENTFLOW_TEST_PG) and SQLite.

Each test creates its own table (unique name) and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentflow_jobs.errors import OutputError
from agentflow_jobs.io.tables import TableWriter, sql_engine_url
from tests.runner.conftest import Workspace, reviews

# read before the autouse fixture clears AGENTFLOW_* variables
PG_URL = os.environ.get("AGENTFLOW_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
KINDS: dict[str, Any] = {"id": "string", "label": "string", "confidence": "number"}


def _pg_reachable() -> bool:
    try:
        with sa.create_engine(sql_engine_url(PG_URL)).connect():
            return True
    except sa.exc.OperationalError:
        return False


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'out.db'}"
        return
    if not _pg_reachable():
        pytest.fail(f"PostgreSQL is not reachable at {PG_URL} (set AGENTFLOW_TEST_PG)")
    yield PG_URL


@pytest.fixture
def table(db: str) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:10]}"
    yield name
    engine = sa.create_engine(sql_engine_url(db))
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    engine.dispose()


def _rows(url: str, table: str) -> list[tuple[Any, ...]]:
    engine = sa.create_engine(sql_engine_url(url))
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f'SELECT id, label, confidence FROM "{table}" ORDER BY id'))
        result = [tuple(r) for r in rows]
    engine.dispose()
    return result


def _write(url: str, table: str, rows: Iterable[dict[str, Any]], write: Any = "replace") -> None:
    writer = TableWriter(url, table, KINDS, write=write)
    try:
        for row in rows:
            writer.write(row)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    writer.commit()


def test_replace_creates_a_typed_table_and_replaces_its_rows(db: str, table: str) -> None:
    _write(db, table, [{"id": "a", "label": "pos", "confidence": 0.9}, {"id": "b", "label": "neg"}])
    _write(db, table, [{"id": "c", "label": "pos", "confidence": 1}])
    assert _rows(db, table) == [("c", "pos", 1.0)]
    engine = sa.create_engine(sql_engine_url(db))
    columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table)}
    engine.dispose()
    assert isinstance(columns["confidence"], sa.Float) and isinstance(columns["label"], sa.Text)


def test_upsert_updates_rows_by_id_and_keeps_the_others(db: str, table: str) -> None:
    _write(db, table, [{"id": "a", "label": "pos", "confidence": 0.9}, {"id": "b", "label": "neg"}], "upsert")
    _write(db, table, [{"id": "b", "label": "pos", "confidence": 0.5}, {"id": "c", "label": "neg"}], "upsert")
    assert _rows(db, table) == [("a", "pos", 0.9), ("b", "pos", 0.5), ("c", "neg", None)]


def test_a_failure_mid_write_leaves_the_previous_rows(db: str, table: str) -> None:
    _write(db, table, [{"id": "a", "label": "pos", "confidence": 0.9}])

    def rows() -> Iterator[dict[str, Any]]:
        for i in range(2500):  # past two flushed batches before it breaks
            yield {"id": f"n{i}", "label": "neg", "confidence": 0.1}
        raise RuntimeError("the process broke mid-write")

    with pytest.raises(RuntimeError):
        _write(db, table, rows())
    assert _rows(db, table) == [("a", "pos", 0.9)]


def test_a_database_error_names_the_table_without_the_password(tmp_path: Path) -> None:
    url = "postgresql://agent:s3cr3t-pw@127.0.0.1:1/nowhere"
    with pytest.raises(OutputError) as info:
        TableWriter(url, "results", KINDS, write="replace")
    text = str(info.value)
    assert "s3cr3t-pw" not in text
    assert text.startswith("postgresql://127.0.0.1:1/nowhere: cannot write table `results`")


def test_a_job_writes_its_rows_into_a_table(ws: Workspace, db: str, table: str, capsys: Any) -> None:
    ws.write_input("reviews.jsonl", reviews(3))
    url = db if db.startswith("postgresql") else "sqlite:///../out/results.db"
    ws.write_spec(output={"path": url, "table": table})
    assert ws.run("apply") == 0
    read_url = db if db.startswith("postgresql") else f"sqlite:///{ws.root / 'out' / 'results.db'}"
    rows = _rows(read_url, table)
    assert [r[0] for r in rows] == ["r0", "r1", "r2"]
    assert all(r[1] in ("positive", "negative") and isinstance(r[2], float) for r in rows)
    capsys.readouterr()
    assert ws.run("status", "--json") == 0
    assert f"(table {table})" in capsys.readouterr().out


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_plan_status_and_state_show_the_table_without_the_password(
    ws: Workspace, table: str, capsys: Any, db: str
) -> None:
    parsed = sa.make_url(PG_URL)
    secret = parsed.password or "s3cr3t-pw"  # trust auth on the test server ignores it
    url = parsed.set(password=secret).render_as_string(hide_password=False)
    ws.write_input("reviews.jsonl", reviews(2))
    ws.write_spec(output={"path": url, "table": table, "write": "upsert"})
    capsys.readouterr()
    assert ws.run("plan", "--json") == 0
    assert ws.run("apply") == 0
    assert ws.run("status", "--json") == 0
    out, err = capsys.readouterr()
    shown = f"postgresql://{parsed.host}:{parsed.port or 5432}/{parsed.database} (table {table})"
    assert out.count(shown) == 2  # plan, then status
    assert secret not in out and secret not in err
    assert secret.encode() not in ws.state.read_bytes()


def test_two_jobs_may_write_two_tables_of_one_database_but_not_one_table(
    ws: Workspace, capsys: Any
) -> None:
    ws.write_input("a.jsonl", reviews(1))
    ws.write_input("b.jsonl", reviews(1))
    ws.write_spec("a", output={"path": "sqlite:///../out/all.db", "table": "a_rows"})
    ws.write_spec("b", output={"path": "sqlite:///../out/all.db", "table": "b_rows"})
    assert ws.run("validate", "specs") == 0
    ws.write_spec("b", output={"path": "sqlite:///../out/all.db", "table": "a_rows"})
    capsys.readouterr()
    assert ws.run("validate", "specs") == 3
    assert "job `a` writes the same output file" in capsys.readouterr().out


def test_kill_9_mid_write_leaves_the_previous_rows_then_the_next_apply_writes_all(
    ws: Workspace, db: str, table: str, fake_provider: Any
) -> None:
    from tests.runner.test_crash import _finish

    url = db if db.startswith("postgresql") else "sqlite:///../out/results.db"
    read_url = db if db.startswith("postgresql") else f"sqlite:///{ws.root / 'out' / 'results.db'}"
    ws.write_input("reviews.jsonl", reviews(3))
    ws.write_spec(output={"path": url, "table": table})
    assert _finish(ws, fake_provider)[0] == 0
    before = _rows(read_url, table)
    ws.write_input("reviews.jsonl", reviews(2500, start=3), append=True)
    # the 5th crash point is at row 2000: two batches of 1000 rows were sent in the transaction
    code, _ = _finish(ws, fake_provider, AGENTFLOW_CRASH_AT="mid_output_write:5")
    assert code == 137
    assert _rows(read_url, table) == before
    assert _finish(ws, fake_provider)[0] == 0
    assert len(_rows(read_url, table)) == 2503
