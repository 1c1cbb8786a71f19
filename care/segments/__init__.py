"""Segments: lifecycle stages, churn risk, RFM and value tiers, and the audiences a broadcast
or an offer reaches.

Depends on core and messaging.
"""
