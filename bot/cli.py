"""``carebot`` — the command line: run the bot, migrate the database, and the care/till tools."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from bot.logging_setup import setup_logging
from bot.settings import Settings, SettingsError, load_settings

if TYPE_CHECKING:
    from care.imports.csvfile import ImportReport

EXIT_CONFIG = 2
EXIT_STARTUP = 1
EXIT_REJECTED = 1  # an import finished but some lines were rejected

NO_TOKEN_HINT = (
    "carebot: BOT_TOKEN is not set — open Telegram, talk to @BotFather, send /newbot, "
    "and put the token it gives you in .env as BOT_TOKEN=123456:ABC…"
)

Command = Callable[[Settings, argparse.Namespace], int]
log = logging.getLogger("carebot")


def cmd_run(settings: Settings, _args: argparse.Namespace) -> int:
    if settings.bot_token is None:
        print(NO_TOKEN_HINT, file=sys.stderr)
        return EXIT_CONFIG
    from bot.token_check import TokenError, check_token

    try:  # before the imports below, so a wrong token answers at once: see bot/token_check.py
        me = check_token(settings.telegram_api_url, settings.bot_token.get_secret_value())
    except TokenError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    log.info("connected as @%s (id %s)", me.username, me.id)
    # aiogram and the whole bot are imported only once there is a token to run them with, and
    # with the garbage collector off: its full passes over the thousands of classes being made
    # cost about a sixth of the start-up; what start-up builds is kept for the process's life
    # anyway, and ``bot.app.run`` freezes it and turns the collector back on.
    gc.disable()
    from bot.lazy_schemas import defer_aiogram_schemas

    defer_aiogram_schemas()  # before aiogram's first import: see bot/lazy_schemas.py
    from bot.app import run
    from bot.startup import StartupError
    from care.core import eventloop

    try:
        eventloop.run(run(settings))
    except StartupError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    return 0


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from bot.startup import StartupError, check_database
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
    from bot.startup import StartupError, check_database
    from care.core.clock import Clock
    from care.imports.csvfile import ImportFileError, progress_bar, render_report
    from care.imports.members import import_members
    from care.imports.purchases import import_purchases
    from storage.db import create_engine, create_session_factory

    run_import = import_members if args.what == "members" else import_purchases

    async def _import() -> ImportReport:
        engine = create_engine(settings.database_url)
        try:
            await check_database(engine)
            return await run_import(
                create_session_factory(engine),
                settings.care_config(),
                Clock(),
                args.file,
                progress=progress_bar(sys.stderr, what=args.what),
                dry_run=args.dry_run,
            )
        finally:
            await engine.dispose()

    try:
        report = asyncio.run(_import())
    except (StartupError, ImportFileError) as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, ImportFileError) else EXIT_STARTUP
    print(render_report(report, "member" if args.what == "members" else "purchase"))
    return 0 if report.ok else EXIT_REJECTED


def cmd_care(settings: Settings, args: argparse.Namespace) -> int:
    if args.what == "backtest":
        return cmd_backtest(settings, args)
    if args.what == "refresh":
        return cmd_refresh(settings, args)
    from bot.startup import StartupError, check_database
    from care.automation.engine import plan
    from care.automation.report import render_plan, render_report, rule_report
    from care.automation.rules import get_rule
    from care.core.clock import Clock, FrozenClock
    from storage.db import create_engine, create_session_factory

    config = settings.care_config()
    if getattr(args, "rule", None):
        try:
            get_rule(args.rule)
        except KeyError as exc:
            print(f"carebot: {exc.args[0]}", file=sys.stderr)
            return EXIT_CONFIG

    async def _care() -> str:
        engine = create_engine(settings.database_url)
        try:
            await check_database(engine)
            factory = create_session_factory(engine)
            if args.what == "report":
                async with factory() as session:
                    results = await rule_report(session, Clock(), config, days=args.days)
                return render_report(results, config, args.days)
            clock: Clock = Clock()
            if args.at is not None:
                at = args.at
                if at.tzinfo is None:
                    at = at.replace(tzinfo=ZoneInfo(config.default_timezone))
                clock = FrozenClock(at)
            outcomes = await plan(factory, config, clock, only=args.rule)
            return render_plan(outcomes, clock.now(), config.default_timezone)
        finally:
            await engine.dispose()

    try:
        print(asyncio.run(_care()))
    except StartupError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    return 0


def cmd_deliver(settings: Settings, args: argparse.Namespace) -> int:
    """An extra sending worker beside the bot: the outbox drained with the bot's own settings."""
    if settings.bot_token is None:
        print(NO_TOKEN_HINT, file=sys.stderr)
        return EXIT_CONFIG
    from datetime import timedelta

    from bot.app import create_bot, create_limiter, create_services
    from bot.startup import StartupError, check_database
    from care.core import eventloop
    from care.messaging.delivery import DeliveryWorker
    from care.messaging.delivery.standalone import serve
    from care.messaging.ratelimit import close_limiter

    async def _deliver() -> str:
        services = create_services(settings)
        try:
            await check_database(services.engine)
            bot = create_bot(settings)
            limiter = create_limiter(settings, services.config)
            worker = DeliveryWorker(
                bot,
                services.session_factory,
                services.config,
                services.clock,
                limiter=limiter,
                batch_size=args.batch_size,
                lease=timedelta(seconds=args.lease_seconds) if args.lease_seconds else None,
            )
            try:
                await serve(worker, forever=args.forever)
            finally:
                await bot.session.close()
                await close_limiter(limiter)
            return str(worker.stats)
        finally:
            await services.engine.dispose()

    try:
        print(eventloop.run(_deliver()), flush=True)
    except StartupError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    return 0


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    import json

    from bot.startup import StartupError, check_database
    from care.console.backtest import BacktestError, render_backtest, run_backtest
    from care.core.clock import Clock
    from storage.db import create_engine, create_session_factory

    config = settings.care_config()
    holdout_until = args.holdout_until or Clock().now().astimezone(
        ZoneInfo(config.default_timezone)
    ).date() - timedelta(days=1)

    async def _backtest() -> str:
        engine = create_engine(settings.database_url)
        try:
            await check_database(engine)
            report = await run_backtest(
                create_session_factory(engine),
                config,
                until=args.until,
                holdout_until=holdout_until,
            )
        finally:
            await engine.dispose()
        return json.dumps(report.to_json()) if args.json else render_backtest(report)

    try:
        print(asyncio.run(_backtest()))
    except (StartupError, BacktestError) as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(exc, BacktestError) else EXIT_STARTUP
    return 0


