"""Short codes people read aloud and type at a till (member codes share the alphabet).

No 0/O or 1/I/L, so nothing can be misread; input is forgiving about case, spaces and dashes.
"""

from __future__ import annotations

import re
import secrets

CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
COUPON_CODE_LENGTH = 8
_SEPARATORS = re.compile(r"[\s\-_.]+")


def random_code(length: int = COUPON_CODE_LENGTH) -> str:
    """A random code from the unambiguous alphabet (31^8 ≈ 8.5e11 codes at the default length)."""
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


def normalize_code(text: str) -> str:
    """What a cashier typed (``abcd-2345``, ``ABCD 2345``) → the stored form ``ABCD2345``."""
    return _SEPARATORS.sub("", text).upper()


def display_code(code: str) -> str:
    """``ABCD2345`` → ``ABCD-2345``: two halves are easier to read aloud."""
    if len(code) < 8:
        return code
    half = len(code) // 2
    return f"{code[:half]}-{code[half:]}"
