"""Settings from the environment and ``.env`` (pydantic-settings).

Imports neither aiogram nor SQLAlchemy: every command loads settings first, and a command that
never talks to Telegram should start in a fraction of a second.
"""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from care.core.config import DEFAULT_CATEGORIES, CareConfig
from care.core.i18n import LOCALES
from care.core.money import minor_digits

TOKEN_RE = re.compile(r"^\d+:[A-Za-z0-9_-]+$")
QUIET_RE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)$")
SUPPORTED_DRIVERS = {"sqlite+aiosqlite", "postgresql+asyncpg"}
# The driver part of a URL as SQLAlchemy's make_url reads it; matched here so loading settings
# does not import SQLAlchemy (a quarter of a second), the engine checks the rest when it connects.
DRIVER_RE = re.compile(r"^(?P<driver>[\w+]+)://")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        case_sensitive=False,
    )

    bot_token: SecretStr | None = None
    database_url: str = "sqlite+aiosqlite:///./data/carebot.db"
    telegram_api_url: str = "https://api.telegram.org"
    admin_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    # "9001:en,9002:zh": the language of owners who have not written to the bot yet.
    admin_languages: Annotated[tuple[tuple[int, str], ...], NoDecode] = ()
    default_locale: Literal["zh", "en"] = "zh"
    default_timezone: str = "Asia/Shanghai"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    redis_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: SecretStr | None = None
    webhook_listen: str = Field(default="0.0.0.0:8080", pattern=r"^[^\s:]+:\d{1,5}$")
    metrics_listen: str | None = Field(default=None, pattern=r"^[^\s:]+:\d{1,5}$")

    shop_name: str = "carebot shop"
    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    shop_categories: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CATEGORIES
    points_per_unit: int = Field(default=1, ge=0, le=1000)
    large_purchase_confirm: int = Field(default=5000, ge=0, le=1_000_000)
    void_window_minutes: int = Field(default=30, ge=0, le=1440)
    quiet_hours: str = "21:00-09:00"
    marketing_cap: int = Field(default=2, ge=0, le=100)
    marketing_cap_days: int = Field(default=7, ge=1, le=365)
    holdout_pct: int = Field(default=10, ge=0, le=50)
    send_rate: float = Field(default=25.0, gt=0, le=1000)
    staff_chat_id: int | None = None
    # Told to a shopper who writes to the shop: when to expect an answer.
    opening_hours: str = Field(default="", max_length=200)
    care_rules_disabled: Annotated[frozenset[str], NoDecode] = frozenset()

    @field_validator("bot_token", mode="before")
    @classmethod
    def _token_shape(cls, value: object) -> object:
        if value in (None, ""):
            return None
        if not isinstance(value, str) or not TOKEN_RE.match(value.strip()):
            raise ValueError("must look like 123456:ABC-DEF… (the token @BotFather gave you)")
        return value.strip()

    @field_validator("admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            bad = [part for part in parts if not part.lstrip("-").isdigit()]
            if bad:
                raise ValueError(f"must be comma-separated Telegram user ids, not {bad[0]!r}")
            return frozenset(int(part) for part in parts)
        return value

    @field_validator("admin_languages", mode="before")
    @classmethod
    def _split_languages(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: list[tuple[int, str]] = []
        for part in (part.strip() for part in value.split(",") if part.strip()):
            user_id, _, language = part.partition(":")
            language = language.strip().lower()
            if not user_id.strip().lstrip("-").isdigit() or language not in LOCALES:
                raise ValueError(
                    f"must be comma-separated id:language pairs like 9001:en, not {part!r}"
                )
            pairs.append((int(user_id), language))
        return tuple(pairs)

    @field_validator("shop_categories", "care_rules_disabled", mode="before")
    @classmethod
    def _split_words(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("shop_categories")
    @classmethod
    def _categories_fit(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("needs at least one category")
        too_long = [c for c in value if len(c) > 32]
        if too_long:
            raise ValueError(f"category {too_long[0]!r} is longer than 32 characters")
        return value

    @field_validator("default_locale", mode="before")
    @classmethod
    def _lower_locale(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("default_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"{value!r} is not an IANA timezone name like Asia/Shanghai") from exc
        return value

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str) -> str:
        match = DRIVER_RE.match(value)
        if match is None:
            raise ValueError(f"{value!r} is not a database URL")
        driver = match["driver"]
        if driver == "postgresql":
            return value.replace("postgresql://", "postgresql+asyncpg://", 1)
        if driver == "sqlite":
            return value.replace("sqlite://", "sqlite+aiosqlite://", 1)
        if driver not in SUPPORTED_DRIVERS:
            raise ValueError(
                f"driver {driver!r} is not supported; use sqlite+aiosqlite:// or "
                "postgresql+asyncpg://"
            )
        return value

    @field_validator("telegram_api_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError("must be an http(s) URL such as https://api.telegram.org")
        return value.rstrip("/")

    @field_validator("quiet_hours")
    @classmethod
    def _quiet_shape(cls, value: str) -> str:
        if not QUIET_RE.match(value.strip()):
            raise ValueError("must be HH:MM-HH:MM, e.g. 21:00-09:00")
        return value.strip()

    @field_validator("webhook_url")
    @classmethod
    def _webhook_https(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^\s/]+(/\S*)?$", value):
            raise ValueError("must be the public https:// URL Telegram should post updates to")
        return value

    @field_validator("webhook_secret", mode="before")
    @classmethod
    def _secret_shape(cls, value: object) -> object:
        if isinstance(value, str) and not re.match(r"^[A-Za-z0-9_-]{16,256}$", value):
            raise ValueError("must be 16 to 256 letters, digits, _ or -")
        return value

    @model_validator(mode="after")
    def _webhook_needs_secret(self) -> Settings:
        if self.webhook_url and self.webhook_secret is None:
            raise ValueError(
                "WEBHOOK_SECRET must be set with WEBHOOK_URL (16+ letters, digits, _ or -)"
            )
        return self

    def quiet_window(self) -> tuple[time, time]:
        start, end = self.quiet_hours.split("-")
        return time.fromisoformat(start), time.fromisoformat(end)

    def care_config(self) -> CareConfig:
        quiet_start, quiet_end = self.quiet_window()
        return CareConfig(
            owner_ids=self.admin_ids,
            owner_locales=self.admin_languages,
            shop_name=self.shop_name,
            default_locale=self.default_locale,
            default_timezone=self.default_timezone,
            currency=self.currency,
            categories=self.shop_categories,
            points_per_unit=self.points_per_unit,
            large_purchase_minor=self.large_purchase_confirm * 10 ** minor_digits(self.currency),
            void_window_minutes=self.void_window_minutes,
            quiet_start=quiet_start,
            quiet_end=quiet_end,
            marketing_cap=self.marketing_cap,
            marketing_cap_days=self.marketing_cap_days,
            holdout_pct=self.holdout_pct,
            send_rate=self.send_rate,
            staff_chat_id=self.staff_chat_id,
            opening_hours=self.opening_hours.strip(),
            rules_disabled=self.care_rules_disabled,
        )


class SettingsError(Exception):
    """Start-up cannot go on: the message names the setting and what is wrong."""


def load_settings(**overrides: object) -> Settings:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"]).upper()
            message = error["msg"].removeprefix("Value error, ")
            lines.append(f"Setting {name}: {message}" if name else message)
        raise SettingsError("; ".join(lines)) from None