def cmd_refresh(settings: Settings, _args: argparse.Namespace) -> int:
    from bot.startup import StartupError, check_database
    from care.core.clock import Clock
    from care.core.formatting import plural_form
    from care.segments.refresh import refresh_segments
    from care.value.refresh import refresh_value
    from storage.db import create_engine, create_session_factory

    async def _refresh() -> str:
        engine = create_engine(settings.database_url)
        try:
            await check_database(engine)
            factory = create_session_factory(engine)
            # The value model first: where it scores a member, their value tier follows it.
            value = await refresh_value(factory, Clock(), settings.care_config())
            segments = await refresh_segments(factory, settings.care_config(), Clock())
        finally:
            await engine.dispose()
        changes = "change" if plural_form(segments.stage_changes, "en") == "one" else "changes"
        lines = [
            f"segments: {segments.members:,} members, {segments.stage_changes:,} stage "
            f"{changes}, {segments.members_changed:,} updated in {segments.seconds:.1f} s",
        ]
        if value.fitted and value.bgnbd is not None:
            lines.append(
                f"customer value: {value.customers:,} members with purchases scored in "
                f"{value.seconds:.1f} s; {value.expected_purchases_30d:,.0f} purchases expected "
                "in the next 30 days"
            )
        else:
            lines.append(
                f"customer value: not fitted ({value.customers:,} members with purchases; "
                "the model needs at least 50)"
            )
        if (choice := value.signal_choice) is not None:
            scores = ", ".join(
                f"{name} {'–' if auc is None else f'{auc:.3f}'}"
                for name, auc in choice.aucs.items()
            )
            why = (
                "the best AUC on your history"
                if choice.reason == "backtest"
                else "the default: too little history to compare the signals"
            )
            lines.append(
                f"churn signal: {choice.signal} ({why}; {choice.customers:,} customers before "
                f"{choice.cutoff}, {choice.returners:,} came back; AUC {scores})"
            )
        return "\n".join(lines)

    try:
        print(asyncio.run(_refresh()))
    except StartupError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    return 0


