"""Settings: defaults, parsing, and one clear message naming a bad setting."""

from __future__ import annotations

from datetime import time
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings


def test_defaults_are_a_working_single_shop_setup() -> None:
    settings = load_settings(_env_file=None)
    assert settings.database_url == "sqlite+aiosqlite:///./data/carebot.db"
    assert settings.telegram_api_url == "https://api.telegram.org"
    assert settings.default_locale == "zh"
    assert settings.default_timezone == "Asia/Shanghai"
    assert settings.bot_token is None
    config = settings.care_config()
    assert (config.quiet_start, config.quiet_end) == (time(21), time(9))
    assert config.marketing_cap == 2 and config.marketing_cap_days == 7


def test_values_are_parsed_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123:abc")
    monkeypatch.setenv("ADMIN_IDS", " 11, 22 ,33")
    monkeypatch.setenv("DEFAULT_LOCALE", "EN")
    monkeypatch.setenv("SHOP_CATEGORIES", "tea, cakes")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/shop")
    monkeypatch.setenv("TELEGRAM_API_URL", "http://127.0.0.1:8081/")
    settings = load_settings(_env_file=None)
    assert settings.bot_token is not None
    assert settings.bot_token.get_secret_value() == "123:abc"
    assert settings.admin_ids == frozenset({11, 22, 33})
    assert settings.default_locale == "en"
    assert settings.shop_categories == ("tea", "cakes")
    assert settings.database_url == "postgresql+asyncpg://u@db/shop"
    assert settings.telegram_api_url == "http://127.0.0.1:8081"
    assert settings.care_config().owner_ids == frozenset({11, 22, 33})


def test_owners_may_be_given_a_language_before_they_write(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADMIN_IDS", "11,22")
    monkeypatch.setenv("ADMIN_LANGUAGES", " 11:EN , 22:zh")
    config = load_settings(_env_file=None).care_config()
    assert (config.owner_locale(11), config.owner_locale(22), config.owner_locale(33)) == (
        "en",
        "zh",
        None,
    )


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("BOT_TOKEN", "not-a-token", "BotFather"),
        ("ADMIN_IDS", "12,bob", "'bob'"),
        ("ADMIN_LANGUAGES", "12:fr", "'12:fr'"),
        ("ADMIN_LANGUAGES", "en", "id:language"),
        ("DEFAULT_LOCALE", "fr", "zh"),
        ("DEFAULT_TIMEZONE", "Mars/Olympus", "IANA"),
        ("DATABASE_URL", "mysql://x@y/z", "not supported"),
        ("DATABASE_URL", "::::", "not a database URL"),
        ("TELEGRAM_API_URL", "ftp://x", "http"),
        ("LOG_LEVEL", "LOUD", "DEBUG"),
        ("QUIET_HOURS", "9pm-9am", "HH:MM"),
        ("SEND_RATE", "5000", "1000"),
    ],
)
def test_a_bad_value_names_the_setting_and_the_problem(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as caught:
        load_settings(_env_file=None)
    message = str(caught.value)
    assert message.startswith(f"Setting {name}:")
    assert says in message
    assert "\n" not in message


def test_the_example_env_file_loads_and_documents_every_setting(
    project_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = (project_root / ".env.example").read_text()
    (tmp_path / ".env").write_text(example.replace("BOT_TOKEN=\n", "BOT_TOKEN=1:abc\n"))
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.bot_token is not None
    documented = {line.split("=")[0] for line in example.splitlines() if "=" in line[:40]}
    documented = {name for name in documented if not name.startswith("#")}
    assert {name.upper() for name in Settings.model_fields} == documented
