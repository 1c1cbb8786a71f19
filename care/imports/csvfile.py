"""What every CSV import shares: reading the file, the batch loop, the report, the progress bar.

A file is CSV in UTF-8 (a byte-order mark is fine) or GBK, comma- or semicolon-separated, with
a header line (names case-insensitive, order free, extra columns ignored). The whole file is
read once before anything is saved, so an unreadable file or a missing column changes nothing.
Lines are then handed to the import in batches, each batch in one transaction (memory stays
flat, and an interrupted import resumes cleanly when run again); a line that cannot be used is
reported with its line number and reason and never stops the rest.
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO, TypeVar

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.audit import audit
from care.core.clock import Clock
from care.core.formatting import plural_form

Progress = Callable[[int, int], None]
Row = dict[str, str]
Line = TypeVar("Line")
# A line's own values, checked (``now`` is the batch's); raises ``LineProblem``.
LineChecker = Callable[[int, Row, datetime], Line]
# Books one batch's checked lines in the session's transaction and fills in the report.
BatchBooker = Callable[[AsyncSession, datetime, list[Line], "ImportReport"], Awaitable[None]]


class ImportFileError(Exception):
    """The file cannot be imported at all (unreadable, not CSV, columns missing)."""


class LineProblem(Exception):
    """One line is refused; the message is the reason shown in the report."""


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

    def reject(self, line: int, problem: LineProblem | str) -> None:
        self.rejected.append(Rejected(line, str(problem)))


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


def open_source(source: Path | TextIO) -> TextIO:
    if isinstance(source, Path):
        try:
            return source.open(encoding=file_encoding(source), newline="")
        except OSError as exc:
            raise ImportFileError(f"cannot open {source}: {exc.strerror}") from None
    return source


def read_rows(handle: TextIO, required: Sequence[str]) -> Iterator[tuple[int, Row]]:
    """(line number, row) for every non-blank data line; the header is checked first.

    A line with fewer values than the header has carries ``_short`` (see ``check_short``).
    """
    try:
        first = handle.readline()
        if not first.strip():
            raise ImportFileError("the file is empty (a header line is needed)")
        delimiter = ";" if first.count(";") > first.count(",") else ","
        reader = csv.reader(itertools.chain([first], handle), delimiter=delimiter)
        names = [name.strip().lower() for name in next(reader)]
        missing = [column for column in required if column not in names]
        if missing:
            label = "column" if len(missing) == 1 else "columns"
            raise ImportFileError(
                f"missing {label}: {', '.join(missing)} (the header line has: {', '.join(names)})"
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


def check_short(row: Row) -> None:
    if row.get("_short"):
        raise LineProblem("fewer values than columns in the header")


def count_lines(source: Path | TextIO, required: Sequence[str]) -> int:
    """How many data lines a file has (for the progress bar); checks the whole file."""
    handle = open_source(source)
    try:
        return sum(1 for _ in read_rows(handle, required))
    finally:
        if isinstance(source, Path):
            handle.close()
        elif handle.seekable():
            handle.seek(0)


async def run_import(
    session_factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    source: Path | TextIO,
    *,
    required: Sequence[str],
    check: LineChecker[Line],
    book: BatchBooker[Line],
    action: str,
    batch_size: int,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Read ``source``, ``check`` each line (a refused one goes into the report with its line
    number) and ``book`` each batch's good lines, one transaction per batch.

    With ``dry_run`` each batch is rolled back: the report shows what a real import would do,
    and nothing changes. A real import is audited as ``action``. Raises ``ImportFileError``
    when the file as a whole cannot be read (before anything is saved).
    """
    total = count_lines(source, required)
    report = ImportReport(dry_run=dry_run)
    handle = open_source(source)
    try:
        rows = read_rows(handle, required)
        while batch := list(itertools.islice(rows, batch_size)):
            report.lines += len(batch)
            now = clock.now()
            lines: list[Line] = []
            for number, row in batch:
                try:
                    lines.append(check(number, row, now))
                except LineProblem as problem:
                    report.reject(number, problem)
            async with session_factory() as session:
                if lines:
                    await book(session, now, lines, report)
                if dry_run:
                    await session.rollback()
                else:
                    await session.commit()
            if progress is not None:
                progress(report.lines, total)
        if progress is not None and total == 0:
            progress(0, 0)
        if not dry_run:
            details: dict[str, Any] = {
                "lines": report.lines,
                "imported": report.imported,
                "duplicates": report.duplicates,
                "rejected": len(report.rejected),
            }
            async with session_factory() as session:
                await audit(
                    session,
                    clock,
                    actor_telegram_id=None,
                    actor_role="cli",
                    action=action,
                    target=source.name if isinstance(source, Path) else None,
                    details=details,
                )
                await session.commit()
    finally:
        if isinstance(source, Path):
            handle.close()
    report.rejected.sort(key=lambda item: item.line)
    return report


def render_report(report: ImportReport, what: str = "purchase") -> str:
    """The report an operator reads after an import (plain text, English)."""
    head = "Dry run — nothing was saved. " if report.dry_run else ""
    lines = [
        f"{head}{counted(report.lines, 'line')} read: {report.imported} new "
        f"{noun(report.imported, what)}, {report.duplicates} already recorded, "
        f"{len(report.rejected)} rejected."
    ]
    lines += [f"  line {item.line}: {item.reason}" for item in report.rejected]
    return "\n".join(lines)


def noun(count: int, singular: str, plural: str | None = None) -> str:
    """The English noun for ``count`` of them (CLDR's plural rule: 1 line, 0 lines, 2 lines)."""
    return singular if plural_form(count, "en") == "one" else (plural or f"{singular}s")


def counted(count: int, singular: str, plural: str | None = None) -> str:
    """``1 line`` / ``6,919 lines``."""
    return f"{count:,} {noun(count, singular, plural)}"


def progress_bar(stream: TextIO, width: int = 30, what: str = "purchases") -> Progress:
    """A plain-text progress bar redrawn in place on ``stream`` (stderr for the CLI)."""

    def draw(done: int, total: int) -> None:
        share = done / total if total else 1.0
        filled = round(width * share)
        bar = "#" * filled + "-" * (width - filled)
        end = "\n" if done >= total else ""
        stream.write(f"\rimporting {what} [{bar}] {share:4.0%} {done}/{total}{end}")
        stream.flush()

    return draw
