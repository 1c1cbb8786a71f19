"""What a campaign says: the message rendered for one member in their language, its coupon
line and opt-out line, the previews staff see before sending (one per language), the notice of
an issued coupon, and the names of audiences.

A campaign has a Chinese and an English text (``Texts``); either may be empty, and its readers
then get the other. Offers are named per language the same way (``offer_name``); a care rule's
built-in offer shows only what it gives, never its working title.
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
from care.core.formatting import format_day
from care.core.i18n import LOCALES, Translator, translator
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
from care.loyalty.offers import coupon_expiry, describe_offer, offer_name
from care.messaging.opt_out import with_opt_out
from care.segments.audience import Audience, count_audience, count_by_locale, sample_member
from storage.models import Campaign, Coupon, Member, Offer

CAPTION_LIMIT = 1024
# Shown in previews where each member's own coupon code will be.
PREVIEW_COUPON_CODE = "ABCD2345"


def _local_day(value: datetime | None, tz_name: str | None, locale: str) -> str | None:
    """The member's local date as it reads in a sentence: 11月30日 / 30 Nov."""
    return format_day(value.astimezone(member_zone(tz_name)), locale) if value else None


def coupon_line(
    t: Translator, offer: Offer, code: str, expires_at: datetime | None, tz_name: str | None
) -> str:
    """The lines a coupon adds under a message, in the reader's language."""
    values: dict[str, Any] = {
        "offer": Markup(describe_offer(offer, t)),
        "code": display_code(code),
    }
    name = offer_name(offer, t.locale)
    if name is None:
        key = "content.coupon_line_unnamed"
    else:
        key, values["title"] = "campaign.coupon_line", name
    expires = _local_day(expires_at, tz_name, t.locale)
    if expires is None:
        return t(key, **values)
    return t(f"{key}_expires", date=expires, **values)


@dataclass(frozen=True, slots=True)
class Texts:
    """A campaign's text per language; an empty one falls back to the other."""

    zh: str = ""
    en: str = ""

    @classmethod
    def of(cls, campaign: Campaign) -> Texts:
        """The texts of a stored campaign (older ones have only ``template``)."""
        zh, en = campaign.template_zh or "", campaign.template_en or ""
        if not zh and not en:
            return cls(zh=campaign.template)
        return cls(zh=zh, en=en)

    def own(self, locale: str) -> str:
        """The text written for ``locale`` (possibly empty)."""
        return self.en if locale == "en" else self.zh

    def for_locale(self, locale: str) -> str:
        """What a member reading ``locale`` gets: their text, else the other one."""
        return self.own(locale) or self.zh or self.en

    @property
    def primary(self) -> str:
        return self.zh or self.en


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
    locale: str | None = None,
) -> str:
    """The message ``member`` receives: the staff text rendered for them, the coupon line and
    the opt-out line, in ``locale`` (the member's own when None).

    Raises ``TemplateProblem`` when the text cannot be sent (unknown placeholder, syntax, too
    long — a photo caption allows 1024 characters).
    """
    reader = locale or member.locale
    text = render_text(campaign_template, member_context(member, config))
    return with_coupon_line(
        text,
        member,
        offer=offer,
        coupon_code=coupon_code,
        coupon_expires_at=coupon_expires_at,
        with_photo=with_photo,
        locale=reader,
    )


def with_coupon_line(
    text: str,
    member: Member,
    *,
    offer: Offer | None = None,
    coupon_code: str | None = None,
    coupon_expires_at: datetime | None = None,
    with_photo: bool = False,
    locale: str | None = None,
) -> str:
    """The staff text already rendered for ``member`` completed as in ``render_for_member``.

    A launch renders the (possibly slow) staff text once and adds each coupon's line later.
    """
    reader = locale or member.locale
    if offer is not None:
        t = translator(reader)
        code = coupon_code or PREVIEW_COUPON_CODE
        line = coupon_line(t, offer, code, coupon_expires_at, member.timezone)
        text = f"{text}\n\n{line}"
    return _check_length(with_opt_out(text, reader), with_photo=with_photo)


@dataclass(frozen=True, slots=True)
class Preview:
    """A message rendered for a real member of the audience, and how many will get it."""

    text: str
    sample: Member
    recipients: int
    locale: str = LOCALES[0]
    readers: int = 0


async def preview_message(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    audience: Audience,
    template: str,
    offer: Offer | None = None,
    with_photo: bool = False,
    locale: str | None = None,
) -> Preview:
    """Render ``template`` for a real member of ``audience`` and count the audience.

    With ``locale``, the sample reads that language (a member who does, when there is one)
    and ``readers`` counts the members who do.

    Raises ``CampaignError("empty_audience")`` when nobody would receive it, and
    ``TemplateProblem`` when the text cannot be sent.
    """
    sample = await sample_member(session, audience, locale=locale)
    if sample is None:
        raise CampaignError("empty_audience")
    reader = locale or sample.locale
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
        locale=reader,
    )
    recipients = await count_audience(session, audience)
    readers = recipients
    if locale is not None:
        readers = await readers_of(session, audience, locale)
    return Preview(text, sample, recipients, locale=reader, readers=readers)


async def readers_of(
    session: AsyncSession, audience: Audience, locale: str, *, marketing: bool = True
) -> int:
    """How many members of ``audience`` read ``locale`` (an unknown language counts as the
    first, which is what they are sent)."""
    counts = await count_by_locale(session, audience, marketing=marketing)
    if locale == LOCALES[0]:
        return sum(n for code, n in counts.items() if code not in LOCALES[1:])
    return counts.get(locale, 0)


async def previews(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    *,
    audience: Audience,
    texts: Texts,
    offer: Offer | None = None,
    with_photo: bool = False,
) -> list[Preview]:
    """One preview per language, each as its readers will get it (their text or the other).

    Raises like ``preview_message``.
    """
    return [
        await preview_message(
            session,
            config,
            clock,
            audience=audience,
            template=texts.for_locale(locale),
            offer=offer,
            with_photo=with_photo,
            locale=locale,
        )
        for locale in LOCALES
    ]


def offer_notice(
    t: Translator, member: Member, offer: Offer, coupon: Coupon | IssuedCoupon
) -> str:
    """The message that tells a member about a coupon issued to them from an offer, in ``t``'s
    language, ending with the opt-out line (it is marketing)."""
    line = coupon_line(t, offer, coupon.code, coupon.expires_at, member.timezone)
    name = member.name or t.plain("rules.friend")
    return with_opt_out(t("campaign.offer_notice", name=name, line=Markup(line)), t.locale)


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
