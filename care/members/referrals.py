"""Referrals that motivate: the inviter hears when a friend joins, named by first name.

The reward itself belongs to the care engine (rule ``referral_reward``, on the friend's first
purchase); this module only says "your friend joined", through the outbox as a service message
(it is about the member's own invitation and carries no offer). Only the friend's first name
is told, never their member code or phone: the inviter knows them already.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import LOCALES, Translator, translator
from care.messaging.outbox import enqueue
from storage.enums import MemberStatus, MessageKind
from storage.models import Member
from storage.repos.members import MemberRepo

FIRST_NAME_LIMIT = 32


def first_word(name: str | None) -> str | None:
    """The first word of a member's name ("Li" of "Li Lei"; a Chinese name whole)."""
    words = (name or "").split()
    return words[0][:FIRST_NAME_LIMIT] if words else None


def first_name(name: str | None, t: Translator) -> str:
    """``first_word``, or "your friend" when they gave no name."""
    return first_word(name) or t.plain("rewards.invite.friend")


async def tell_referrer_joined(
    session: AsyncSession, clock: Clock, config: CareConfig, friend: Member
) -> bool:
    """Queue "your friend joined" for the member who invited ``friend``; False when there is no
    reachable inviter. Sent once per friend (the outbox key)."""
    if friend.referrer_id is None:
        return False
    inviter = await MemberRepo(session).get(friend.referrer_id)
    if (
        inviter is None
        or inviter.chat_id is None
        or inviter.blocked_at is not None
        or inviter.status != MemberStatus.ACTIVE
    ):
        return False
    t = translator(inviter.locale if inviter.locale in LOCALES else config.default_locale)
    queued = await enqueue(
        session, clock, config, key=f"referral-joined:{friend.id}", chat_id=inviter.chat_id,
        text=t("rewards.invite.joined", friend=first_name(friend.name, t), shop=config.shop_name),
        kind=MessageKind.SERVICE, member=inviter, rule="referral_joined",
    )  # fmt: skip
    return queued is not None
