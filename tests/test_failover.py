"""Failover of the schedule: when the leader dies another replica leads within 30 seconds, and
a leader that lost its lease can no longer act (the fencing check) — no double runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiohttp import ClientSession
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock, FrozenClock
from care.core.config import CareConfig
from care.scheduler import (
    LEADER,
    LEASE_TTL,
    RENEW_EVERY,
    RULES_JOB,
    CareScheduler,
    job_state,
    mark_covered,
)
from storage.db import create_engine, create_session_factory
from tests.simulator import BotAPISimulator
from tests.test_webhook import free_port

ROOT = Path(__file__).resolve().parent.parent
Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(sqlite_url)
    yield create_session_factory(engine)
    await engine.dispose()


def replica(db: Factory, holder: str, clock: Clock, **timing: timedelta) -> CareScheduler:
    return CareScheduler(
        None,  # type: ignore[arg-type]  # nothing is delivered here
        db,
        CareConfig(),
        clock,
        holder=holder,
        deliver=False,
        **timing,  # type: ignore[arg-type]
    )


async def leader_of(db: Factory) -> str | None:
    state = await job_state(db, LEADER)
    return state.lease_holder if state is not None else None


def test_the_default_lease_fails_over_within_30_seconds() -> None:
    assert timedelta(seconds=30) >= LEASE_TTL + RENEW_EVERY


async def test_a_dead_leaders_place_is_taken_within_its_lease_and_a_renewal(
    db: Factory,
) -> None:
    timing = {"lease_ttl": timedelta(seconds=3), "renew_every": timedelta(seconds=1)}
    first = replica(db, "replica-a", Clock(), **timing)
    second = replica(db, "replica-b", Clock(), **timing)
    await first.start()
    await asyncio.sleep(0.5)
    await second.start()
    try:
        await asyncio.sleep(1.5)
        assert await leader_of(db) == "replica-a"
        first.kill()  # as kill -9: no job finishes, the lease is not handed over
        died = time.monotonic()
        lease = await job_state(db, LEADER)
        assert lease is not None and lease.lease_until is not None
        while await leader_of(db) != "replica-b":
            assert time.monotonic() - died < 3 + 1 + 2, "nobody took over"
            await asyncio.sleep(0.1)
        # Not before the dead leader's lease ran out (however late its last renewal came).
        assert Clock().now() >= lease.lease_until
    finally:
        await second.stop()


async def test_a_leader_that_lost_its_lease_records_nothing(
    db: Factory, clock: FrozenClock
) -> None:
    stale = replica(db, "replica-a", clock)
    fresh = replica(db, "replica-b", clock)
    assert await stale.is_leader()
    before = clock.now()
    assert await mark_covered(db, RULES_JOB, before, holder="replica-a")
    clock.advance(LEASE_TTL + timedelta(seconds=1))  # replica-a froze; its lease ran out
    assert await fresh.is_leader()
    assert not await mark_covered(db, RULES_JOB, clock.now(), holder="replica-a")
    state = await job_state(db, RULES_JOB)
    assert state is not None and state.covered_until == before
    # When it wakes up it finds out at its next renewal, and runs nothing.
    assert not await stale.is_leader()
    assert await stale.run_rules() is None
    assert await mark_covered(db, RULES_JOB, clock.now(), holder="replica-b")


async def test_a_stuck_leader_steps_down_and_stops_its_jobs_before_its_lease_ends(
    db: Factory,
) -> None:
    care = replica(db, "replica-a", Clock(), lease_ttl=timedelta(seconds=4))
    assert await care.is_leader()
    job = asyncio.create_task(asyncio.sleep(60))
    care._running.add(job)
    care._leading_until = time.monotonic() - 0.01  # renewals failed for a whole lease
    await care.renew()  # this one still succeeds: it leads again, the job goes on
    assert not job.done()

    async def unreachable() -> bool:
        raise OSError("database unreachable")

    care.is_leader = unreachable  # type: ignore[method-assign]
    care._leading_until = time.monotonic() - 0.01
    assert not await care.renew()
    await asyncio.sleep(0)
    assert job.cancelled()


@pytest.mark.slow
async def test_kill_9_of_the_leading_process_is_followed_by_another_leader_within_30_s(
    tmp_path: Path,
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'shop.db'}"
    engine = create_engine(database_url)
    db = create_session_factory(engine)
    processes: list[asyncio.subprocess.Process] = []
    async with BotAPISimulator() as sim:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "DATABASE_"))},
            "BOT_TOKEN": "123456:failover-test",
            "TELEGRAM_API_URL": sim.base_url,
            "DATABASE_URL": database_url,
            "PYTHONPATH": str(ROOT),
        }

        async def start() -> tuple[asyncio.subprocess.Process, str]:
            port = free_port()
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "run", cwd=tmp_path,
                env={**env, "METRICS_LISTEN": f"127.0.0.1:{port}"},
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            processes.append(process)
            return process, f"http://127.0.0.1:{port}/readyz"

        async def ready(url: str, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            async with ClientSession() as http:
                while True:
                    with contextlib.suppress(OSError):
                        async with http.get(url) as response:
                            if response.status == 200:
                                return
                    assert time.monotonic() < deadline, f"{url} never said ready"
                    await asyncio.sleep(0.2)

        async def holder_pid(timeout: float) -> int:
            deadline = time.monotonic() + timeout
            while True:
                holder = None
                try:
                    holder = await leader_of(db)
                except Exception:  # the schema is still being created
                    holder = None
                if holder:
                    return int(holder.split(":")[1])
                assert time.monotonic() < deadline, "no replica leads"
                await asyncio.sleep(0.2)

        try:
            first, _ = await start()
            assert await holder_pid(90) == first.pid
            second, second_ready = await start()
            await ready(second_ready, 90)
            await asyncio.sleep(1)  # its schedule has started and follows
            assert second.returncode is None and await holder_pid(1) == first.pid
            first.send_signal(signal.SIGKILL)
            await first.wait()
            killed = time.monotonic()
            while (pid := await holder_pid(1)) != second.pid:
                assert pid == first.pid
                assert time.monotonic() - killed < 30, "no new leader within 30 s"
                await asyncio.sleep(0.2)
        finally:
            for process in processes:
                if process.returncode is None:
                    process.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(process.wait(), 60)
            await engine.dispose()
