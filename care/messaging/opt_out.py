"""The one-line way out that ends every marketing message: "/stop" in the reader's language.

Marketing (campaigns, offer notices, marketing care rules) ends with it; service messages
(receipts, answers, surveys) and staff alerts do not, because /stop turns off marketing only.
The line is added where the text is rendered, so previews and length checks include it.
"""

from __future__ import annotations

from care.core.i18n import translator


def opt_out_line(locale: str) -> str:
    """The opt-out line alone, in ``locale``."""
    return translator(locale)("content.opt_out")


def with_opt_out(text: str, locale: str) -> str:
    """``text`` followed by the opt-out line, a blank line between."""
    return f"{text}\n\n{opt_out_line(locale)}"
