"""Conversations: everything a shopper writes to the shop (kept as tickets with their threads,
media by Telegram file id), feedback tickets, surveys (CSAT, NPS, ticket ratings), the staff
inbox, saved replies and forum topics.

Rank 4. Depends on core, messaging, members and staff.
"""
