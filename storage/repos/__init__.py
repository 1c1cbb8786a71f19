"""Repositories: one per aggregate. They flush, never commit: the unit of work commits once."""
