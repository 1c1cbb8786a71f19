"""Message catalogues for everything a person reads, in Chinese and English.

Catalogue strings are trusted HTML (Telegram's HTML parse mode); the values put into them are
escaped, so a member named ``<b>`` stays a name. Each locale is a folder of TOML files
(``care/core/locales/<locale>/<feature>.toml``), one per feature, merged; a key lives in one file.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from babel import Locale
from markupsafe import Markup

LOCALES: tuple[str, ...] = ("zh", "en")
LOCALES_DIR = Path(__file__).parent / "locales"
# The CLDR locale whose plural rules each of our locales follows.
PLURAL_LOCALES: dict[str, str] = {"zh": "zh_Hans_CN", "en": "en"}


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@cache
def catalogue(locale: str) -> dict[str, str]:
    merged: dict[str, str] = {}
    for path in sorted((LOCALES_DIR / locale).glob("*.toml")):
        with path.open("rb") as handle:
            texts = _flatten(tomllib.load(handle))
        clash = merged.keys() & texts.keys()
        if clash:
            raise ValueError(f"{path}: keys defined twice: {sorted(clash)}")
        merged.update(texts)
    return merged


def normalize_locale(language_code: str | None, default: str = "zh") -> str:
    """Map a Telegram ``language_code`` (``zh-hans``, ``en-US`` …) to a supported locale."""
    if not language_code:
        return default
    base = language_code.lower().split("-")[0].split("_")[0]
    return base if base in LOCALES else default


class Translator:
    """``t("card.title", name=...)``: the text for ``key`` in this locale, values escaped."""

    __slots__ = ("_texts", "locale")

    def __init__(self, locale: str) -> None:
        self.locale = locale if locale in LOCALES else LOCALES[0]
        self._texts = catalogue(self.locale)

    def __call__(self, key: str, /, **values: Any) -> str:
        try:
            text = self._texts[key]
        except KeyError:
            raise KeyError(f"no text {key!r} in the {self.locale!r} catalogue") from None
        return str(Markup(text).format(**values)) if values else text

    def count(self, key: str, n: int, /, **values: Any) -> str:
        """A counted phrase in its plural form, ``key.one`` or ``key.other`` by the CLDR rules
        (Chinese has only ``other``), ``{n}`` grouped by thousands: "1 answer", "1,200 answers"."""
        form = Locale.parse(PLURAL_LOCALES.get(self.locale, "en")).plural_form(abs(n))
        chosen = f"{key}.{form}" if f"{key}.{form}" in self._texts else f"{key}.other"
        return self(chosen, n=f"{n:,}", **values)

    def has(self, key: str) -> bool:
        return key in self._texts

    def plain(self, key: str, /, **values: Any) -> str:
        """The text without HTML escaping, for button labels and other plain-text places."""
        text = self._texts[key]
        return text.format(**values) if values else text


def translator(locale: str) -> Translator:
    return _translator(locale if locale in LOCALES else LOCALES[0])


@cache
def _translator(locale: str) -> Translator:
    return Translator(locale)


def labels(key: str) -> frozenset[str]:
    """The text of ``key`` in every locale: matches a reply-keyboard press in any language."""
    return frozenset(catalogue(locale)[key] for locale in LOCALES)
