"""/member: find a member by code, phone, @username or name and show the 360° view."""

from __future__ import annotations

from datetime import datetime

from aiogram import F, Router
from aiogram.enums import ChatType
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, Message

from care.console.goodwill import may_grant
from care.console.member_view import MemberView, open_member_view, search_members
from care.core.config import CareConfig
from care.core.formatting import (
    category_label,
    category_list,
    format_count,
    format_day,
    language_name,
    rule_label,
    zone_label,
)
from care.core.i18n import Translator
from care.core.money import format_money
from care.loyalty.tiers import tier_name
from care.members.lookup import QUERY_MAX
from care.value.signal import GAP_RULE
from handlers.staff.access import MinRole
from handlers.staff.context import StaffContext
from handlers.staff.formatting import excerpt, local_date, local_time, score_text, short_time
from handlers.staff.goodwill_views import goodwill_button
from handlers.staff.keyboards import CDMemberPick, markup, member_picker
from storage.enums import (
    RETIRED_STAGES,
    MemberStatus,
    MessageAuthor,
    OutboxStatus,
    StaffRole,
)

PICK_LIMIT = 8


async def cmd_member(message: Message, command: CommandObject, staff: StaffContext) -> None:
    t = staff.t
    query = " ".join((command.args or "").split())
    if not query:
        await message.answer(t("m360.usage"))
        return
    shown_query = excerpt(query, QUERY_MAX)
    found = await search_members(
        staff.session,
        staff.clock,
        query,
        limit=PICK_LIMIT + 1,
        actor_telegram_id=staff.user_id,
        actor_role=staff.role,
    )
    if not found:
        await message.answer(t("m360.not_found", query=shown_query))
        return
    if len(found) == 1:
        await _show(message, staff, found[0].id)
        return
    shown = found[:PICK_LIMIT]
    key = "m360.pick_more" if len(found) > PICK_LIMIT else "m360.pick"
    choices = [
        (
            member.id,
            t.plain(
                "m360.pick_button", name=excerpt(member.name or "?", 40), code=member.member_code
            ),
        )
        for member in shown
    ]
    count = len(found) if len(found) <= PICK_LIMIT else f"{PICK_LIMIT}+"
    await message.answer(
        t(key, count=count, query=shown_query, shown=len(shown)),
        reply_markup=member_picker(choices),
    )


async def on_member_picked(
    callback: CallbackQuery, callback_data: CDMemberPick, staff: StaffContext
) -> None:
    await callback.answer()
    if isinstance(callback.message, Message):
        await _show(callback.message, staff, callback_data.member_id)


async def _show(message: Message, staff: StaffContext, member_id: int) -> None:
    view = await open_member_view(
        staff.session,
        staff.clock,
        member_id=member_id,
        actor_telegram_id=staff.user_id,
        actor_role=staff.role,
    )
    if view is None:
        await message.answer(staff.t("m360.gone"))
        return
    keyboard = None
    if may_grant(staff.role):
        keyboard = markup([[goodwill_button(staff.t, view.member.id)]])
    text = render_member_view(view, staff.t, staff.config, staff.clock.now())
    await message.answer(text, reply_markup=keyboard)


def _consent(t: Translator, config: CareConfig, granted: bool, when: datetime | None) -> str:
    if when is not None:
        return t(
            "m360.consent_yes" if granted else "m360.consent_no", when=local_time(when, config)
        )
    return t("m360.consent_yes_undated" if granted else "m360.consent_no_undated")


def _label(t: Translator, prefix: str, value: str | None) -> str:
    if value is None:
        return t.plain("m360.none")
    key = f"{prefix}.{value}"
    return t.plain(key) if t.has(key) else value


