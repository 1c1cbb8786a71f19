"""Loyalty: purchases (recording a receipt), points (the ledger), tiers, offers (and whether one
is usable), coupons (issuing, redeeming); the till's checks (till); the member card (cards).

Depends on core, messaging, members and segments.
"""
