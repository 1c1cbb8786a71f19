"""One logging configuration for the CLI and the bot process."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        force=True,
    )
    # aiogram logs every handled update at INFO; our own middleware logs them at DEBUG.
    if level != "DEBUG":
        logging.getLogger("aiogram.event").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # Their DEBUG is two lines per database call (and font lookups): it drowns our own debug
    # lines, and a supervisor that reads stderr slowly can fill the pipe and stall the bot.
    for chatty in ("aiosqlite", "matplotlib"):
        logging.getLogger(chatty).setLevel(logging.INFO)
