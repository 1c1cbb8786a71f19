"""Imports: bringing a shop's existing data in from files — the customer list (``members``) and
the till's purchase export (``purchases``), read by the shared ``csvfile``.

Depends on core, members and loyalty.
"""
