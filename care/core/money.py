"""Money is an integer count of minor units (fen, cents) with a currency code; never a float."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$"}
ZERO_DECIMAL = {"JPY", "KRW"}
AMOUNT_RE = re.compile(r"^\d{1,12}(\.\d{1,2})?$")


def minor_digits(currency: str) -> int:
    return 0 if currency in ZERO_DECIMAL else 2


def format_money(amount_minor: int, currency: str) -> str:
    """``12345, "CNY"`` → ``¥123.45``."""
    digits = minor_digits(currency)
    sign = "-" if amount_minor < 0 else ""
    value = Decimal(abs(amount_minor)).scaleb(-digits)
    symbol = SYMBOLS.get(currency, currency + " ")
    return f"{sign}{symbol}{value:,.{digits}f}"


def parse_amount(text: str, currency: str) -> int:
    """Parse what a person types (``88``, ``88.5``, ``¥88.50``) into minor units.

    Raises ``ValueError`` for anything that is not a plain positive amount.
    """
    cleaned = text.strip().replace(",", "").lstrip("¥$€£").strip()
    if not AMOUNT_RE.match(cleaned):
        raise ValueError(f"not an amount: {text!r}")
    try:
        value = Decimal(cleaned)
    except InvalidOperation as exc:  # pragma: no cover - the regex already guards this
        raise ValueError(f"not an amount: {text!r}") from exc
    digits = minor_digits(currency)
    if value != value.quantize(Decimal(1).scaleb(-digits)):
        raise ValueError(f"too many decimals for {currency}: {text!r}")
    return int(value.scaleb(digits))
