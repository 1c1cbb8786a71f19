"""Automation: the care rules (rules), one module per trigger saying who is due and what is
particular to the occasion (triggers/), the evaluation loop (engine), the touches that record
each decision (touches), what the treatment arm gets (actions), and the report of whether each
rule works (sent, converted, uplift against the holdout).

Depends on everything below campaigns: core, messaging, members, staff, segments, loyalty,
conversations.
"""
