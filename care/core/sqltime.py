"""Time arithmetic and rounding inside SQL that read the same on SQLite and PostgreSQL.

``EpochDays(column)`` is a stored UTC timestamp as float days since 1970-01-01, so that
set-based code (the segment refresh, the value model's read of a million members) can do gap
arithmetic in the database, or fetch plain floats instead of parsing a datetime per row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

SECONDS_PER_DAY = 86_400.0


class EpochDays(FunctionElement[float]):
    """Days since 1970-01-01 of a stored timestamp, as a float, on either backend."""

    type = Float()
    inherit_cache = True
    name = "epoch_days"


@compiles(EpochDays, "sqlite")
def _epoch_days_sqlite(element: EpochDays, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"


@compiles(EpochDays)
def _epoch_days_default(element: EpochDays, compiler: SQLCompiler, **kw: Any) -> str:
    argument = compiler.process(element.clauses, **kw)
    return f"(CAST(EXTRACT(EPOCH FROM {argument}) AS DOUBLE PRECISION) / 86400.0)"


class Hundredths(FunctionElement[float]):
    """A float rounded to two decimals, half away from zero, on either backend."""

    type = Float()
    inherit_cache = True
    name = "hundredths"


@compiles(Hundredths, "sqlite")
def _hundredths_sqlite(element: Hundredths, compiler: SQLCompiler, **kw: Any) -> str:
    return f"ROUND({compiler.process(element.clauses, **kw)}, 2)"


@compiles(Hundredths)
def _hundredths_default(element: Hundredths, compiler: SQLCompiler, **kw: Any) -> str:
    argument = compiler.process(element.clauses, **kw)
    return f"CAST(ROUND(CAST({argument} AS NUMERIC), 2) AS DOUBLE PRECISION)"
