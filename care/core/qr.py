"""QR codes a till's scanner reads, generated locally (no network, no third party)."""

from __future__ import annotations

import io

import segno

QR_SCALE = 10
QR_BORDER = 4


def qr_png(payload: str) -> bytes:
    """A PNG QR code of ``payload`` (a coupon or member code), medium error correction."""
    buffer = io.BytesIO()
    segno.make_qr(payload, error="m").save(buffer, kind="png", scale=QR_SCALE, border=QR_BORDER)
    return buffer.getvalue()
