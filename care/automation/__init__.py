"""Automation: the care rules, the engine that finds who is due for each, and the report of
whether each rule works (sent, converted, uplift against the holdout).

Depends on everything below campaigns: core, messaging, members, staff, segments, loyalty,
conversations.
"""
