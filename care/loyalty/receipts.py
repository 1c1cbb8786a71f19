"""The shopper's receipt: after each purchase, what they paid, earned and now have.

A receipt is a service message (no marketing consent needed: it is about *their* purchase, and
it carries no offer) queued through the outbox under the key ``receipt:<purchase id>``, so a
replayed purchase never sends a second one.

Quiet hours do not hold a receipt back: it is the answer to something the shopper just did at
the till, and a receipt that arrives next morning is useless. It is sent only for a purchase
made within ``RECEIPT_FRESH`` of now and not brought in by the CSV importer: an imported
history (last year's receipts) must not wake a member up with a pile of receipts; a future POS
sync that delivers fresh purchases gets receipts like the till does.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, Translator, translator
from care.core.money import format_money
from care.loyalty.tiers import tier_name, tier_progress
from care.loyalty.wording import points_text
from care.messaging.outbox import enqueue
from storage.enums import MemberStatus, MessageKind
from storage.models import Member

RECEIPT_FRESH = timedelta(hours=24)
NO_RECEIPT_SOURCES = frozenset({"import"})


def sends_receipt(source: str, purchased_at: datetime, now: datetime) -> bool:
    """A receipt goes out for a fresh purchase from the till (or a live POS), never for an
    imported history."""
    return source not in NO_RECEIPT_SOURCES and purchased_at >= now - RECEIPT_FRESH


def member_translator(member: Member, config: CareConfig) -> Translator:
    return translator(member.locale if member.locale in LOCALES else config.default_locale)


async def send_receipt(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    member: Member,
    purchase_id: int,
    amount_minor: int,
    points_earned: int,
    balance: int,
) -> bool:
    """Queue the receipt message for a purchase just booked; False when the member cannot get
    one (no chat, blocked the bot, deleted)."""
    if member.chat_id is None or member.blocked_at is not None:
        return False
    if member.status != MemberStatus.ACTIVE:
        return False
    t = member_translator(member, config)
    progress = await tier_progress(session, member)
    lines = [
        t("rewards.receipt.title", shop=config.shop_name),
        t(
            "rewards.receipt.amount",
            amount=format_money(amount_minor, config.currency),
            earned=points_text(t, points_earned),
        ),
        t("rewards.receipt.balance", balance=points_text(t, balance)),
    ]
    current = tier_name(progress.current, t.locale)
    if progress.next is None:
        lines.append(t("rewards.receipt.top_tier", tier=current))
    else:
        lines.append(
            t(
                "rewards.receipt.progress",
                tier=current,
                amount=format_money(progress.remaining_minor, config.currency),
                next=tier_name(progress.next, t.locale),
            )
        )
    lines.append(t("rewards.receipt.hint"))
    queued = await enqueue(
        session,
        clock,
        config,
        key=f"receipt:{purchase_id}",
        chat_id=member.chat_id,
        text="\n".join(lines),
        kind=MessageKind.SERVICE,
        member=member,
        rule="receipt",
        respect_quiet_hours=False,
    )
    return queued is not None
