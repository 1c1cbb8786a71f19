"""What shoppers do in their private chat with the bot."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.enums import ChatType

from handlers.shopper import (
    card,
    conversation,
    feedback,
    invite,
    menu,
    offers,
    points,
    privacy,
    reachability,
    registration,
    rewards,
    settings,
    start,
    surveys,
)
from handlers.shopper.prompts import PromptMiddleware


def build_router() -> Router:
    router = Router(name="shopper")
    router.message.filter(F.chat.type == ChatType.PRIVATE)
    # A flow's prompt loses its buttons once the flow is left, by whatever path.
    router.message.outer_middleware(PromptMiddleware())
    router.callback_query.outer_middleware(PromptMiddleware())
    router.include_routers(
        # Members only, and first: a command or menu press while feedback or a survey
        # waits for text ends that flow before the command runs.
        feedback.build_router(),
        surveys.build_router(),
        # While a shopper registers, the registration steps answer everything they send.
        start.build_router(),
        registration.build_router(),
        settings.build_router(),
        menu.build_router(),
        card.build_router(),
        offers.build_router(),
        points.build_router(),
        rewards.build_router(),
        invite.build_router(),
        privacy.build_router(),
        reachability.build_router(),
        # Last: whatever no flow or command took joins the shopper's conversation.
        conversation.build_router(),
    )
    return router