def render_member_view(view: MemberView, t: Translator, config: CareConfig, now: datetime) -> str:
    """The 360° view as one chat message (short lists keep it well under 4096 characters)."""
    member = view.member
    none = t.plain("m360.none")
    currency = config.currency
    title = t("m360.title", name=member.name or none, code=member.member_code)
    if member.status == MemberStatus.REGISTERING:
        title += t("m360.status_registering")
    lines = [
        title,
        t(
            "m360.contact",
            phone=member.phone or none,
            username=f"@{member.username}" if member.username else none,
            language=language_name(member.locale),
            timezone=zone_label(member.timezone, t.locale, now),
        ),
    ]
    if member.birthday is not None:
        lines.append(
            t("m360.birthday", birthday=format_day(member.birthday, t.locale, with_year=True))
        )
    lines.append(
        t(
            "m360.member_since",
            date=local_date(member.registered_at or member.created_at, config, t.locale),
            source=member.source or none,
        )
    )
    if view.referrer_code or view.referrals:
        lines.append(
            t(
                "m360.referred_by",
                code=view.referrer_code or none,
                friends=t.count("m360.friends", view.referrals),
            )
        )

    lines += [
        "",
        t("m360.consent_title"),
        t(
            "m360.consent_profile",
            state=_consent(
                t, config, member.profile_consent_at is not None, member.profile_consent_at
            ),
        ),
        t(
            "m360.consent_marketing",
            state=_consent(t, config, member.marketing_opt_in, member.marketing_changed_at),
        ),
        t(
            "m360.consent_surveys",
            state=_consent(t, config, member.surveys_opt_in, member.surveys_changed_at),
        ),
    ]
    if member.chat_id is None:
        lines.append(t("m360.no_chat"))
    elif member.blocked_at is not None:
        lines.append(t("m360.unreachable", when=local_time(member.blocked_at, config)))
    else:
        lines.append(t("m360.reachable"))

    tier = tier_name(view.tier, t.locale) if view.tier is not None else member.tier_code
    lines += [
        "",
        t(
            "m360.loyalty",
            tier=tier,
            points=format_count(member.points_balance),
            coupons=t.count("m360.coupons", view.active_coupons),
        ),
        t(
            "m360.spend",
            total=format_money(member.total_spent_minor, currency),
            purchases=t.count("m360.purchases", member.purchase_count),
            spend_12m=format_money(member.spend_12m_minor, currency),
        ),
    ]
    if member.first_purchase_at and member.last_purchase_at:
        lines.append(
            t(
                "m360.gap",
                first=local_date(member.first_purchase_at, config, t.locale),
                last=local_date(member.last_purchase_at, config, t.locale),
                gap=(
                    f"{max(member.avg_gap_days, 1):.0f}"
                    if member.avg_gap_days is not None and member.purchase_count > 1
                    else none
                ),
            )
        )
    else:
        lines.append(t("m360.no_purchases_yet"))
    # A retired stage (consent used to be one) reads as "not computed yet" until the refresh.
    current = member.lifecycle_stage not in RETIRED_STAGES
    stage = _label(t, "m360.stage", member.lifecycle_stage if current else None)
    if member.rfm_r is not None:
        lines.append(
            t(
                "m360.segments",
                r=member.rfm_r,
                f=member.rfm_f if member.rfm_f is not None else "?",
                m=member.rfm_m if member.rfm_m is not None else "?",
                value=_label(t, "m360.value", member.value_tier),
                stage=stage,
                risk=f"{member.churn_risk:.0%}" if member.churn_risk is not None else none,
            )
        )
    else:
        lines.append(t("m360.segments_none", stage=stage))
    if view.value is not None:
        lines.append(
            t(
                "m360.predicted",
                alive=f"{view.value.p_alive:.0%}",
                purchases=f"{view.value.purchases_90d:.1f}",
                spend=format_money(view.value.spend_per_purchase_minor, currency),
                value=format_money(view.value.value_12m_minor, currency),
            )
        )
    if view.value is not None and view.value.at_risk and view.churn_signal != GAP_RULE:
        # At risk by the model signal the shop's backtest chose (the gap rule is the stage above).
        signal = t.plain(f"stats.churn.signal.{view.churn_signal}")
        since = view.value.at_risk_since
        lines.append(
            t("m360.at_risk_since", signal=signal, date=local_date(since, config, t.locale))
            if since is not None
            else t("m360.at_risk", signal=signal)
        )
    if view.interests:
        lines.append(t("m360.interests", interests=category_list(t, view.interests)))

    if view.purchases:
        lines += ["", t("m360.purchases_title")]
        lines += [
            t(
                "m360.purchase_line",
                when=short_time(purchase.purchased_at, config),
                amount=format_money(purchase.amount_minor, purchase.currency),
                category=f"· {category_label(t, purchase.category)}" if purchase.category else "",
                points=format_count(purchase.points_earned),
                receipt=excerpt(purchase.receipt_id, 24),
            )
            for purchase in view.purchases
        ]
    if view.surveys:
        lines += ["", t("m360.surveys_title")]
        for response in view.surveys:
            expectation = (
                f" · {_label(t, 'm360.expectation', response.expectation)}"
                if response.expectation
                else ""
            )
            comment = f" · “{excerpt(response.comment, 60)}”" if response.comment else ""
            flagged = response.needs_followup and response.followed_up_at is None
            lines.append(
                t(
                    "m360.survey_line",
                    when=short_time(response.created_at, config),
                    kind=_label(t, "m360.survey_kind", response.kind),
                    score=score_text(t, response.score, response.kind),
                    expectation=expectation,
                    comment=comment,
                    flag=t.plain("m360.survey_flag") if flagged else "",
                )
            )
    if view.tickets:
        lines += ["", t("m360.tickets_title", open=view.open_tickets)]
        for ticket in view.tickets:
            first = next((m for m in ticket.messages if m.author == MessageAuthor.MEMBER), None)
            if first is None:  # opened by staff (a follow-up): nothing from the member yet
                text = none
            else:
                text = excerpt(first.text, 50) if first.text else t.plain("inbox.thread_photo")
            lines.append(
                t(
                    "m360.ticket_line",
                    number=ticket.id,
                    when=short_time(ticket.created_at, config),
                    kind=_label(t, "m360.ticket_kind", ticket.kind),
                    status=_label(t, "m360.ticket_status", ticket.status),
                    excerpt=text,
                )
            )
    if view.message_counts:
        lines += [
            "",
            t(
                "m360.messages_title",
                sent=view.messages_with(OutboxStatus.SENT),
                skipped=view.messages_with(OutboxStatus.SKIPPED, OutboxStatus.FAILED),
                queued=view.messages_with(OutboxStatus.QUEUED, OutboxStatus.SENDING),
            ),
        ]
        lines += [
            t(
                "m360.message_line",
                when=short_time(sent.sent_at or sent.created_at, config),
                what=(
                    rule_label(t, sent.rule)
                    if sent.rule and rule_label(t, sent.rule)
                    else _label(t, "m360.message_kind", sent.kind)
                ),
                status=_label(t, "m360.outbox_status", sent.status),
            )
            for sent in view.messages
        ]
    return "\n".join(lines)


def build_router() -> Router:
    router = Router(name=__name__)
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    router.message.register(cmd_member, Command("member"), MinRole(StaffRole.CASHIER))
    router.callback_query.register(
        on_member_picked, CDMemberPick.filter(), MinRole(StaffRole.CASHIER)
    )
    return router
