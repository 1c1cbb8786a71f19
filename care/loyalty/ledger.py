"""Transitional: the names ``handlers/staff/broadcast.py`` and ``handlers/staff/offers.py`` still
import from here while they are being restructured on another branch.

``ledger`` was split into ``purchases``, ``points``, ``tiers``, ``offers`` and ``coupons``; import
from those. Delete this module once those two handlers import ``care.loyalty.offers``.
"""

from care.loyalty.offers import create_offer, describe_offer

__all__ = ["create_offer", "describe_offer"]
