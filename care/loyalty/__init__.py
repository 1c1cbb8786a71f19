"""Loyalty: purchases, points, tiers, coupons and offers; the till's checks; the member card.

Depends on core, messaging, members and segments.
"""
