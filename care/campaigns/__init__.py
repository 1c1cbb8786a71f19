"""Campaigns: staff broadcasts to an audience and offers issued as coupons to a segment.

Depends on core, messaging, members, segments and loyalty.
"""
