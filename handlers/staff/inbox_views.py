"""What /inbox shows: the list of conversations (each with the member's one-line context), one
thread with its buttons, and the low scores to follow up — text and keyboards only, no I/O."""

from __future__ import annotations

from datetime import datetime

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from care.conversations.inbox import FollowUpPage, InboxPage, MemberContext, Thread
from care.conversations.surveys import followup_data
from care.conversations.tickets import MEDIA_ICONS
from care.core.config import CareConfig
from care.core.i18n import Translator
from care.loyalty.tiers import tier_name
from handlers.staff.formatting import excerpt, member_name, score_text, short_time
from handlers.staff.goodwill_views import followup_line, goodwill_button, note_line
from handlers.staff.keyboards import CDFollowedUp, CDFollowUps, CDInboxPage, CDTicket, markup
from storage.enums import MediaKind, MemberStatus, MessageAuthor, TicketStatus
from storage.models import Member, Ticket, TicketMessage

THREAD_MESSAGES = 8
THREAD_TEXT_CHARS = 400


def button(text: str, data: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data)


def _age(t: Translator, since: datetime, now: datetime) -> str:
    minutes = max(0, int((now - since).total_seconds() // 60))
    if minutes < 60:
        return t.plain("inbox.age_minutes", n=minutes)
    if minutes < 24 * 60:
        return t.plain("inbox.age_hours", n=minutes // 60)
    return t.plain("inbox.age_days", n=minutes // (24 * 60))


def _kind(t: Translator, kind: str) -> str:
    key = f"m360.ticket_kind.{kind}"
    return t.plain(key) if t.has(key) else kind


def context_line(t: Translator, context: MemberContext | None) -> str:
    """The member in one line: tier, points, open complaints, last score — or erased."""
    if context is None:
        return t.plain("conversation.inbox.erased_short")
    parts = [
        tier_name(context.tier, t.locale) if context.tier is not None else "—",
        t.count("conversation.inbox.points", context.points),
    ]
    if context.open_complaints:
        parts.append(t.count("conversation.inbox.complaints", context.open_complaints))
    if context.last_score is not None:
        kind, score = context.last_score
        scale = 10 if kind == "nps" else 5
        kind_key = f"m360.survey_kind.{kind}"
        label = t.plain(kind_key) if t.has(kind_key) else kind
        parts.append(
            t.plain("conversation.inbox.last_score", kind=label, score=score, scale=scale)
        )
    return " · ".join(parts)


def _status_icon(ticket: Ticket, member: Member | None) -> str:
    if member is not None and member.status == MemberStatus.DELETED:
        return "🚫"  # on record, but nobody can be answered there
    return "⏳" if ticket.status == TicketStatus.OPEN else "💬"


def render_inbox(
    page: InboxPage,
    followups: int,
    t: Translator,
    now: datetime,
    me: int | None = None,
    assignees: dict[int, str] | None = None,
) -> tuple[str, InlineKeyboardMarkup]:
    """The inbox page; ``assignees`` shows whom a conversation is assigned to ("Li Lei
    (@lilei)", from ``care.staff.profiles.staff_labels``)."""
    keyboard: list[list[InlineKeyboardButton]] = []
    if not page.total:
        text = t("inbox.empty")
    else:
        lines = [
            t(
                "conversation.inbox.title",
                waiting=page.waiting,
                count=page.total,
                page=page.page + 1,
                pages=page.pages,
            )
        ]
        for item in page.items:
            ticket, member = item.ticket, item.member
            # Waiting: how long the shopper has waited; otherwise how old the conversation is.
            since = ticket.waiting_since or ticket.created_at
            name = excerpt(member_name(t, member), 24)
            if ticket.assigned_to is None:
                owner = ""
            elif ticket.assigned_to == me:
                owner = t.plain("conversation.inbox.mine")
            else:
                who = (assignees or {}).get(ticket.assigned_to) or t.plain(
                    "staff_language.label_unknown", user_id=ticket.assigned_to
                )
                owner = t.plain("conversation.inbox.taken_by", staff=who)
            lines.append(
                t(
                    "conversation.inbox.item",
                    icon=_status_icon(ticket, member),
                    number=ticket.id,
                    kind=_kind(t, ticket.kind),
                    name=name,
                    age=_age(t, since, now),
                    owner=owner,
                    context=context_line(t, item.context),
                )
            )
            label = t.plain(
                "inbox.line",
                number=ticket.id,
                kind=_kind(t, ticket.kind),
                name=name,
                age=_age(t, since, now),
                answered=(
                    t.plain("inbox.answered_mark")
                    if ticket.status == TicketStatus.ANSWERED
                    else ""
                ),
            )
            data = CDTicket(action="open", ticket_id=ticket.id, page=page.page).pack()
            keyboard.append([button(label, data)])
        text = "\n".join(lines)
        nav = []
        if page.page > 0:
            nav.append(button(t.plain("inbox.prev"), CDInboxPage(page=page.page - 1).pack()))
        if page.page + 1 < page.pages:
            nav.append(button(t.plain("inbox.next"), CDInboxPage(page=page.page + 1).pack()))
        keyboard.append(nav)
    if followups:
        keyboard.append(
            [button(t.plain("inbox.followups", count=followups), CDFollowUps(page=0).pack())]
        )
    keyboard.append([button(t.plain("inbox.refresh"), CDInboxPage(page=page.page).pack())])
    return text, markup(keyboard)


def _media_label(t: Translator, message: TicketMessage) -> str:
    if message.media_kind == MediaKind.PHOTO:
        return t.plain("inbox.thread_photo")
    key = f"conversation.media.{message.media_kind}"
    return t.plain(key) if t.has(key) else MEDIA_ICONS.get(message.media_kind or "", "")


def render_thread(
    thread: Thread,
    t: Translator,
    config: CareConfig,
    page: int,
    me: int | None = None,
    *,
    goodwill: bool = False,
) -> tuple[str, InlineKeyboardMarkup]:
    """The thread and its buttons; ``goodwill``: the reader may give goodwill (an admin)."""
    ticket, member = thread.ticket, thread.member
    lines = [
        t(
            "inbox.thread_title",
            number=ticket.id,
            kind=_kind(t, ticket.kind),
            status=t.plain(f"m360.ticket_status.{ticket.status}"),
            name=member_name(t, member),
            code=member.member_code if member else "?",
            when=short_time(ticket.created_at, config),
        ),
        context_line(t, thread.context),
    ]
    if thread.followup is not None:
        lines.insert(1, followup_line(t, thread.followup, config))
    if ticket.assigned_to is not None:
        who = (
            t.plain("conversation.inbox.you")
            if ticket.assigned_to == me
            else thread.staff_names.get(ticket.assigned_to)
            or t.plain("staff_language.label_unknown", user_id=ticket.assigned_to)
        )
        lines.append(t("conversation.inbox.assigned", staff=who))
    if not thread.reachable:
        lines.append(t("conversation.inbox.erased_notice"))
    messages = ticket.messages[-THREAD_MESSAGES:]
    hidden = len(ticket.messages) - len(messages)
    if hidden:
        lines.append(t("inbox.thread_more", messages=t.count("inbox.earlier", hidden)))
    for message in messages:
        body = excerpt(message.text, THREAD_TEXT_CHARS) if message.text else ""
        if message.media_kind:
            body = f"{_media_label(t, message)} {body}".strip()
        when = short_time(message.created_at, config)
        if message.author == MessageAuthor.NOTE:
            staff_id = message.staff_telegram_id
            staff = thread.staff_names.get(staff_id, "?") if staff_id is not None else "?"
            lines.append(note_line(t, message, when, staff))
        elif message.author == MessageAuthor.STAFF:
            staff_id = message.staff_telegram_id
            staff = thread.staff_names.get(staff_id, "?") if staff_id is not None else "?"
            lines.append(t("inbox.thread_staff", when=when, staff=staff, text=body))
        else:
            lines.append(t("inbox.thread_member", when=when, text=body))

    def act(key: str, action: str, **values: object) -> InlineKeyboardButton:
        data = CDTicket(action=action, ticket_id=ticket.id, page=page).pack()
        return button(t.plain(key, **values), data)

    keyboard: list[list[InlineKeyboardButton]] = []
    if ticket.status != TicketStatus.CLOSED:
        if thread.reachable:
            keyboard.append(
                [act("inbox.reply", "reply"), act("conversation.inbox.saved", "saved")]
            )
        row = [act("inbox.close", "close")]
        if ticket.assigned_to != me:
            row.insert(0, act("conversation.inbox.take", "take"))
        keyboard.append(row)
    elif thread.reachable:
        keyboard.append([act("conversation.inbox.reopen", "reopen")])
    if goodwill and thread.reachable and member is not None:
        keyboard.append([goodwill_button(t, member.id, ticket.id)])
    attachments = [m for m in ticket.messages if m.media_kind and m.file_id]
    if attachments:
        if all(m.media_kind == MediaKind.PHOTO for m in attachments):
            keyboard.append([act("inbox.photos", "photos", count=len(attachments))])
        else:
            keyboard.append(
                [act("conversation.inbox.attachments", "photos", count=len(attachments))]
            )
    keyboard.append([button(t.plain("inbox.back"), CDInboxPage(page=page).pack())])
    return "\n".join(lines), markup(keyboard)


def render_followups(
    page: FollowUpPage, t: Translator, config: CareConfig
) -> tuple[str, InlineKeyboardMarkup]:
    keyboard: list[list[InlineKeyboardButton]] = []
    if not page.total:
        lines = [t("inbox.followups_empty")]
    else:
        lines = [t("inbox.followups_title", count=page.total)]
        for response, member in page.responses:
            comment = f" · “{excerpt(response.comment, 80)}”" if response.comment else ""
            kind_key = f"m360.survey_kind.{response.kind}"
            lines.append(
                t(
                    "inbox.followup_line",
                    when=short_time(response.created_at, config),
                    kind=t.plain(kind_key) if t.has(kind_key) else response.kind,
                    score=score_text(t, response.score, response.kind),
                    name=member_name(t, member),
                    code=member.member_code,
                    comment=comment,
                )
            )
            short = excerpt(member_name(t, member), 24)
            label = t.plain("inbox.followup_done", name=short)
            keyboard.append(
                [
                    button(
                        t.plain("goodwill.followup.write", name=short), followup_data(response.id)
                    ),
                    button(label, CDFollowedUp(response_id=response.id).pack()),
                ]
            )
        nav = []
        if page.page > 0:
            nav.append(button(t.plain("inbox.prev"), CDFollowUps(page=page.page - 1).pack()))
        if page.page + 1 < page.pages:
            nav.append(button(t.plain("inbox.next"), CDFollowUps(page=page.page + 1).pack()))
        keyboard.append(nav)
    keyboard.append([button(t.plain("inbox.back"), CDInboxPage(page=0).pack())])
    return "\n".join(lines), markup(keyboard)
