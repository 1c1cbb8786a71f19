"""The CRM brain: loyalty, segments, care rules, templates and delivery. No aiogram handlers."""
