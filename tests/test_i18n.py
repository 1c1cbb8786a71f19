"""The catalogues: zh and en say the same things, and every key the code asks for exists."""

from __future__ import annotations

import re
import string
import tomllib
from pathlib import Path

import pytest

from care.core.config import DEFAULT_CATEGORIES
from care.core.i18n import LOCALES, LOCALES_DIR, _flatten, catalogue, labels, translator
from care.core.timezones import PICKER_CITIES
from care.members.registration import MAX_AGE_YEARS
from storage.enums import ConsentKind

ROOT = Path(__file__).resolve().parent.parent
# t("key"), t.plain("key"), t.has("key"), labels("key"), translator(x)("key") — literal keys.
KEY_CALL = re.compile(
    r"""(?:\bt(?:\.plain|\.has)?|\blabels|\btranslator\([^()]*\))\(\s*["']([a-z0-9_]+(?:\.[a-z0-9_]+)+)["']"""
)


def _file_keys(path: Path) -> dict[str, str]:
    with path.open("rb") as handle:
        return _flatten(tomllib.load(handle))


def _placeholders(text: str) -> set[str]:
    return {field for _, field, _, _ in string.Formatter().parse(text) if field}


def _catalogue_files() -> list[str]:
    names = {path.name for locale in LOCALES for path in (LOCALES_DIR / locale).glob("*.toml")}
    return sorted(names)


@pytest.mark.parametrize("filename", _catalogue_files())
def test_every_catalogue_file_has_the_same_keys_in_every_language(filename: str) -> None:
    keys = {}
    for locale in LOCALES:
        path = LOCALES_DIR / locale / filename
        assert path.exists(), f"{locale}/{filename} is missing"
        keys[locale] = set(_file_keys(path))
    zh, en = keys["zh"], keys["en"]
    assert not en - zh, f"in en/{filename} but not zh: {sorted(en - zh)}"
    assert not zh - en, f"in zh/{filename} but not en: {sorted(zh - en)}"


def test_every_placeholder_is_used_in_both_languages() -> None:
    en, zh = catalogue("en"), catalogue("zh")
    mismatched = {
        key: (sorted(_placeholders(text)), sorted(_placeholders(zh[key])))
        for key, text in en.items()
        if key in zh and _placeholders(text) != _placeholders(zh[key])
    }
    assert not mismatched, f"placeholders differ (en, zh): {mismatched}"


def _source_files() -> list[Path]:
    return sorted(
        path
        for folder in ("handlers", "care", "bot")
        for path in (ROOT / folder).rglob("*.py")
        if "migrations" not in path.parts
    )


def test_every_key_the_code_asks_for_exists() -> None:
    known = set(catalogue("en"))
    missing = []
    found = 0
    for path in _source_files():
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for key in KEY_CALL.findall(line):
                found += 1
                if key not in known:
                    missing.append(f"{path.relative_to(ROOT)}:{number}: {key}")
    assert found > 100  # the pattern still matches how the code asks for texts
    assert not missing, "keys used in code but not in the catalogues:\n" + "\n".join(missing)


def test_the_key_pattern_sees_the_usual_spellings() -> None:
    sample = """t("a.b") t.plain('menu.card') labels("menu.offers") t(f"x.{y}") tt("no.no")"""
    assert KEY_CALL.findall(sample) == ["a.b", "menu.card", "menu.offers"]


def test_keys_built_at_run_time_exist() -> None:
    t = translator("en")
    built = [f"interest.{category}" for category in DEFAULT_CATEGORIES]
    built += [f"tz.city.{city.key}" for city in PICKER_CITIES]
    built += [f"mydata.consent_{kind}" for kind in ConsentKind]
    built += [f"reg.name_{r}" for r in ("empty", "too_long", "control", "command", "not_a_name")]
    built += [
        f"reg.birthday_{r}" for r in ("format", "impossible", "future", "too_young", "too_old")
    ]
    assert [key for key in built if not t.has(key)] == []
    assert str(MAX_AGE_YEARS) in t("reg.birthday_too_old")


def test_menu_labels_differ_between_buttons_and_match_in_any_language() -> None:
    keys = ["card", "offers", "points", "feedback", "invite", "settings", "help"]
    for locale in LOCALES:
        shown = [translator(locale).plain(f"menu.{key}") for key in keys]
        assert len(set(shown)) == len(shown), f"two menu buttons share a label in {locale}"
    assert labels("menu.card") == {"🪪 会员卡", "🪪 Member card"}
