"""The performance table: its columns, once, and its rows written by DuckDB.

A run of 100,000 cases has 100,000 rows: Python took 1.8 s to format 90,000 of them as table rows,
DuckDB 0.4 s (on 2 cores), so the rows come out of the database already as Markdown lines (cells
escaped as the Markdown renderer escapes them) or as one JSON array the page's script sorts and
filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from pytest_hfmodels.report.model import PerformanceTable, TableColumn

if TYPE_CHECKING:
    import duckdb

#: what a table can be made as
TABLE_FORMATS = ("markdown", "json")


@dataclass(frozen=True)
class _Column:
    column: TableColumn
    expression: str  #: over performance_results p and models m
    #: part of the case's key (the page finds a row's trend by it): never rounded
    key: bool = False


_COLUMNS = (
    _Column(TableColumn("model", "text", "registry key; the Hub id on hover"),
            "coalesce(m.model_key, p.model_id)"),
    _Column(TableColumn("mode", "text", "runtime"), "p.mode"),
    _Column(TableColumn("hardware", "text", "device label"), "p.hardware"),
    _Column(TableColumn("scenario", "text", "forward: one call; generate: greedy decoding"), "p.scenario"),
    _Column(TableColumn("batch", "int", "rows per call"), "p.batch_size"),
    _Column(TableColumn("seq", "int", "tokens per row"), "p.sequence_length"),
    _Column(TableColumn("audio s", "float", "seconds of audio per row"), "p.audio_seconds", key=True),
    _Column(TableColumn("precision", "text", "what the runtime computed in"), "p.precision"),
    _Column(TableColumn("p50 ms", "float", "median latency of one call"), "p.latency_p50_ms"),
    _Column(TableColumn("p90 ms", "float", "90th percentile latency"), "p.latency_p90_ms"),
    _Column(TableColumn("p99 ms", "float", "99th percentile latency"), "p.latency_p99_ms"),
    _Column(TableColumn("items/s", "float", "batch rows per second"), "p.throughput_per_s"),
    _Column(TableColumn("weights MB", "float",
                        "the model's parameters and buffers (ONNX file for exported modes)"),
            "p.weights_mb"),
    _Column(TableColumn("load MB", "float", "RSS the model's load added"), "p.model_load_mb"),
    _Column(TableColumn("inference MB", "float", "RSS the timed rounds added over the loaded model"),
            "p.inference_peak_mb"),
    _Column(TableColumn("process MB", "float", "the whole process's peak RSS (every runtime and model)"),
            "p.process_peak_rss_mb"),
    _Column(TableColumn("load s", "float", "loading the model (conversion excluded)"), "p.load_time_s"),
    _Column(TableColumn("contended", "bool", "other xdist workers ran at the same time"), "p.contended"),
    _Column(TableColumn("output", "text", "what the model answered"), "p.output_sample"),
)  # fmt: skip

COLUMNS: tuple[TableColumn, ...] = tuple(c.column for c in _COLUMNS)

_FROM = """FROM performance_results p LEFT JOIN models m USING (model_id) WHERE p.run_id = ?"""
_ORDER = """ORDER BY coalesce(m.model_key, p.model_id), p.model_id, p.mode, p.hardware, p.scenario,
                     p.batch_size, p.sequence_length, p.audio_seconds, p.precision, p.case_id"""


def _markdown_cell(column: _Column) -> str:
    """The SQL of one Markdown cell: numbers with 3 decimals, text escaped as markdown._md escapes."""
    value = column.expression
    kind = column.column.kind
    if kind == "float":
        return f"coalesce(printf('%.3f', {value}), '')"
    if kind == "int":
        return f"coalesce(CAST({value} AS VARCHAR), '')"
    if kind == "bool":
        return f"CASE WHEN {value} THEN 'yes' WHEN NOT {value} THEN 'no' ELSE '' END"
    # Markdown viewers render inline HTML and split cells on a raw pipe; a newline ends the row.
    text = f"coalesce(CAST({value} AS VARCHAR), '')"
    for raw, escaped in (
        ("&", "&amp;"),
        ("<", "&lt;"),
        (">", "&gt;"),
        ("|", "\\|"),
        ("\r", " "),
        ("\n", " "),
    ):
        text = f"replace({text}, {_sql_text(raw)}, {_sql_text(escaped)})"
    return text


def _json_cell(column: _Column) -> str:
    # Three decimals are what every report shows; more would only make the page larger.
    rounded = column.column.kind == "float" and not column.key
    return f"round({column.expression}, 3)" if rounded else column.expression


def _sql_text(text: str) -> str:
    return (
        "'"
        + text.replace("'", "''").replace("\n", "' || chr(10) || '").replace("\r", "' || chr(13) || '")
        + "'"
    )


def performance_table(con: duckdb.DuckDBPyConnection, run_id: int, form: str | None) -> PerformanceTable:
    """The run's performance rows as Markdown lines (form 'markdown'), JSON ('json'), or only counted."""
    count = con.execute(f"SELECT count(*) {_FROM}", [run_id]).fetchone()
    rows = int(count[0]) if count else 0
    markdown = json_rows = None
    if form == "markdown" and rows:
        cells = " || ' | ' || ".join(_markdown_cell(c) for c in _COLUMNS)
        line = f"'| ' || {cells} || ' |'"
        found = con.execute(f"SELECT string_agg({line}, chr(10) {_ORDER}) {_FROM}", [run_id]).fetchone()
        markdown = str(found[0]) if found and found[0] is not None else ""
    elif form == "json":
        cells = ", ".join([*(_json_cell(c) for c in _COLUMNS), "p.model_id"])
        found = con.execute(
            f"SELECT to_json(list(json_array({cells}) {_ORDER})) {_FROM}", [run_id]
        ).fetchone()
        json_rows = str(found[0]) if found and found[0] is not None else "[]"
    elif form is not None:
        raise ValueError(f"unknown table form {form!r} ({', '.join(TABLE_FORMATS)})")
    return PerformanceTable(COLUMNS, rows, markdown, json_rows)
