"""Exports for staff: members, purchases, feedback and surveys as CSV or Excel files.

Rows are read in keyset-paginated batches of plain tuples (no ORM objects pile up in the
session) and written straight into the target file: memory stays flat however big the table.
CSV carries a UTF-8 BOM so Excel opens Chinese text correctly; times are in the shop's
timezone (named in the header); money is a decimal number in the shop's currency.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO, Literal
from zoneinfo import ZoneInfo

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from care.core.audit import audit
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.money import minor_digits
from storage.enums import MemberStatus
from storage.models import (
    Member,
    MemberValue,
    Purchase,
    SurveyResponse,
    Ticket,
    TicketMessage,
)

Table = Literal["members", "purchases", "feedback", "surveys"]
Format = Literal["csv", "xlsx"]
TABLES: tuple[Table, ...] = ("members", "purchases", "feedback", "surveys")
FORMATS: tuple[Format, ...] = ("csv", "xlsx")
BATCH_SIZE = 1000
# A cell starting with one of these is a formula to Excel: free text from shoppers must not be.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    kind: Literal["value", "time", "money", "text"] = "value"


@dataclass(frozen=True, slots=True)
class ExportFile:
    path: Path
    filename: str
    rows: int


@dataclass(frozen=True, slots=True)
class _Spec:
    columns: tuple[Column, ...]
    # Rows of any shape: each export selects its own dozen columns.
    query: Callable[[], Select[*tuple[Any, ...]]]
    key: Any  # the ordered, unique column the batches page on


def _members() -> Select[*tuple[Any, ...]]:
    return select(
        Member.id, Member.member_code, Member.status, Member.name, Member.phone,
        Member.username, Member.birthday, Member.locale, Member.timezone, Member.source,
        Member.registered_at, Member.profile_consent_at, Member.marketing_opt_in,
        Member.marketing_changed_at, Member.surveys_opt_in, Member.surveys_changed_at,
        Member.blocked_at, Member.tier_code, Member.points_balance, Member.purchase_count,
        Member.total_spent_minor, Member.spend_12m_minor, Member.first_purchase_at,
        Member.last_purchase_at, Member.rfm_r, Member.rfm_f, Member.rfm_m, Member.value_tier,
        Member.lifecycle_stage, Member.churn_risk, MemberValue.p_alive,
        MemberValue.purchases_90d, MemberValue.spend_per_purchase_minor,
        MemberValue.value_12m_minor, MemberValue.at_risk, MemberValue.at_risk_since,
    ).outerjoin(MemberValue, MemberValue.member_id == Member.id).where(
        Member.status != MemberStatus.DELETED
    )  # fmt: skip


def _purchases() -> Select[*tuple[Any, ...]]:
    return select(
        Purchase.id, Purchase.receipt_id, Member.member_code, Purchase.amount_minor,
        Purchase.currency, Purchase.category, Purchase.purchased_at, Purchase.points_earned,
        Purchase.source, Purchase.recorded_by,
    ).outerjoin(Member, Member.id == Purchase.member_id)  # fmt: skip


def _feedback() -> Select[*tuple[Any, ...]]:
    return (
        select(
            TicketMessage.id,
            Ticket.id,
            Ticket.kind,
            Ticket.status,
            Member.member_code,
            Member.name,
            TicketMessage.author,
            TicketMessage.staff_telegram_id,
            TicketMessage.text,
            TicketMessage.file_id.is_not(None),
            TicketMessage.created_at,
            Ticket.handling_rating,
            Ticket.closed_at,
        )
        .join(Ticket, Ticket.id == TicketMessage.ticket_id)
        .join(Member, Member.id == Ticket.member_id)
    )


def _surveys() -> Select[*tuple[Any, ...]]:
    return select(
        SurveyResponse.id, Member.member_code, Member.name, SurveyResponse.kind,
        SurveyResponse.score, SurveyResponse.expectation, SurveyResponse.comment,
        SurveyResponse.created_at, SurveyResponse.needs_followup, SurveyResponse.followed_up_at,
        SurveyResponse.followed_up_by,
    ).join(Member, Member.id == SurveyResponse.member_id)  # fmt: skip


def _cols(spec: str) -> tuple[Column, ...]:
    """``"id name:text"`` → (Column("id"), Column("name", "text"))."""
    columns = []
    for name in spec.split():
        header, _, kind = name.partition(":")
        columns.append(Column(header, kind or "value"))  # type: ignore[arg-type]
    return tuple(columns)


SPECS: dict[Table, _Spec] = {
    "members": _Spec(
        _cols(
            """
            id member_code status name:text phone username:text birthday locale timezone
            source:text registered_at:time profile_consent_at:time marketing_opt_in
            marketing_changed_at:time surveys_opt_in surveys_changed_at:time blocked_at:time
            tier points purchases total_spent:money spend_12m:money first_purchase_at:time
            last_purchase_at:time rfm_r rfm_f rfm_m value_tier lifecycle_stage churn_risk
            p_alive expected_purchases_90d expected_spend_per_purchase:money
            predicted_value_12m:money at_risk_by_model at_risk_since:time
            """
        ),
        _members,
        Member.id,
    ),
    "purchases": _Spec(
        _cols(
            """
            id receipt_id:text member_code amount:money currency category:text
            purchased_at:time points_earned source recorded_by
            """
        ),
        _purchases,
        Purchase.id,
    ),
    "feedback": _Spec(
        _cols(
            """
            message_id ticket_id kind ticket_status member_code member_name:text author
            staff_telegram_id text:text has_photo written_at:time handling_rating
            closed_at:time
            """
        ),
        _feedback,
        TicketMessage.id,
    ),
    "surveys": _Spec(
        _cols(
            """
            id member_code member_name:text kind score expectation comment:text
            answered_at:time needs_followup followed_up_at:time followed_up_by
            """
        ),
        _surveys,
        SurveyResponse.id,
    ),
}


async def iter_rows(
    session: AsyncSession, table: Table, batch_size: int = BATCH_SIZE
) -> AsyncIterator[Sequence[Any]]:
    """Every row of an export, in id order, fetched ``batch_size`` at a time (keyset paging)."""
    spec = SPECS[table]
    last: Any = None
    while True:
        query = spec.query().order_by(spec.key).limit(batch_size)
        if last is not None:
            query = query.where(spec.key > last)
        rows = (await session.execute(query)).all()
        for row in rows:
            yield tuple(row)
        if len(rows) < batch_size:
            return
        last = rows[-1][0]


class _Cells:
    """Turns stored values into what a spreadsheet reader expects."""

    def __init__(self, config: CareConfig) -> None:
        self.zone = ZoneInfo(config.default_timezone)
        self.scale = Decimal(1).scaleb(-minor_digits(config.currency))

    def value(self, column: Column, value: Any) -> Any:
        if value is None:
            return None
        if column.kind == "time" and isinstance(value, datetime):
            return value.astimezone(self.zone).replace(tzinfo=None, microsecond=0)
        if column.kind == "money":
            return (Decimal(int(value)) * self.scale).quantize(self.scale)
        return value

    def headers(self, columns: Sequence[Column], zone_name: str) -> list[str]:
        return [f"{c.header} ({zone_name})" if c.kind == "time" else c.header for c in columns]


def _csv_text(column: Column, value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, date):
        return value.isoformat()
    if column.kind == "text" and isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


async def write_export(
    session: AsyncSession,
    config: CareConfig,
    table: Table,
    fmt: Format,
    target: BinaryIO,
    *,
    batch_size: int = BATCH_SIZE,
) -> int:
    """Write the ``table`` export as ``fmt`` into the binary file ``target``; returns the rows."""
    spec = SPECS[table]
    cells = _Cells(config)
    headers = cells.headers(spec.columns, config.default_timezone)
    count = 0
    if fmt == "csv":
        text = io.TextIOWrapper(target, encoding="utf-8-sig", newline="")
        writer = csv.writer(text)
        writer.writerow(headers)
        async for row in iter_rows(session, table, batch_size):
            writer.writerow(
                [_csv_text(c, cells.value(c, v)) for c, v in zip(spec.columns, row, strict=True)]
            )
            count += 1
        text.flush()
        text.detach()  # the caller owns ``target``
        return count
    # openpyxl is imported on the first export, not when the bot starts.
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(table)
    sheet.append(headers)
    async for row in iter_rows(session, table, batch_size):
        values = []
        for column, raw in zip(spec.columns, row, strict=True):
            value = cells.value(column, raw)
            if isinstance(value, str) and value.startswith("="):
                cell = WriteOnlyCell(sheet, value=value)
                cell.data_type = "s"  # text, never a formula
                value = cell
            values.append(value)
        sheet.append(values)
        count += 1
    workbook.save(target)
    return count


def export_filename(table: Table, fmt: Format, config: CareConfig, now: datetime) -> str:
    stamp = now.astimezone(ZoneInfo(config.default_timezone)).strftime("%Y%m%d-%H%M")
    return f"carebot-{table}-{stamp}.{fmt}"


async def export_to_file(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    table: Table,
    fmt: Format,
    directory: Path,
    actor_telegram_id: int | None,
    actor_role: str | None,
) -> ExportFile:
    """Write an export into ``directory`` and audit who took it (bulk personal data)."""
    filename = export_filename(table, fmt, config, clock.now())
    path = directory / filename
    with path.open("wb") as handle:
        rows = await write_export(session, config, table, fmt, handle)
    await audit(
        session,
        clock,
        actor_telegram_id=actor_telegram_id,
        actor_role=actor_role,
        action=f"export.{table}",
        details={"format": fmt, "rows": rows},
    )
    return ExportFile(path=path, filename=filename, rows=rows)
