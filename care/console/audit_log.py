"""Reading the audit log: a page of entries, filtered by person or kind, as sentences.

The entries hold ids only (``member:42``, ``staff:9002``, ``offer:3``), never a member's name:
the log outlives a member's erasure. Names are looked up here, when the log is read, from the
rows as they are now: a member who erased their data reads as "erased member", a staff member
as the name Telegram last showed for them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from care.console.goodwill import RECOVERY_ACTIONS, recovery_values
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.core.money import format_money
from care.staff.profiles import staff_labels
from storage.enums import MemberStatus
from storage.models import AuditEntry
from storage.repos.audit import AuditRepo
from storage.repos.loyalty import OfferRepo
from storage.repos.members import MemberRepo
from storage.repos.staff import StaffRepo

PAGE_SIZE = 15
# The kinds of action one can filter by: the first word of the action (``purchase.record``).
KINDS: tuple[str, ...] = (
    "purchase",
    "coupon",
    "staff",
    "member",
    "offer",
    "broadcast",
    "export",
    "ticket",
    "survey",
    "import",
    "stats",
    "goodwill",
)


KIND_RE = re.compile(r"^[a-z][a-z_]{1,15}$")


def is_kind(word: str) -> bool:
    """A kind of action to filter by: one of ``KINDS``, or the first word of any action other
    features record (``conversation`` for ``conversation.take``); names and ids are not kinds."""
    return bool(KIND_RE.match(word))


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: int | None = None
    kind: str | None = None


@dataclass(slots=True)
class AuditPage:
    lines: list[str]
    page: int
    pages: int
    total: int
    filter: AuditFilter = field(default_factory=AuditFilter)


def _ident(target: str | None, kind: str) -> str | None:
    prefix, _, ident = (target or "").partition(":")
    return ident if prefix == kind and ident else None


def _int(value: Any) -> int | None:
    if isinstance(value, int):
        return value
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _member_ids(entry: AuditEntry) -> list[int]:
    found = [_int(_ident(entry.target, "member"))]
    if entry.details:
        found.append(_int(entry.details.get("member_id")))
    return [member_id for member_id in found if member_id is not None]


def _staff_ids(entry: AuditEntry) -> list[int]:
    found = [entry.actor_telegram_id, _int(_ident(entry.target, "staff"))]
    if entry.details:
        found.append(_int(entry.details.get("from")))  # whom a conversation was taken from
    return [telegram_id for telegram_id in found if telegram_id is not None]


def _ids(entries: list[AuditEntry], kind: str) -> list[int]:
    """The ids of ``kind`` (``ticket``, ``response`` …) the entries' targets name."""
    return list(
        {ident for entry in entries if (ident := _int(_ident(entry.target, kind))) is not None}
    )


async def find_actor(session: AsyncSession, config: CareConfig, who: str) -> int | None:
    """A staff member named in a filter: ``@username`` or a Telegram user id."""
    who = who.strip()
    if who.lstrip("-").isdigit():
        return int(who)
    if who.startswith("@") and len(who) > 1:
        row = await StaffRepo(session).by_username(who[1:])
        return row.telegram_id if row is not None else None
    return None


async def audit_page(
    session: AsyncSession,
    config: CareConfig,
    t: Translator,
    *,
    page: int,
    filter: AuditFilter,
    size: int = PAGE_SIZE,
) -> AuditPage:
    """Page ``page`` (0 is the newest) of the log, each entry one sentence in ``t``'s language."""
    repo = AuditRepo(session)
    page = max(page, 0)
    entries, total = await repo.page(
        limit=size, offset=page * size, action_prefix=filter.kind, actor_telegram_id=filter.actor
    )
    pages = max(1, math.ceil(total / size))
    if page >= pages:  # the log shrank under a filter, or a stale button: show the last page
        page = pages - 1
        entries, total = await repo.page(
            limit=size,
            offset=page * size,
            action_prefix=filter.kind,
            actor_telegram_id=filter.actor,
        )
    names = await _Names.load(session, t, entries)
    zone = ZoneInfo(config.default_timezone)
    lines = [
        t(
            "staff_language.audit.line",
            when=entry.created_at.astimezone(zone).strftime("%m-%d %H:%M"),
            sentence=names.sentence(entry),
        )
        for entry in entries
    ]
    return AuditPage(lines, page, pages, total, filter)


