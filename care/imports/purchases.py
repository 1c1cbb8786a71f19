"""Importing purchases from the till's (POS) CSV export.

Each line is checked exactly as the chat's /purchase checks what a cashier types, then booked
with the till's own arithmetic (``care.loyalty.purchases.book_into_member``), a batch at a time
with set-based statements (``care.imports.purchase_batch``): idempotent by receipt id, so
importing the same file twice counts nothing new. Each batch is one transaction (memory stays
flat, and an interrupted import resumes cleanly when run again); bad lines are reported with
their line numbers and reasons and never stop the rest. An imported history sends no receipts.

The file rules (encodings, separators, header, batches, report) are ``care.imports.csvfile``'s.
Columns:

* ``receipt_id`` — the till's receipt number, unique per purchase (at most 64 characters)
* ``member`` — the member code from the member card, or the member's phone number
* ``amount`` — the amount paid as a decimal number, e.g. ``88.50``
* ``currency`` — optional; when given it must be the shop's currency (e.g. ``CNY``)
* ``category`` — optional; one of the shop's categories (SHOP_CATEGORIES)
* ``purchased_at`` — ISO 8601 date and time, e.g. ``2026-03-01T14:30:00+08:00``; without an
  offset it is read in the shop's timezone (DEFAULT_TIMEZONE)
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.config import CareConfig
from care.imports.csvfile import (
    ImportFileError,
    ImportReport,
    LineProblem,
    Progress,
    Rejected,
    Row,
    check_short,
    progress_bar,
    render_report,
    run_import,
)
from care.imports.purchase_batch import CheckedLine, book_lines
from care.loyalty.till import TillInputError, match_category, parse_till_amount

__all__ = [
    "ImportFileError",
    "ImportReport",
    "Rejected",
    "import_purchases",
    "progress_bar",
    "render_report",
]

REQUIRED_COLUMNS = ("receipt_id", "member", "amount", "purchased_at")
OPTIONAL_COLUMNS = ("currency", "category")
RECEIPT_MAX = 64
BATCH_SIZE = 1_000
# A till clock a few minutes ahead is normal; a purchase days in the future is a typo.
FUTURE_TOLERANCE = timedelta(minutes=10)


def parse_time(text: str, zone: ZoneInfo) -> datetime:
    cleaned = text.strip()
    if cleaned.endswith(("Z", "z")):
        cleaned = cleaned[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(cleaned)
    except ValueError:
        raise LineProblem(
            f"purchased_at {text!r} is not an ISO 8601 time like 2026-03-01T14:30:00+08:00"
        ) from None
    return when.replace(tzinfo=zone) if when.tzinfo is None else when


def _check(config: CareConfig, now: datetime, line_number: int, row: Row) -> CheckedLine:
    """The line's own values; its member is found with the rest of the batch."""
    check_short(row)
    receipt = row.get("receipt_id", "")
    if not receipt:
        raise LineProblem("receipt_id is empty")
    if len(receipt) > RECEIPT_MAX:
        raise LineProblem(f"receipt_id is longer than {RECEIPT_MAX} characters")
    currency = row.get("currency", "")
    if currency and currency.upper() != config.currency:
        raise LineProblem(f"currency {currency!r} is not the shop's currency {config.currency}")
    try:
        amount = parse_till_amount(row.get("amount", ""), config)
        category = match_category(row.get("category"), config)
    except TillInputError as problem:
        raise LineProblem(_describe(problem, config)) from None
    if not row.get("purchased_at"):
        raise LineProblem("purchased_at is empty")
    when = parse_time(row["purchased_at"], ZoneInfo(config.default_timezone))
    if when > now + FUTURE_TOLERANCE:
        raise LineProblem(f"purchased_at {row['purchased_at']!r} is in the future")
    if not row.get("member"):
        raise LineProblem("member is empty")
    return CheckedLine(line_number, receipt, amount, category, when, row["member"])


def _describe(problem: TillInputError, config: CareConfig) -> str:
    value = problem.value
    return {
        "bad_amount": f"amount {value!r} is not an amount above zero (write it like 88.50)",
        "ambiguous_amount": (
            f"amount {value!r} is ambiguous (a decimal point or a thousands separator?); "
            "write it like 1250 or 12.50"
        ),
        "absurd_amount": f"amount {value!r} is larger than any single purchase can be",
        "unknown_category": (
            f"category {value!r} is not one of the shop's: {', '.join(config.categories)}"
        ),
        "bad_receipt": f"receipt_id {value!r} is not usable",
    }[problem.reason]


async def import_purchases(
    session_factory: async_sessionmaker[AsyncSession],
    config: CareConfig,
    clock: Clock,
    source: Path | TextIO,
    *,
    progress: Progress | None = None,
    batch_size: int = BATCH_SIZE,
    dry_run: bool = False,
) -> ImportReport:
    """Import a POS export; returns what was imported, what was known, what was rejected.

    With ``dry_run`` every line is checked and booked inside a transaction that is then
    rolled back: the report shows what a real import would do, and nothing changes.
    Raises ``ImportFileError`` when the file as a whole cannot be read.
    """

    return await run_import(
        session_factory,
        clock,
        source,
        required=REQUIRED_COLUMNS,
        check=lambda number, row, now: _check(config, now, number, row),
        book=lambda session, now, lines, report: book_lines(session, config, clock, lines, report),
        action="import.purchases",
        batch_size=batch_size,
        progress=progress,
        dry_run=dry_run,
    )
