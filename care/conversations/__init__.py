"""Conversations: feedback tickets and their threads, surveys (CSAT, NPS, ticket ratings),
the staff inbox and forum topics.

Depends on core, messaging, members and staff.
"""
