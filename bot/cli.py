"""``carebot`` — the command line: run the bot, migrate the database, and the care/till tools."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bot.logging_setup import setup_logging
from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from care.importer import ImportReport

EXIT_CONFIG = 2
EXIT_STARTUP = 1
EXIT_REJECTED = 1  # an import finished but some lines were rejected

NO_TOKEN_HINT = (
    "carebot: BOT_TOKEN is not set — open Telegram, talk to @BotFather, send /newbot, "
    "and put the token it gives you in .env as BOT_TOKEN=123456:ABC…"
)

Command = Callable[[Settings, argparse.Namespace], int]


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.app import StartupError, run

    if settings.bot_token is None:
        print(NO_TOKEN_HINT, file=sys.stderr)
        return EXIT_CONFIG
    try:
        asyncio.run(run(settings))
    except StartupError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import StartupError, check_database
    from storage import migrate
    from storage.db import create_engine

    async def _migrate() -> None:
        engine = create_engine(settings.database_url)
        try:
            await check_database(engine)
            await migrate.upgrade(engine, args.revision)
        finally:
            await engine.dispose()

    try:
        asyncio.run(_migrate())
    except StartupError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    print(f"carebot: database is at revision {args.revision}")
    return 0


def cmd_import(settings: Settings, args: argparse.Namespace) -> int:
    from bot.app import StartupError, check_database
    from care.clock import Clock
    from care.importer import ImportFileError, import_purchases, progress_bar, render_report
    from storage.db import create_engine, create_session_factory

    async def _import() -> ImportReport:
        engine = create_engine(settings.database_url)
        try:
            await check_database(engine)
            return await import_purchases(
                create_session_factory(engine),
                settings.care_config(),
                Clock(),
                args.file,
                progress=progress_bar(sys.stderr),
                dry_run=args.dry_run,
            )
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(_import())
    except (StartupError, ImportFileError) as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, ImportFileError) else EXIT_STARTUP
    print(render_report(report))
    return 0 if report.ok else EXIT_REJECTED


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(
        prog="carebot", description="A Telegram bot that helps a retail shop keep its customers."
    )
    commands: dict[str, Command] = {}
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser("run", help="migrate the database and run the bot (long polling)")
    commands["run"] = cmd_run

    migrate_parser = sub.add_parser("migrate", help="bring the database schema up to date")
    migrate_parser.add_argument("revision", nargs="?", default="head")
    commands["migrate"] = cmd_migrate

    import_parser = sub.add_parser("import", help="import data from other systems")
    import_sub = import_parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    purchases_parser = import_sub.add_parser(
        "purchases", help="purchases from the till's CSV export (see the README for columns)"
    )
    purchases_parser.add_argument("file", type=Path, help="the CSV file")
    purchases_parser.add_argument(
        "--dry-run", action="store_true", help="check every line and report; save nothing"
    )
    commands["import"] = cmd_import

    return parser, commands


def main(argv: Sequence[str] | None = None) -> int:
    parser, commands = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    setup_logging(settings.log_level)
    return commands[args.command](settings, args)
