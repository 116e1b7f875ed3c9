"""The rule for destinations: URLs, tables and formats that fit where the data goes.

A location's kind (local path, object-store URL, database URL) is decided by
``io.locations``; this rule reports, located in the spec, what does not fit: a scheme
nobody serves, a table without a database URL (or a database URL without a table), a
database as an input, a format for a table, Parquet named like a text file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentflow_jobs.io.locations import location_kind, url_scheme
from agentflow_jobs.spec.models import default_format

if TYPE_CHECKING:
    from agentflow_jobs.spec.rules import Reporter

__all__ = ["check_destinations"]


def _get(data: Any, *path: str) -> Any:
    for key in path:
        data = data.get(key) if isinstance(data, dict) else None
    return data


_SCHEMES_HINT = "a local path, file://, memory://, s3://, gs:// or az://; postgresql:// or sqlite:/// with `output.table`"


def check_destinations(data: dict[str, Any], report: Reporter) -> None:
    """URLs name a known scheme; a table needs a database URL and the other way round;
    the format fits the destination."""
    for section in ("input", "output"):
        path = _get(data, section, "path")
        kind = location_kind(path) if isinstance(path, str) else None
        if kind == "unknown":
            report.at_value((section, "path"), f"unknown scheme `{url_scheme(str(path))}://` in "
                            f"`{section}.path`", f"use {_SCHEMES_HINT}")
        elif kind == "sql" and section == "input":
            report.at_value(("input", "path"), "a database URL cannot be an input", "export the table to a file")
        elif section == "output":
            _check_table(data, report, kind)
        _check_parquet(data, report, section)
    errors = _get(data, "output", "errors_path")
    if isinstance(errors, str) and location_kind(errors) != "local":
        report.at_value(("output", "errors_path"), "`output.errors_path` must be a local file")


def _check_table(data: dict[str, Any], report: Reporter, kind: str | None) -> None:
    output = data.get("output")
    if not isinstance(output, dict):
        return
    if kind == "sql":
        if output.get("table") is None:
            report.at_value(("output", "path"), "a database URL as `output.path` needs `output.table`",
                            "name the table to write, e.g. `table: results`")
        if "format" in output:
            report.at_key(("output", "format"), "`output.format` does not apply to a table output",
                          "remove it: a table has typed columns")
        return
    for key in ("table", "write"):
        if key in output:
            report.at_key(("output", key), f"`output.{key}` needs a database URL as `output.path`",
                          "postgresql://… or sqlite:///…")


def _check_parquet(data: dict[str, Any], report: Reporter, section: str) -> None:
    """Parquet is binary: it does not fit a text file's name, nor a text format a .parquet."""
    path, fmt = _get(data, section, "path"), _get(data, section, "format")
    implied = default_format(path) if isinstance(path, str) else None
    if isinstance(fmt, str) and implied is not None and "parquet" in (fmt, implied) and fmt != implied:
        report.at_value((section, "format"), f"`format: {fmt}` does not fit `{path}` (a {implied} file)",
                        f"name the file .{'parquet' if fmt == 'parquet' else fmt} or drop `format`")
