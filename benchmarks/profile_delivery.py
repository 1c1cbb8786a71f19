"""CPU per message in the delivery worker, against the simulator in its own process.

The machine this project is measured on is shared and loaded, so messages/s move with the load;
the worker's CPU time per message does not, and it says what rate one free core would reach.
This queues a ``--members`` broadcast, lets ``DeliveryWorker.drain_once`` send all of it at
``--rate`` (the simulator's limit set just above) and prints the rate, the load, and the worker
process's CPU per message. ``--profile FILE`` writes a cProfile of the drain (read it with
``python -m pstats FILE``; the profiler itself roughly doubles the CPU figure). The worker runs
on the loop a delivery process runs on (uvloop where installed; ``--asyncio`` for asyncio's).

    python -m benchmarks.profile_delivery [--members 5000] [--rate 1000] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_delivery import (
    FAST_RATE,
    FAST_SIM_LIMIT,
    SimProcess,
    make_bot,
    prepared_outbox,
    sent_in_db,
)
from benchmarks.load import load_text
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.eventloop import new_event_loop
from care.messaging.delivery import DeliveryWorker


async def measure(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="carebot-profile-") as tmp:
        async with SimProcess() as sim:
            await sim.register_chats(2_000_000, args.members + 1)
            await sim.limits(int(args.rate * FAST_SIM_LIMIT / FAST_RATE))
            engine, factory, _ = await prepared_outbox(
                Path(tmp), "profile", 2_000_000, args.members
            )
            await sim.reset_stats()
            bot = make_bot(sim.base_url)
            worker = DeliveryWorker(bot, factory, CareConfig(send_rate=args.rate), Clock())
            # Warm up as the benchmark's earlier runs do: aiogram builds its answer types'
            # validators on first use, and the first request opens a connection.
            await bot.send_message(2_000_000 + args.members, "warm-up")
            await sim.reset_stats()
            sim_cpu = sim.cpu_seconds()
            profiler = cProfile.Profile() if args.profile else None
            times, wall = os.times(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            while await worker.drain_once():
                pass
            if profiler is not None:
                profiler.disable()
            wall = time.perf_counter() - wall
            user, system = (
                now - then for now, then in zip(os.times()[:2], times[:2], strict=True)
            )
            sim_cpu = sim.cpu_seconds() - sim_cpu
            await bot.session.close()
            stats = await sim.stats()
            recorded = await sent_in_db(factory)
            await engine.dispose()
    if profiler is not None:
        profiler.dump_stats(args.profile)
    sent = stats["sent"]
    print(
        f"{sent:,} sent ({recorded:,} recorded, {stats['errors_429']} answered 429) in "
        f"{wall:.2f} s: {sent / wall:.0f} msg/s at {args.rate:.0f}/s; worker CPU "
        f"{(user + system) / max(sent, 1) * 1000:.3f} ms per message "
        f"({system / max(sent, 1) * 1000:.3f} of it in the kernel; {(user + system) / wall:.0%} "
        f"of a core), simulator {sim_cpu / max(sent, 1) * 1000:.3f} ms; "
        f"{type(asyncio.get_running_loop()).__module__} loop {load_text()}"
    )
    return 0 if sent == recorded == args.members else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile_delivery")
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--rate", type=float, default=FAST_RATE)
    parser.add_argument("--profile", type=Path, help="write a cProfile of the drain here")
    parser.add_argument(
        "--asyncio", action="store_true", help="asyncio's own loop instead of uvloop"
    )
    args = parser.parse_args(argv)
    gc.freeze()
    factory = asyncio.new_event_loop if args.asyncio else new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(measure(args))


if __name__ == "__main__":
    sys.exit(main())
