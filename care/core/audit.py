"""The audit log: every staff action that changes something or reads personal data in bulk.

Entries are written in the same unit of work as the action itself, so an action that rolls back
leaves no entry and an entry never exists without its action.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from storage.models import AuditEntry
from storage.repos.audit import AuditRepo

ACTION_MAX = 48
TARGET_MAX = 128


async def audit(
    session: AsyncSession,
    clock: Clock,
    *,
    actor_telegram_id: int | None,
    actor_role: str | None,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Record that ``actor`` did ``action`` to ``target`` now; ``details`` must be JSON-able.

    ``action`` is a short dotted verb such as ``staff.add``, ``member.view``, ``export.members``;
    ``target`` names what was acted on (``member:42``, ``staff:123``, ``coupon:AB12CD34``).
    """
    await AuditRepo(session).add(
        AuditEntry(
            actor_telegram_id=actor_telegram_id,
            actor_role=str(actor_role) if actor_role is not None else None,
            action=action[:ACTION_MAX],
            target=target[:TARGET_MAX] if target is not None else None,
            details=details,
            created_at=clock.now(),
        )
    )


async def recent_audit(
    session: AsyncSession,
    *,
    limit: int = 50,
    action: str | None = None,
    actor_telegram_id: int | None = None,
) -> list[AuditEntry]:
    """The newest audit entries first (for review and for tests)."""
    return await AuditRepo(session).recent(
        limit=limit, action=action, actor_telegram_id=actor_telegram_id
    )