def cmd_export(settings: Settings, args: argparse.Namespace) -> int:
    from bot.startup import StartupError, check_database
    from care.console.exports import export_filename, write_export
    from care.core.clock import Clock
    from care.core.formatting import plural_form
    from storage.db import create_engine, create_session_factory

    config = settings.care_config()
    output: Path = args.output or Path(
        export_filename(args.table, args.format, config, Clock().now())
    )

    async def _export() -> int:
        engine = create_engine(settings.database_url)
        try:
            await check_database(engine)
            async with create_session_factory(engine)() as session:
                with output.open("wb") as handle:
                    return await write_export(session, config, args.table, args.format, handle)
        finally:
            await engine.dispose()

    try:
        rows = asyncio.run(_export())
    except StartupError as exc:
        print(f"carebot: {exc}", file=sys.stderr)
        return EXIT_STARTUP
    except OSError as exc:
        print(f"carebot: cannot write {output}: {exc.strerror}", file=sys.stderr)
        return EXIT_CONFIG
    noun = "row" if plural_form(rows, "en") == "one" else "rows"
    print(f"carebot: {rows:,} {noun} of {args.table} written to {output}")
    return 0


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2026-03-02") from None


def _moment(text: str) -> datetime:
    """``2026-03-02 10:00``; without an offset it is read in the shop's time zone later."""
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date and time like 2026-03-02T10:00"
        ) from None


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Command]]:
    parser = argparse.ArgumentParser(
        prog="carebot", description="A Telegram bot that helps a retail shop keep its customers."
    )
    commands: dict[str, Command] = {}
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    sub.add_parser(
        "run", help="migrate the database and run the bot (by webhook when WEBHOOK_URL is set)"
    )
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
    members_parser = import_sub.add_parser(
        "members",
        help="the shop's existing customer list: phone, name, birthday, points (see the README)",
    )
    members_parser.add_argument("file", type=Path, help="the CSV file")
    members_parser.add_argument(
        "--dry-run", action="store_true", help="check every line and report; save nothing"
    )
    commands["import"] = cmd_import

    care_parser = sub.add_parser("care", help="the care rules: dry run and effect report")
    care_sub = care_parser.add_subparsers(dest="what", metavar="WHAT", required=True)
    dry_run = care_sub.add_parser(
        "dry-run", help="print who would get which care message now; send and save nothing"
    )
    dry_run.add_argument("--rule", help="only this rule (e.g. birthday)")
    dry_run.add_argument(
        "--at",
        type=_moment,
        help="pretend it is this time (shop time zone), e.g. 2026-03-02T10:00",
    )
    report = care_sub.add_parser(
        "report", help="per rule: sent, held out, conversions and uplift against the holdout"
    )
    report.add_argument("--days", type=int, default=90, help="period in days (default 90)")
    care_sub.add_parser(
        "refresh", help="refresh segments and the customer-value model now (the hourly job)"
    )
    backtest = care_sub.add_parser(
        "backtest",
        help="fit the value model on the history up to a date and check it on what came after",
    )
    backtest.add_argument(
        "--until", type=_day, required=True, help="last day of the fitting period (YYYY-MM-DD)"
    )
    backtest.add_argument(
        "--holdout-until", type=_day, help="last day of the holdout period (default: yesterday)"
    )
    backtest.add_argument("--json", action="store_true", help="print one JSON object")
    commands["care"] = cmd_care

    deliver = sub.add_parser(
        "deliver", help="send what the outbox holds, beside the bot (an extra sending worker)"
    )
    deliver.add_argument("--forever", action="store_true", help="keep sending until stopped")
    deliver.add_argument("--batch-size", type=int, help="rows claimed at once (default: by rate)")
    deliver.add_argument("--lease-seconds", type=float, help="how long a claim is held")
    commands["deliver"] = cmd_deliver

    export_parser = sub.add_parser(
        "export", help="export members, purchases, feedback or surveys (as /export does)"
    )
    export_parser.add_argument("table", choices=["members", "purchases", "feedback", "surveys"])
    export_parser.add_argument("--format", choices=["csv", "xlsx"], default="csv")
    export_parser.add_argument(
        "--output", type=Path, help="the file to write (default: carebot-TABLE-STAMP.FORMAT)"
    )
    commands["export"] = cmd_export

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