@dataclass(slots=True)
class _Names:
    t: Translator
    staff: dict[int, str] = field(default_factory=dict)
    members: dict[int, str] = field(default_factory=dict)
    offers: dict[int, str] = field(default_factory=dict)
    # Whose conversation (ticket id) or low score (response id) an entry is about.
    ticket_members: dict[int, int] = field(default_factory=dict)
    response_members: dict[int, int] = field(default_factory=dict)
    rewards: dict[int, tuple[str, str]] = field(default_factory=dict)

    @classmethod
    async def load(cls, session: AsyncSession, t: Translator, entries: list[AuditEntry]) -> _Names:
        staff_ids = [telegram_id for entry in entries for telegram_id in _staff_ids(entry)]
        repo = AuditRepo(session)
        ticket_members = await repo.members_of_tickets(_ids(entries, "ticket"))
        response_members = await repo.members_of_responses(_ids(entries, "response"))
        member_ids = list(
            {member_id for entry in entries for member_id in _member_ids(entry)}
            | set(ticket_members.values())
            | set(response_members.values())
        )
        offer_ids = list(
            set(_ids(entries, "offer"))
            | {  # a goodwill coupon names its offer in the details
                offer_id
                for entry in entries
                if (offer_id := _int((entry.details or {}).get("offer_id"))) is not None
            }
        )
        members: dict[int, str] = {}
        if member_ids:
            for member in await MemberRepo(session).by_ids(member_ids):
                if member.status == MemberStatus.DELETED:
                    continue  # an erased member has no name to show, not even a code
                members[member.id] = t.plain(
                    "staff_language.label_both",
                    name=member.name or member.member_code,
                    handle=member.member_code,
                )
        offers = await OfferRepo(session).titles(offer_ids) if offer_ids else {}
        return cls(
            t,
            await staff_labels(session, t, staff_ids),
            members,
            offers,
            ticket_members,
            response_members,
            await repo.reward_names(_ids(entries, "reward")),
        )

    def member(self, member_id: int | None) -> str:
        if member_id is None:
            return self.t.plain("staff_language.erased_member")
        return self.members.get(member_id) or self.t.plain("staff_language.erased_member")

    def actor(self, entry: AuditEntry) -> str:
        role = entry.actor_role or ""
        title_key = f"staff_language.role_title.{role}"
        title = self.t.plain(title_key) if self.t.has(title_key) else role
        if entry.actor_telegram_id is None:
            return title or "—"
        name = self.staff.get(entry.actor_telegram_id) or self.t.plain(
            "staff_language.label_unknown", user_id=entry.actor_telegram_id
        )
        return self.t.plain("staff_language.audit.actor", role=title, name=name).strip()

    def role(self, role: Any) -> str:
        key = f"roles.{role}"
        return self.t.plain(key) if isinstance(role, str) and self.t.has(key) else "—"

    def points(self, n: Any) -> str:
        """``5 points`` / ``5 积分``, counted in the reader's language."""
        return self.t.count("conversation.inbox.points", n if isinstance(n, int) else 0)

    def subject(self, entry: AuditEntry, details: dict[str, Any]) -> int | None:
        """The member an entry is about: named in it, or the owner of its conversation or score."""
        return (
            _int(_ident(entry.target, "member"))
            or _int(details.get("member_id"))
            or self.ticket_members.get(_int(_ident(entry.target, "ticket")) or 0)
            or self.response_members.get(_int(_ident(entry.target, "response")) or 0)
        )

    def sentence(self, entry: AuditEntry) -> str:
        """What the entry says happened, as a sentence with names and amounts."""
        described = self.describe(entry)
        if described is not None:
            return described
        # An action without a sentence yet still reads as who, what and on what.
        t = self.t
        action_key = f"roles.audit_action.{entry.action.replace('.', '_')}"
        kind, _, ident = (entry.target or "").partition(":")
        target_key = f"roles.audit_target.{kind}"
        return t(
            "staff_language.audit.fallback",
            actor=self.actor(entry),
            action=t.plain(action_key) if t.has(action_key) else entry.action,
            target=t.plain(target_key, id=ident) if t.has(target_key) else (entry.target or ""),
        )

    def describe(self, entry: AuditEntry) -> str | None:
        """The entry's own sentence, or None for an action that has none yet."""
        t, details = self.t, entry.details or {}
        code = entry.action.replace(".", "_")
        values: dict[str, Any] = {
            "actor": self.actor(entry),
            "id": (entry.target or "").partition(":")[2],
        }
        values["member"] = self.member(self.subject(entry, details))
        if entry.action == "purchase.record":
            amount = details.get("amount_minor")
            currency = details.get("currency")
            if not (isinstance(amount, int) and isinstance(currency, str)):
                # Erasing the member dropped the details: the amount and receipt went with them.
                return t("staff_language.audit.sentence.purchase_record_erased", **values)
            values["amount"] = format_money(amount, currency)
            receipt = details.get("receipt_id")
            values["receipt"] = (
                t.plain("staff_language.audit.receipt", receipt=receipt) if receipt else ""
            )
            values["points"] = details.get("points", 0)
        elif entry.action.startswith("staff."):
            staff_id = _int(_ident(entry.target, "staff"))
            values["staff"] = (
                self.staff.get(staff_id)
                or t.plain("staff_language.label_unknown", user_id=staff_id)
                if staff_id
                else values["id"]
            )
            values["role"] = self.role(details.get("role"))
            values["previous"] = self.role(details.get("previous_role"))
        elif entry.action == "coupon.redeem":
            values["code"] = values["id"]
        elif entry.action.startswith("offer."):
            offer_id = _int(values["id"])
            values["offer"] = self.offers.get(offer_id, f"#{values['id']}") if offer_id else "?"
            values["n"] = details.get("members", 0)
        elif entry.action.startswith("broadcast."):
            values["n"] = details.get("recipients", 0)
        elif entry.action == "member.search":
            values["n"] = details.get("matches", 0)
        elif entry.action.startswith("import."):
            values["n"] = details.get("imported", 0)
            values["duplicates"] = details.get("duplicates", 0)
            values["rejected"] = details.get("rejected", 0)
        elif entry.action in RECOVERY_ACTIONS:
            if not details:  # erasing the member dropped what was given and why
                code += "_erased"
            values.update(recovery_values(t, details, self.offers))
        elif entry.action.startswith("export."):
            code = "export"
            values["table"] = entry.action.partition(".")[2]
            values["rows"] = details.get("rows", 0)
            values["format"] = str(details.get("format", "")).upper()
        elif entry.action.startswith(("ticket.", "saved_reply.")):
            code = self.conversation_code(entry, details, code, values)
        elif entry.action in ("purchase.void", "purchase.refund"):
            amount, currency = details.get("refunded_minor"), details.get("currency")
            if not (isinstance(amount, int) and isinstance(currency, str)):
                code += "_erased"  # erasing the member dropped the amounts
            else:
                values["amount"] = format_money(amount, currency)
                receipt = details.get("receipt_id")
                values["receipt"] = (
                    t.plain("staff_language.audit.receipt", receipt=receipt) if receipt else ""
                )
                values["points"] = self.points(details.get("points_taken"))
        elif entry.action == "points.adjust":
            delta = details.get("delta")
            if not isinstance(delta, int):
                code += "_erased"
            else:
                code += "_add" if delta > 0 else "_remove"
                values["points"] = self.points(abs(delta))
                values["reason"] = details.get("reason") or "—"
        elif entry.action.startswith("reward."):
            reward_id = _int(values["id"]) or 0
            names = self.rewards.get(reward_id)
            values["reward"] = (
                (names[0] if t.locale == "zh" else names[1]) if names else f"#{values['id']}"
            )
            values["points"] = self.points(details.get("points_cost"))
        key = f"staff_language.audit.sentence.{code}"
        if not t.has(key):
            return None
        sentence = t(key, **values)
        if details.get("via") == "forum":
            sentence += t("staff_language.audit.in_forum")
        return sentence

    def conversation_code(
        self, entry: AuditEntry, details: dict[str, Any], code: str, values: dict[str, Any]
    ) -> str:
        """The sentence of a conversation action: who it was taken from, the saved reply or the
        kind of attachment an answer carried, a saved reply's title."""
        t = self.t
        values["title"] = details.get("title") or details.get("saved_reply") or ""
        if entry.action == "ticket.take" and _int(details.get("from")) is not None:
            previous = _int(details.get("from")) or 0
            values["previous"] = self.staff.get(previous) or t.plain(
                "staff_language.label_unknown", user_id=previous
            )
            return "ticket_take_from"
        if entry.action == "ticket.reply" and details.get("saved_reply"):
            return "ticket_reply_saved"
        media = details.get("media")
        if entry.action == "ticket.reply" and isinstance(media, str):
            media_key = f"staff_language.audit.media.{media}"
            values["media"] = t.plain(
                media_key if t.has(media_key) else "staff_language.audit.media.document"
            )
            return "ticket_reply_media"
        return code


def sentence_for(t: Translator, entry: AuditEntry) -> str | None:
    """The sentence an entry reads as with no names loaded (for checks that every action the
    code records has one); None when the action falls back to the generic line."""
    return _Names(t).describe(entry)


def kind_label(t: Translator, kind: str) -> str:
    key = f"staff_language.audit.kind.{kind}"
    return t.plain(key) if t.has(key) else kind
