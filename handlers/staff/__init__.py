"""What shop staff do: admin commands in the same chat app. Invisible to everyone else.

The router-wide ``MinRole()`` filter lets only staff in; each handler then states the lowest
role it allows with its own ``MinRole(...)``, and every staff callback checks it again. An inner
middleware then hands each staff handler one ``staff: StaffContext`` (handlers/staff/context.py),
and the router owns the campaign watchers the console's launches report their progress through.
"""

from __future__ import annotations

from aiogram import Router

from handlers.staff import (
    audit,
    broadcast,
    corrections,
    export,
    forum,
    inbox,
    language,
    leave_flow,
    member,
    offers,
    profile,
    recovery,
    rewards,
    saved_replies,
    staff_admin,
    stats,
    till,
)
from handlers.staff.access import MinRole
from handlers.staff.campaign_flow import supervise_campaigns
from handlers.staff.context import StaffContextMiddleware


def build_router() -> Router:
    router = Router(name="staff")
    router.message.filter(MinRole())
    router.callback_query.filter(MinRole())
    # Inner middlewares reach the handlers of every router included below.
    router.message.middleware(StaffContextMiddleware())
    router.callback_query.middleware(StaffContextMiddleware())
    supervise_campaigns(router)
    router.include_routers(
        leave_flow.build_router(),  # first: a command leaves a waiting step, then runs
        staff_admin.build_router(),
        language.build_router(),
        audit.build_router(),
        member.build_router(),
        till.build_router(),
        corrections.build_router(),
        rewards.build_router(),
        profile.build_router(),
        inbox.build_router(),
        recovery.build_router(),
        saved_replies.build_router(),
        export.build_router(),
        forum.build_router(),
    )
    # Console flows; stats last: it also tells a cashier these commands need an admin.
    router.include_routers(broadcast.build_router(), offers.build_router(), stats.build_router())
    return router
