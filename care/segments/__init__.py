"""Segments: lifecycle stages, churn risk, RFM and value tiers, and the audiences a broadcast
or an offer reaches. ``rules`` holds the pure rules, ``refresh`` applies them to every member in
SQL, ``audience`` turns a staff choice into one query.

Depends on core and messaging (``audience`` also reads the value model's stored predictions,
``member_value``, from storage; it does not import ``care.value``).
"""
