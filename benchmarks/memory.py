"""Peak memory of the current process, as the benchmarks report it.

``getrusage(RUSAGE_SELF).ru_maxrss`` is not the process's own peak on Linux: at ``exec`` the
kernel carries the parent's high-water mark over (the child began as a copy of the parent), so a
child started by a benchmark that had generated data or refreshed segments reports the parent's
size, e.g. 1.5 GB for a pass that used 365 MB. ``VmHWM`` in ``/proc/self/status`` is the peak of
this process's own memory since its ``exec``; other systems fall back to ``ru_maxrss``.
"""

from __future__ import annotations

import resource
from pathlib import Path


def _status_kb(field: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return None


def peak_rss_mb() -> float:
    """This process's own peak resident memory since it started, in MB."""
    peak = _status_kb("VmHWM")
    if peak is None:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return peak / 1024
