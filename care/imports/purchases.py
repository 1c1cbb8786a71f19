"""Importing purchases from the till's (POS) CSV export.

Each line is checked exactly as the chat's /purchase checks what a cashier types, then booked
through ``care.loyalty.purchases.record_purchase``: idempotent by receipt id, so importing the same
file
twice counts nothing new. Lines are committed in batches (memory stays flat, and an
interrupted import resumes cleanly when run again); bad lines are reported with their line
numbers and reasons and never stop the rest.

The file is CSV in UTF-8 (a byte-order mark is fine) or GBK, comma- or semicolon-separated.
Columns (a header line is required; names are case-insensitive, order is free, extra columns
are ignored):

* ``receipt_id`` — the till's receipt number, unique per purchase (at most 64 characters)
* ``member`` — the member code from the member card, or the member's phone number
* ``amount`` — the amount paid as a decimal number, e.g. ``88.50``
* ``currency`` — optional; when given it must be the shop's currency (e.g. ``CNY``)
* ``category`` — optional; one of the shop's categories (SHOP_CATEGORIES)
* ``purchased_at`` — ISO 8601 date and time, e.g. ``2026-03-01T14:30:00+08:00``; without an
  offset it is read in the shop's timezone (DEFAULT_TIMEZONE)
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.loyalty.purchases import PurchaseError, PurchaseResult, record_purchase
from care.loyalty.till import TillInputError, match_category, parse_till_amount, till_member
from storage.models import Member

REQUIRED_COLUMNS = ("receipt_id", "member", "amount", "purchased_at")
OPTIONAL_COLUMNS = ("currency", "category")
RECEIPT_MAX = 64
BATCH_SIZE = 200
# A till clock a few minutes ahead is normal; a purchase days in the future is a typo.
FUTURE_TOLERANCE = timedelta(minutes=10)

Progress = Callable[[int, int], None]


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, not CSV, columns missing)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    reason: str


@dataclass(slots=True)
class ImportReport:
    lines: int = 0
    imported: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.rejected


class LineProblem(Exception):
    """One line is refused; the message is the reason shown in the report."""


def file_encoding(path: Path) -> str:
    """UTF-8 (with or without the byte-order mark Excel writes), else GB18030.

    Tills sold in China often export GBK; GB18030 reads every GBK file. The whole file is
    checked in chunks, so a bad byte deep in a big file is found before anything is booked.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "gb18030"
    except OSError as exc:
        raise ImportFileError(f"cannot open {path}: {exc.strerror}") from None
    return "utf-8-sig"


def _open(source: Path | TextIO) -> TextIO:
    if isinstance(source, Path):
        try:
            return source.open(encoding=file_encoding(source), newline="")
        except OSError as exc:
            raise ImportFileError(f"cannot open {source}: {exc.strerror}") from None
    return source


