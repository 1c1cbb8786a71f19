"""Imports: bringing a shop's existing data in from files (the till's purchase export).

Depends on core, members and loyalty.
"""
