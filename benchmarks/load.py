"""The machine's load, printed beside every benchmark figure: this machine is shared, and a
figure measured at load 8 on 2 CPUs says little without it."""

from __future__ import annotations

import os


def load_text() -> str:
    """The 1, 5 and 15 minute load averages and the CPU count, as one bracketed note."""
    one, five, fifteen = os.getloadavg()
    return f"[load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs]"
