"""Persistence: SQLAlchemy models, repositories, engine and migrations. Imports nothing of ours."""
