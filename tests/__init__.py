"""carebot's tests.

``carebot run`` builds aiogram's type schemas on first use (bot/lazy_schemas.py); the tests run
the same way, so every end-to-end test proves the deferred build (this runs before any test
module, and conftest, imports aiogram).
"""

from bot.lazy_schemas import defer_aiogram_schemas

defer_aiogram_schemas()
