"""How far each periodic piece of work has got: the ``job_state`` rows.

One row per job (the scheduler's jobs, and each care rule) remembers up to when its work is done
(``covered_until``) and when it last ran; the scheduler's leader lease lives in the same table
(``care.scheduler``). Both the scheduler and the care engine record coverage here.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import case, exists, or_, select, update
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


async def mark_covered(
    session: AsyncSession,
    name: str,
    until: datetime,
    *,
    holder: str | None = None,
    lease_name: str | None = None,
) -> bool:
    """Record, and commit, that job ``name`` has done its work up to ``until`` and ran then.

    Coverage only moves forward: a slower pass that started earlier and finishes later does not
    undo a newer one. Retried when the database is busy. With ``holder`` and ``lease_name`` the
    write is fenced: it happens only while ``holder`` still holds that lease until ``until``, in
    the same statement, and False says it did not (a stale leader records nothing).
    """

    async def record() -> bool:
        try:
            await ensure_job_row(session, name)
            statement = update(JobState).where(JobState.name == name)
            if holder is not None and lease_name is not None:
                lease = JobState.__table__.alias("lease")
                statement = statement.where(
                    exists().where(
                        lease.c.name == lease_name,
                        lease.c.lease_holder == holder,
                        lease.c.lease_until >= until,
                    )
                )
            result = await session.execute(
                statement.values(
                    covered_until=case(
                        (
                            or_(JobState.covered_until.is_(None), JobState.covered_until < until),
                            until,
                        ),
                        else_=JobState.covered_until,
                    ),
                    last_run_at=until,
                ).execution_options(synchronize_session=False)
            )
            await session.commit()
        except Exception:
            await session.rollback()
            raise
        return bool(getattr(result, "rowcount", 0) == 1)

    return await CONTENTION.run(record)
