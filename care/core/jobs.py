"""How far each periodic piece of work has got: the ``job_state`` rows.

One row per job (the scheduler's jobs, and each care rule) remembers up to when its work is done
(``covered_until``) and when it last ran; the scheduler's leader lease lives in the same table
(``care.scheduler``). Both the scheduler and the care engine record coverage here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.retry import CONTENTION
from storage.models import JobState


async def ensure_job_row(session: AsyncSession, name: str) -> None:
    """Create the row of job ``name`` unless it exists (another writer may create it first)."""
    if await session.get(JobState, name) is not None:
        return
    try:
        async with session.begin_nested():
            session.add(JobState(name=name))
    except IntegrityError:  # another replica or pass created it a moment ago
        pass


async def covered_until(session: AsyncSession, name: str) -> datetime | None:
    """Up to when job ``name`` has done its work (None: never)."""
    return await session.scalar(select(JobState.covered_until).where(JobState.name == name))


async def mark_covered(session: AsyncSession, name: str, until: datetime) -> None:
    """Record, and commit, that job ``name`` has done its work up to ``until`` and ran then.

    Coverage only moves forward: a slower pass that started earlier and finishes later does not
    undo a newer one. Retried when the database is busy.
    """

    async def record() -> None:
        try:
            await ensure_job_row(session, name)
            await session.execute(
                update(JobState)
                .where(JobState.name == name)
                .values(
                    covered_until=case(
                        (
                            or_(JobState.covered_until.is_(None), JobState.covered_until < until),
                            until,
                        ),
                        else_=JobState.covered_until,
                    ),
                    last_run_at=until,
                )
                .execution_options(synchronize_session=False)
            )
            await session.commit()
        except Exception:
            await session.rollback()
            raise

    await CONTENTION.run(record)
