"""Quintile scores in SQL: the cut values of a column among some rows, and a 1–5 score from
them (``care.segments.rules.quintile_score`` is the pure reference). Used by the segment refresh
for RFM and for the predicted-value tiers.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, SmallInteger, case, cast, func, null, select
from sqlalchemy.ext.asyncio import AsyncConnection

from care.segments.rules import quintile_positions


async def quintile_cuts(
    connection: AsyncConnection,
    value: ColumnElement[Any],
    active: ColumnElement[bool],
    population: int,
) -> list[Any]:
    """The four values at the quintile positions of ``value`` among the active members."""
    if population == 0:
        return []
    positions = quintile_positions(population)
    numbered = (
        select(value.label("value"), func.row_number().over(order_by=value).label("position"))
        .where(active)
        .subquery()
    )
    found = dict(
        (
            await connection.execute(
                select(numbered.c.position, numbered.c.value).where(
                    numbered.c.position.in_(positions)
                )
            )
        ).all()
    )
    return [found[position] for position in positions]


def quintile_score_sql(
    value: ColumnElement[Any], cuts: list[Any], active: ColumnElement[bool]
) -> Any:
    if not cuts:
        # A typed NULL: PostgreSQL refuses ``NULL + NULL`` (two unknowns) in the RFM total.
        return cast(null(), SmallInteger)
    points = [case((value > cut, 1), else_=0) for cut in cuts]
    return case((active, 1 + points[0] + points[1] + points[2] + points[3]), else_=null())
