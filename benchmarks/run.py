"""Run every benchmark in the repository: ``python -m benchmarks.run`` (``make bench``).

Each benchmark module exposes ``main(argv: list[str] | None = None)`` (plain or async),
returning 0 or None when every target was met. It is called with no arguments here; run a module
directly (``python -m benchmarks.bench_delivery --help``) for its options. A module that is not
there yet is reported and skipped, not fatal. ``python -m benchmarks.run delivery`` runs one
(``updates``, ``delivery``, ``segments``, ``value``, ``evaluation``, ``import``).
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import sys
import time
import traceback

BENCHMARKS: tuple[tuple[str, str], ...] = (
    ("benchmarks.bench_updates", "updates: carebot run beside a plain aiogram + SQLAlchemy bot"),
    ("benchmarks.bench_delivery", "delivery: outbox → Telegram within its limits"),
    ("benchmarks.bench_segments", "segments: refresh over 1,000,000 members"),
    ("benchmarks.bench_value", "customer value: BG/NBD + Gamma-Gamma over 1,000,000 members"),
    ("benchmarks.bench_evaluation", "care rules: one evaluation pass over 1,000,000 members"),
    ("benchmarks.bench_import", "import: carebot import members, 100,000 customers"),
)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    wanted = set(argv)
    failures: list[str] = []
    started = time.monotonic()
    for module_name, title in BENCHMARKS:
        short = module_name.rsplit(".", 1)[-1].removeprefix("bench_")
        if wanted and short not in wanted:
            continue
        print(f"\n=== {title} ({module_name}) ===", flush=True)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            print(f"skipped: {module_name} is not in this checkout", flush=True)
            continue
        entry = getattr(module, "main", None)
        if entry is None:
            print(f"skipped: {module_name} has no main()", flush=True)
            continue
        begun = time.monotonic()
        try:
            status = entry([])
            if inspect.isawaitable(status):
                status = asyncio.run(status)  # type: ignore[arg-type]
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except Exception:
            traceback.print_exc()
            status = 1
        print(f"--- {short}: {time.monotonic() - begun:.0f}s, exit {status or 0}", flush=True)
        if status:
            failures.append(short)
    print(f"\nall benchmarks: {time.monotonic() - started:.0f}s", flush=True)
    if failures:
        print(f"targets missed or errors in: {', '.join(failures)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
