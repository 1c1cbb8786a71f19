"""Messaging: the outbox every message waits in, the guardrails marketing passes, and the
delivery worker that drains the outbox into Telegram within its rate limits.

Depends on core.
"""