def _rows(handle: TextIO) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for every non-blank data line; the header is checked first."""
    try:
        first = handle.readline()
        if not first.strip():
            raise ImportFileError("the file is empty (a header line is needed)")
        delimiter = ";" if first.count(";") > first.count(",") else ","
        reader = csv.reader(itertools.chain([first], handle), delimiter=delimiter)
        names = [name.strip().lower() for name in next(reader)]
        missing = [column for column in REQUIRED_COLUMNS if column not in names]
        if missing:
            raise ImportFileError(
                f"missing column(s): {', '.join(missing)} "
                f"(the header line has: {', '.join(names)})"
            )
        for values in reader:
            if not any(value.strip() for value in values):
                continue
            row = {name: value.strip() for name, value in zip(names, values, strict=False)}
            if len(values) < len(names):
                row["_short"] = "1"
            yield reader.line_num, row
    except UnicodeDecodeError:
        raise ImportFileError("the file is neither UTF-8 nor GBK text; export it as CSV") from None
    except csv.Error as exc:
        raise ImportFileError(f"not a readable CSV file: {exc}") from None


def count_lines(source: Path | TextIO) -> int:
    """How many data lines a file has (for the progress bar)."""
    handle = _open(source)
    try:
        return sum(1 for _ in _rows(handle))
    finally:
        if isinstance(source, Path):
            handle.close()
        elif handle.seekable():
            handle.seek(0)


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


@dataclass(frozen=True, slots=True)
class _Line:
    member_id: int
    receipt_id: str
    amount_minor: int
    category: str | None
    purchased_at: datetime


async def _check(
    session: AsyncSession, config: CareConfig, now: datetime, row: dict[str, str]
) -> _Line:
    if row.get("_short"):
        raise LineProblem("fewer values than columns in the header")
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
    try:
        member = await till_member(session, row["member"])
    except TillInputError as problem:
        raise LineProblem(_describe(problem, config)) from None
    return _Line(member.id, receipt, amount, category, when)


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
        "unknown_member": f"no member with the code or phone {value!r}",
        "ambiguous_member": f"{value!r} matches several members; use the member code",
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
    total = count_lines(source)
    report = ImportReport(dry_run=dry_run)
    handle = _open(source)
    try:
        rows = _rows(handle)
        done = False
        while not done:
            async with session_factory() as session:
                done = await _import_batch(session, config, clock, rows, batch_size, report)
                if dry_run:
                    await session.rollback()
                else:
                    await session.commit()
            if progress is not None:
                progress(report.lines, total)
        if not dry_run:
            async with session_factory() as session:
                await audit(
                    session,
                    clock,
                    actor_telegram_id=None,
                    actor_role="cli",
                    action="import.purchases",
                    target=source.name if isinstance(source, Path) else None,
                    details={
                        "lines": report.lines,
                        "imported": report.imported,
                        "duplicates": report.duplicates,
                        "rejected": len(report.rejected),
                    },
                )
                await session.commit()
    finally:
        if isinstance(source, Path):
            handle.close()
    return report


async def _import_batch(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    rows: Iterator[tuple[int, dict[str, str]]],
    batch_size: int,
    report: ImportReport,
) -> bool:
    """Book up to ``batch_size`` lines in ``session``; True when the file is exhausted."""
    now = clock.now()
    for _ in range(batch_size):
        try:
            line_number, row = next(rows)
        except StopIteration:
            return True
        report.lines += 1
        try:
            line = await _check(session, config, now, row)
            result = await _book(session, config, clock, line)
        except LineProblem as problem:
            report.rejected.append(Rejected(line_number, str(problem)))
            continue
        if result:
            report.imported += 1
        else:
            report.duplicates += 1
    return False


async def _book(session: AsyncSession, config: CareConfig, clock: Clock, line: _Line) -> bool:
    """True for a new purchase, False for a receipt recorded before.

    History is not news: for a member whose stage was never decided before, the stage the
    imported purchases give them is their first classification, left unstamped so that no
    stage rule (win-back, last chance) fires for a whole imported customer list at once.
    """
    member = await session.get(Member, line.member_id)
    first_classification = (
        member is not None
        and member.stage_changed_at is None
        and member.segments_refreshed_at is None
    )
    try:
        result: PurchaseResult = await record_purchase(
            session,
            config,
            clock,
            member_id=line.member_id,
            amount_minor=line.amount_minor,
            receipt_id=line.receipt_id,
            category=line.category,
            purchased_at=line.purchased_at,
            source="import",
        )
    except PurchaseError as exc:
        reasons = {
            "member_deleted": "the member deleted their data",
            "unknown_member": "no such member",
        }
        raise LineProblem(reasons.get(exc.reason, "amount out of range")) from None
    if first_classification and member is not None:
        member.stage_changed_at = None
    return not result.duplicate


def render_report(report: ImportReport) -> str:
    """The report an operator reads after an import (plain text, English)."""
    head = "Dry run — nothing was saved. " if report.dry_run else ""
    lines = [
        f"{head}{report.lines} line(s) read: {report.imported} new purchase(s), "
        f"{report.duplicates} already recorded, {len(report.rejected)} rejected."
    ]
    lines += [f"  line {item.line}: {item.reason}" for item in report.rejected]
    return "\n".join(lines)


def progress_bar(stream: TextIO, width: int = 30) -> Progress:
    """A plain-text progress bar redrawn in place on ``stream`` (stderr for the CLI)."""

    def draw(done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = round(width * share)
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done >= total else ""
        stream.write(f"\rimporting purchases [{bar}] {share:4.0%} {done}/{total}{end}")
        stream.flush()

    return draw
