"""Campaigns: staff broadcasts to an audience and offers issued as coupons to a segment.

Rank 5: depends on core, messaging, members, segments and loyalty.

- ``schedule``: the two kinds, creating, scheduling and cancelling a campaign.
- ``render``: the message for one member, the coupon line, the preview, audience names.
- ``launch``: the audience materialised batch by batch into coupons and outbox rows.
- ``report``: a campaign's numbers, live progress text, finishing and the final report.
- ``supervision``: background watchers that run a launch and show its progress.
- ``offers``: the offers staff may issue from.
"""
