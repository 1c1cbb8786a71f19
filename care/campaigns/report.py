"""Where a campaign stands: its numbers, the live progress text, and the final report.

When nothing of a launched campaign is left to send, ``finish_if_delivered`` marks it done and
queues the final report to the staff member who started it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from care.campaigns.schedule import COUPONS
from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.i18n import Translator, translator
from care.messaging.outbox import campaign_counts, campaign_skip_reasons, enqueue
from storage.enums import CampaignStatus, MessageKind
from storage.repos.campaigns import CampaignRepo


@dataclass(frozen=True, slots=True)
class CampaignReport:
    """Where a campaign stands: the audience, what was queued, and what delivery made of it."""

    campaign_id: int
    kind: str
    status: str
    recipients: int
    queued: int
    coupons: int
    skipped: dict[str, int]
    sent: int
    failed: int
    blocked: int
    pending: int
    launched: bool
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def done(self) -> bool:
        return self.status == CampaignStatus.DONE

    @property
    def held_back(self) -> int:
        return sum(self.skipped.values())


async def campaign_report(session: AsyncSession, campaign_id: int) -> CampaignReport | None:
    """The numbers of one campaign now (two indexed queries)."""
    campaign = await CampaignRepo(session).get(campaign_id)
    if campaign is None:
        return None
    counts = await campaign_counts(session, campaign_id)
    return CampaignReport(
        campaign_id=campaign.id,
        kind=campaign.kind,
        status=campaign.status,
        recipients=campaign.recipients,
        queued=campaign.queued,
        coupons=campaign.coupons_issued,
        skipped={k: int(v) for k, v in (campaign.skipped or {}).items()},
        sent=counts.get("sent", 0),
        failed=counts.get("failed", 0),
        blocked=counts.get("skipped", 0),
        pending=counts.get("queued", 0) + counts.get("sending", 0),
        launched=campaign.launched_at is not None,
        started_at=campaign.started_at,
        finished_at=campaign.finished_at,
    )


def reason_list(t: Translator, reasons: dict[str, int]) -> str:
    """``no consent 3, frequency cap 1`` in the reader's language."""
    parts = []
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        key = f"campaign.reason.{reason}"
        label = t.plain(key) if t.has(key) else reason
        parts.append(t.plain("campaign.reason_count", reason=label, count=count))
    return t.plain("campaign.list_separator").join(parts)


def progress_text(t: Translator, report: CampaignReport) -> str:
    """The live progress message: sent / failed / blocked of what is queued, and the coupons
    issued (a coupon issue whose notices all wait or are held back still shows its coupons)."""
    values = {
        "id": report.campaign_id,
        "queued": report.queued,
        "sent": report.sent,
        "failed": report.failed,
        "blocked": report.blocked,
        "pending": report.pending,
        "coupons": report.coupons,
    }
    if report.kind == COUPONS:
        if report.done:
            return t("content.progress_coupons_done", **values)
        return t("content.progress_coupons", **values)
    if report.done:
        key = "campaign.progress_done"
    elif report.launched:
        key = "campaign.progress"
    else:
        key = "campaign.progress_queueing"
    text = t(key, **values)
    if report.coupons:
        text += "\n" + t("content.progress_coupons_line", coupons=report.coupons)
    return text


def final_report_text(t: Translator, report: CampaignReport, skip_reasons: dict[str, int]) -> str:
    """The report after the last message went out (or failed for good)."""
    text = t(
        "campaign.report_coupons" if report.kind == COUPONS else "campaign.report",
        id=report.campaign_id,
        recipients=report.recipients,
        queued=report.queued,
        coupons=report.coupons,
        sent=report.sent,
        failed=report.failed,
        blocked=report.blocked,
    )
    if report.skipped:
        text += "\n" + t("campaign.report_held_back", reasons=reason_list(t, report.skipped))
    if skip_reasons:
        text += "\n" + t("campaign.report_not_delivered", reasons=reason_list(t, skip_reasons))
    return text


async def finish_if_delivered(
    session: AsyncSession, config: CareConfig, clock: Clock, campaign_id: int
) -> CampaignReport | None:
    """Mark a fully queued and fully delivered campaign done and queue its final report.

    Returns the final report the one time the campaign becomes done, else None. Safe to call
    from several places at once: the conditional update lets exactly one of them finish it.
    """
    report = await campaign_report(session, campaign_id)
    if report is None or report.status != CampaignStatus.SENDING:
        return None
    if not report.launched or report.pending:
        return None
    repo = CampaignRepo(session)
    if not await repo.mark_done(campaign_id, clock.now()):
        return None
    campaign = await repo.get(campaign_id)
    assert campaign is not None
    await repo.refresh(campaign)
    report = await campaign_report(session, campaign_id)
    assert report is not None
    chat_id = campaign.progress_chat_id or campaign.created_by
    if chat_id is not None:
        t = translator(campaign.locale)
        skip_reasons = await campaign_skip_reasons(session, campaign_id)
        await enqueue(
            session,
            clock,
            config,
            key=f"campaign:{campaign_id}:report",
            chat_id=chat_id,
            text=final_report_text(t, report, skip_reasons),
            kind=MessageKind.ALERT,
            respect_quiet_hours=False,
        )
    return report
