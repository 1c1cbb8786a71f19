"""What a campaign says: the message rendered for one member, its coupon line, the preview
staff see before sending, the notice of an issued coupon, and the names of audiences.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlalchemy.ext.asyncio import AsyncSession

from care.campaigns.schedule import CampaignError
from care.core.clock import Clock
from care.core.codes import display_code
from care.core.config import CareConfig
from care.core.i18n import Translator, translator
from care.core.quiet_hours import member_zone
from care.core.templates import (
    MAX_VISIBLE_CHARS,
    TemplateProblem,
    member_context,
    render_text,
    tier_name,
    visible_length,
)
from care.loyalty.coupons import IssuedCoupon
from care.loyalty.offers import coupon_expiry, describe_offer
from care.segments.audience import Audience, count_audience, sample_member
from storage.models import Coupon, Member, Offer

CAPTION_LIMIT = 1024
# Shown in previews where each member's own coupon code will be.
PREVIEW_COUPON_CODE = "ABCD2345"


def _local_day(value: datetime | None, tz_name: str | None) -> str | None:
    return value.astimezone(member_zone(tz_name)).date().isoformat() if value else None


def coupon_line(
    t: Translator, offer: Offer, code: str, expires_at: datetime | None, tz_name: str | None
) -> str:
    """The lines a coupon adds under a message, in the reader's language."""
    values: dict[str, Any] = {
        "title": offer.title,
        "offer": Markup(describe_offer(offer, t)),
        "code": display_code(code),
    }
    expires = _local_day(expires_at, tz_name)
    if expires is None:
        return t("campaign.coupon_line", **values)
    return t("campaign.coupon_line_expires", date=expires, **values)


def _check_length(text: str, *, with_photo: bool) -> str:
    limit = CAPTION_LIMIT if with_photo else MAX_VISIBLE_CHARS
    length = visible_length(text)
    if length > limit:
        raise TemplateProblem("too_long", length=length, limit=limit)
    return text


def render_for_member(
    campaign_template: str,
    member: Member,
    config: CareConfig,
    *,
    offer: Offer | None = None,
    coupon_code: str | None = None,
    coupon_expires_at: datetime | None = None,
    with_photo: bool = False,
) -> str:
    """The message ``member`` receives: the staff text rendered for them, plus the coupon line.

    Raises ``TemplateProblem`` when the text cannot be sent (unknown placeholder, syntax, too
    long — a photo caption allows 1024 characters).
    """
    text = render_text(campaign_template, member_context(member, config))
    return with_coupon_line(
        text,
        member,
        offer=offer,
        coupon_code=coupon_code,
        coupon_expires_at=coupon_expires_at,
        with_photo=with_photo,
    )


def with_coupon_line(
    text: str,
    member: Member,
    *,
    offer: Offer | None = None,
    coupon_code: str | None = None,
    coupon_expires_at: datetime | None = None,
    with_photo: bool = False,
) -> str:
    """The staff text already rendered for ``member`` completed as in ``render_for_member``.

    A launch renders the (possibly slow) staff text once and adds each coupon's line later.
    """
    if offer is not None:
        t = translator(member.locale)
        code = coupon_code or PREVIEW_COUPON_CODE
        line = coupon_line(t, offer, code, coupon_expires_at, member.timezone)
        text = f"{text}\n\n{line}"
    return _check_length(text, with_photo=with_photo)


@dataclass(frozen=True, slots=True)
class Preview:
    """A message rendered for a real member of the audience, and how many will get it."""

    text: str
    sample: Member
    recipients: int


async def preview_message(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    audience: Audience,
    template: str,
    offer: Offer | None = None,
    with_photo: bool = False,
) -> Preview:
    """Render ``template`` for a real member of ``audience`` and count the audience.

    Raises ``CampaignError("empty_audience")`` when nobody would receive it, and
    ``TemplateProblem`` when the text cannot be sent.
    """
    sample = await sample_member(session, audience)
    if sample is None:
        raise CampaignError("empty_audience")
    # In a worker thread: a staff text may spend its whole time budget, and other people's
    # updates must not wait for it.
    text = await asyncio.to_thread(
        render_for_member,
        template,
        sample,
        config,
        offer=offer,
        coupon_expires_at=coupon_expiry(offer, clock.now()) if offer else None,
        with_photo=with_photo,
    )
    return Preview(text=text, sample=sample, recipients=await count_audience(session, audience))


def offer_notice(
    t: Translator, member: Member, offer: Offer, coupon: Coupon | IssuedCoupon
) -> str:
    """The message that tells a member about a coupon issued to them from an offer."""
    line = coupon_line(t, offer, coupon.code, coupon.expires_at, member.timezone)
    name = member.name or t.plain("rules.friend")
    return t("campaign.offer_notice", name=name, line=Markup(line))


def value_label(t: Translator, kind: str, value: str) -> str:
    """The name of one audience value (a tier, stage, segment or interest) for staff."""
    match kind:
        case "tier":
            return tier_name(value, t.locale)
        case "stage":
            key = f"chart.stage.{value}"
        case "segment":
            key = f"audience.segment.{value}"
        case _:
            key = f"interest.{value}"
    return t.plain(key) if t.has(key) else value


def audience_label(t: Translator, spec: dict[str, Any]) -> str:
    """A short human name for an audience spec, e.g. "Tier: Gold"."""
    kind, value = str(spec.get("kind")), spec.get("value")
    if kind == "all" or value is None:
        return t.plain("audience.all")
    return t.plain(
        "audience.labelled",
        kind=t.plain(f"audience.kind.{kind}"),
        value=value_label(t, kind, str(value)),
    )
