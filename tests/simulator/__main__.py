"""Run the simulator standalone: ``python -m tests.simulator --port 8081 [--limits]``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal

from care.core.eventloop import new_event_loop

from .server import BotAPISimulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--limits", action="store_true", help="enforce Telegram rate limits")
    parser.add_argument("--global-rate", type=int, default=30, help="messages/s overall")
    parser.add_argument("--per-chat-rate", type=float, default=1.0, help="messages/s per chat")
    parser.add_argument(
        "--keep-history",
        action="store_true",
        help="store every message (default: counters only, for benchmarks)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="delay every response (s)")
    parser.add_argument("--token", action="append", help="accept only these tokens")
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="serve on uvloop: less of the machine's CPU for the stand-in Telegram",
    )
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    sim = BotAPISimulator(
        args.host,
        args.port,
        keep_history=args.keep_history,
        valid_tokens=set(args.token) if args.token else None,
    )
    sim.latency = args.latency
    if args.limits:
        sim.enforce_limits(args.global_rate, args.per_chat_rate)
    await sim.start()
    print(f"Bot API simulator listening on {sim.base_url}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await sim.stop()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with asyncio.Runner(loop_factory=new_event_loop if args.uvloop else None) as runner:
        runner.run(serve(args))


if __name__ == "__main__":
    main()
