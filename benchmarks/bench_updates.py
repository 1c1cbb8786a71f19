"""Updates benchmark: the real ``carebot run`` process beside a plain aiogram + SQLAlchemy bot.

Both bots run as their own processes against one fake Bot API served by this driver, on the same
database full of registered members: in webhook mode (the driver posts each update to the bot)
and in long polling mode (the driver answers ``getUpdates``), on SQLite and on PostgreSQL (when a
server answers on 127.0.0.1:5432). An update is done when the bot's reply to that chat reaches
the fake API; its latency runs from the moment the update was offered.

For each of ``/points``, ``/card`` and the menu's help button, ``--concurrency`` updates are kept
in flight (each from a different member) until ``--updates`` have been answered, on carebot and
on the anchor taking turns in ``--rounds`` rounds (carebot first, then the anchor first, ...;
the anchor is ``benchmarks.anchor_bot``: one session, one SELECT, one reply). Printed:
updates/s, p50/p95/p99 latency, CPU per update of the bot process (from /proc) and of this
driver, carebot's ratio to the anchor, and the machine's load. Then carebot alone at a fixed
offered load (``--rate``, 50 updates/s, the three kinds in turn) for its p99. Also printed:
how long ``carebot run`` took from launch to taking updates.

``/card`` is measured as a returning member's card: before it, every member asks once (printed
as "first /card", not a target), so carebot sends the image by the ``file_id`` Telegram gave it
and computes the caption (tier, points, progress) afresh; the anchor answers with a line of text.

Before all that, ``carebot run`` is launched with no ``BOT_TOKEN`` and with a token the fake API
refuses (401), and timed to its one-line answer.

Targets: carebot ≥ 1.0× the anchor's updates/s for every kind, mode and database; p99 ≤ 100 ms
at 50 updates/s; ready to take updates ≤ 3 s after launch; a missing or refused token answered
≤ 1 s after launch (after a first run: the bench compiles the modules first).

Run: ``python -m benchmarks.bench_updates [--quick] [--db sqlite|postgres]
[--mode webhook|polling]`` or ``python -m benchmarks.run updates``.
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import itertools
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import create_async_engine

from benchmarks.load import load_text
from care.core.i18n import translator
from storage import migrate
from storage.db import create_engine
from storage.models import Member

ROOT = Path(__file__).resolve().parent.parent
PG_BASE = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
CAREBOT_TOKEN = "111111:CAREBOT-bench"
ANCHOR_TOKEN = "222222:ANCHOR-bench"
SECRET = "bench-secret-0123456789"
FIRST_USER = 7_000_000
REFUSED_TOKEN = "333333:REFUSED-bench"  # the fake API answers 401 to it, as Telegram would
TARGET_RATIO = 1.0
TARGET_P99_MS = 100.0
TARGET_READY_S = 3.0  # launch to taking updates
TARGET_ANSWER_S = 1.0  # launch to the one line about a missing or refused token
REPLY_TIMEOUT = 15.0
KINDS: tuple[tuple[str, str], ...] = (
    ("/points", "/points"),
    ("/card", "/card"),
    ("menu button", translator("zh").plain("menu.help")),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU of one process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------ the fake Bot API


@dataclass
class BotLine:
    """What the fake API keeps per bot token."""

    pending: list[dict[str, Any]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: dict[int, asyncio.Future[float]] = field(default_factory=dict)
    polled: asyncio.Event = field(default_factory=asyncio.Event)
    webhook_set: asyncio.Event = field(default_factory=asyncio.Event)
    webhook: str | None = None
    stray: int = 0


class FakeBotAPI:
    """Just enough of the Bot API for both bots: replies resolve the sender's pending update."""

    def __init__(self) -> None:
        self.lines: dict[str, BotLine] = {}
        self.port = free_port()
        self._runner: web.AppRunner | None = None
        self._message_id = itertools.count(1)
        self._file_id = itertools.count(1)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def line(self, token: str) -> BotLine:
        return self.lines.setdefault(token, BotLine())

    async def start(self) -> None:
        app = web.Application(client_max_size=32 * 1024 * 1024)
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        token = request.match_info["token"]
        method = request.match_info["method"].lower()
        if token == REFUSED_TOKEN:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        params: dict[str, Any]
        if request.content_type == "application/json":  # carebot's calls (bot/api_session.py)
            params = await request.json(loads=orjson.loads)
        else:  # aiogram's forms: the anchor's calls, and uploads
            params = dict(await request.post())
        line = self.line(token)
        result: Any = True
        if method == "getme":
            result = {
                "id": int(token.split(":")[0]),
                "is_bot": True,
                "first_name": "bench",
                "username": f"bench{token.split(':')[0]}_bot",
            }
        elif method == "getupdates":
            result = await self._get_updates(line, params)
        elif method == "setwebhook":
            line.webhook = str(params.get("url"))
            line.webhook_set.set()
        elif method == "deletewebhook":
            line.webhook = None
        elif method in {"sendmessage", "sendphoto"}:
            chat_id = int(str(params["chat_id"]))
            waiter = line.waiting.pop(chat_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(time.perf_counter())
            else:
                line.stray += 1
            result = {
                "message_id": next(self._message_id),
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "text": "ok",
            }
            if method == "sendphoto":
                result["photo"] = [self._photo(params.get("photo"))]
        return web.json_response({"ok": True, "result": result})

    def _photo(self, sent: Any) -> dict[str, Any]:
        """A photo as Telegram describes it: an upload gets a new file_id, a file_id stays."""
        if isinstance(sent, str) and sent:
            file_id = sent
        else:
            file_id = f"BENCHPHOTO{next(self._file_id):09d}"
        return {"file_id": file_id, "file_unique_id": file_id[-12:], "width": 400, "height": 400}

    async def _get_updates(self, line: BotLine, params: dict[str, Any]) -> list[dict[str, Any]]:
        line.polled.set()
        offset = int(str(params.get("offset") or 0))
        line.pending = [u for u in line.pending if u["update_id"] >= offset]
        if not line.pending:
            line.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(line.arrived.wait(), float(str(params.get("timeout") or 0)))
        batch = line.pending[:100]
        return batch


# ------------------------------------------------------------------ the driver


@dataclass
class Figures:
    done: int
    failed: int
    seconds: float
    latencies: list[float]
    cpu: float
    driver_cpu: float = 0.0  # this process's: the driver and the fake Bot API

    @classmethod
    def combined(cls, runs: list[Figures]) -> Figures:
        """Several measuring rounds of one bot as one figure."""
        return cls(
            sum(run.done for run in runs),
            sum(run.failed for run in runs),
            sum(run.seconds for run in runs),
            [latency for run in runs for latency in run.latencies],
            sum(run.cpu for run in runs),
            sum(run.driver_cpu for run in runs),
        )

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    @property
    def cpu_ms(self) -> float:
        return self.cpu / self.done * 1000 if self.done else float("nan")

    @property
    def driver_cpu_ms(self) -> float:
        return self.driver_cpu / self.done * 1000 if self.done else float("nan")


class Driver:
    """Offers updates to one bot (webhook post or polling queue) and waits for the replies."""

    def __init__(self, api: FakeBotAPI, token: str, members: int, http: ClientSession) -> None:
        self.api = api
        self.token = token
        self.line = api.line(token)
        self.users = itertools.cycle(range(FIRST_USER, FIRST_USER + members))
        self.http = http
        self._update_id = itertools.count(1)

    def _update(self, user_id: int, text: str) -> dict[str, Any]:
        update_id = next(self._update_id)
        message: dict[str, Any] = {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": user_id, "type": "private", "first_name": "M"},
            "from": {"id": user_id, "is_bot": False, "first_name": "M", "language_code": "zh"},
            "text": text,
        }
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
        return {"update_id": update_id, "message": message}

    async def one(self, text: str) -> float | None:
        """Offer one update from the next member; its latency in seconds, None if unanswered."""
        user_id = next(self.users)
        previous = self.line.waiting.get(user_id)
        if previous is not None:  # this member's last update is still out: wait for it
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(previous), REPLY_TIMEOUT)
        reply: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.line.waiting[user_id] = reply
        update = self._update(user_id, text)
        offered = time.perf_counter()
        if self.line.webhook:
            async with self.http.post(
                self.line.webhook,
                json=update,
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET},
            ) as response:
                if response.status != 200:
                    self.line.waiting.pop(user_id, None)
                    return None
        else:
            self.line.pending.append(update)
            self.line.arrived.set()
        try:
            answered = await asyncio.wait_for(reply, REPLY_TIMEOUT)
        except TimeoutError:
            self.line.waiting.pop(user_id, None)
            return None
        return answered - offered

    async def closed_loop(self, text: str, updates: int, concurrency: int, pid: int) -> Figures:
        """``concurrency`` updates in flight until ``updates`` were answered."""
        latencies: list[float] = []
        failed = 0
        left = itertools.count()

        async def worker() -> None:
            nonlocal failed
            while next(left) < updates:
                latency = await self.one(text)
                if latency is None:
                    failed += 1
                else:
                    latencies.append(latency)

        cpu_before, driver_before = cpu_seconds(pid), time.process_time()
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        return Figures(
            len(latencies), failed, seconds, latencies, cpu, time.process_time() - driver_before
        )

    async def open_loop(self, texts: list[str], rate: float, seconds: float, pid: int) -> Figures:
        """Updates offered at a fixed ``rate`` whatever the bot does, for ``seconds``."""
        latencies: list[float] = []
        failed = 0
        tasks: list[asyncio.Task[float | None]] = []
        cpu_before, driver_before = cpu_seconds(pid), time.process_time()
        started = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = started + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self.one(texts[n % len(texts)])))
        for latency in await asyncio.gather(*tasks):
            if latency is None:
                failed += 1
            else:
                latencies.append(latency)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(pid) - cpu_before
        return Figures(
            len(latencies), failed, elapsed, latencies, cpu, time.process_time() - driver_before
        )


# ------------------------------------------------------------------ databases and processes


@contextlib.asynccontextmanager
async def bench_database(kind: str, workdir: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite+aiosqlite:///{workdir / 'updates.db'}"
        return
    name = f"carebot_bench_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(PG_BASE, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield PG_BASE.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as connection:
            await connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.dispose()


def postgres_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), 1).close()
    except OSError:
        return False
    return True


async def seed(url: str, members: int) -> None:
    """The schema by the real migrations, then ``members`` registered members."""
    engine = create_engine(url)
    try:
        await migrate.upgrade(engine)
        now = datetime.now(UTC)
        rows = [
            {
                "telegram_id": FIRST_USER + n,
                "chat_id": FIRST_USER + n,
                "member_code": f"B{n:07d}",
                "status": "active",
                "name": f"Member {n}",
                "locale": "zh",
                "timezone": "Asia/Shanghai",
                "points_balance": n % 500,
                "profile_consent_at": now,
                "created_at": now,
                "registered_at": now,
            }
            for n in range(members)
        ]
        async with engine.begin() as connection:
            for start in range(0, len(rows), 5000):
                await connection.execute(insert(Member), rows[start : start + 5000])
    finally:
        await engine.dispose()


def carebot_command(profile: str | None = None) -> list[str]:
    if profile:
        return [sys.executable, "-m", "cProfile", "-o", profile, "-m", "bot", "run"]
    script = Path(sys.executable).with_name("carebot")
    return [str(script), "run"] if script.exists() else [sys.executable, "-m", "bot", "run"]


@dataclass
class BotProcess:
    name: str
    process: asyncio.subprocess.Process
    ready_seconds: float
    settled_seconds: float = 0.0

    @property
    def pid(self) -> int:
        return self.process.pid


async def settle(pid: int, quiet: float = 0.1, longest: float = 40.0) -> float:
    """Wait until the process has been nearly idle (under ``quiet`` of a core) for a second.

    carebot's scheduler starts its first segment refresh and rule pass a second or two after
    launch; measured beside them, the first figures would be the refresh's, not the updates'.
    They then run again at their intervals (the rule pass each minute). Returns the seconds waited.
    """
    started = time.perf_counter()
    await asyncio.sleep(0.5)
    while time.perf_counter() - started < longest:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before < quiet:
            break
    return time.perf_counter() - started


@contextlib.asynccontextmanager
async def launched(
    name: str, command: list[str], env: dict[str, str], line: BotLine, webhook: bool, log: Path
) -> AsyncIterator[BotProcess]:
    line.polled.clear()
    line.webhook_set.clear()
    with log.open("ab") as out:
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *command, env=env, cwd=log.parent, stdout=out, stderr=out
        )
    ready = line.webhook_set if webhook else line.polled
    try:
        waiting = asyncio.create_task(ready.wait())
        exited = asyncio.create_task(process.wait())
        await asyncio.wait({waiting, exited}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        exited.cancel()
        if not waiting.done():
            waiting.cancel()
            raise RuntimeError(f"{name} did not start within 60 s; see {log}")
        running = BotProcess(name, process, time.perf_counter() - started)
        running.settled_seconds = await settle(process.pid)
        yield running
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
                await process.wait()


# ------------------------------------------------------------------ the run


@dataclass
class Outcome:
    lines: list[str] = field(default_factory=list)
    missed: list[str] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(text, flush=True)
        self.lines.append(text)


def row(label: str, figures: Figures) -> str:
    failed = f", {figures.failed} unanswered" if figures.failed else ""
    return (
        f"  {label:<22} {figures.rate:7.1f} upd/s  p50 {figures.percentile(0.50):6.1f} ms  "
        f"p95 {figures.percentile(0.95):6.1f} ms  p99 {figures.percentile(0.99):6.1f} ms  "
        f"CPU {figures.cpu_ms:5.2f} ms/upd (driver {figures.driver_cpu_ms:4.2f}){failed}  "
        f"{load_text()}"
    )


async def bench_pair(
    api: FakeBotAPI, db: str, mode: str, url: str, args: argparse.Namespace, out: Outcome
) -> None:
    webhook = mode == "webhook"
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-updates-{db}-{mode}-"))
    carebot_port, anchor_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key in {"PATH", "HOME", "LANG", "LC_ALL", "PYTHONPATH", "TZ"}
    }
    carebot_env = {
        **env,
        "BOT_TOKEN": CAREBOT_TOKEN,
        "DATABASE_URL": url,
        "TELEGRAM_API_URL": api.base_url,
        "ADMIN_IDS": "1",
        "LOG_LEVEL": "WARNING",
    }
    anchor_cmd = [
        sys.executable, "-m", "benchmarks.anchor_bot",
        "--db", url, "--api", api.base_url, "--token", ANCHOR_TOKEN, "--secret", SECRET,
    ]  # fmt: skip
    if webhook:
        carebot_env.update(
            WEBHOOK_URL=f"http://127.0.0.1:{carebot_port}/tg",
            WEBHOOK_SECRET=SECRET,
            WEBHOOK_LISTEN=f"127.0.0.1:{carebot_port}",
        )
        anchor_cmd += ["--webhook", f"http://127.0.0.1:{anchor_port}/tg"]
        anchor_cmd += ["--listen", f"127.0.0.1:{anchor_port}"]
    anchor_env = {**env, "PYTHONPATH": str(ROOT)}
    connector = TCPConnector(limit=args.concurrency * 2)
    async with (
        ClientSession(connector=connector, timeout=ClientTimeout(total=30)) as http,
        launched(
            "carebot", carebot_command(args.profile), carebot_env, api.line(CAREBOT_TOKEN),
            webhook, workdir / "carebot.log",
        ) as carebot,
        launched(
            "anchor", anchor_cmd, anchor_env, api.line(ANCHOR_TOKEN), webhook,
            workdir / "anchor.log",
        ) as anchor,
    ):  # fmt: skip
        ready = "ok" if carebot.ready_seconds <= TARGET_READY_S else "MISSED"
        out.say(
            f"\n{db}, {mode}: carebot ready {carebot.ready_seconds:.2f} s after launch (target "
            f"≤ {TARGET_READY_S:.0f} s) {ready}; its start-up jobs done "
            f"{carebot.settled_seconds:.1f} s later  {load_text()}"
        )
        if ready != "ok":
            out.missed.append(f"{db} {mode} ready after {carebot.ready_seconds:.2f} s")
        drivers = {
            "carebot": (Driver(api, CAREBOT_TOKEN, args.members, http), carebot.pid),
            "anchor": (Driver(api, ANCHOR_TOKEN, args.members, http), anchor.pid),
        }
        for kind, text in KINDS:
            for name, (driver, pid) in drivers.items():
                if kind == "/card":
                    # Every member's first card: carebot draws and uploads the image; the
                    # measured figure below is the card of a member who asked before (the
                    # image sent by the file_id Telegram gave it). Printed, not a target.
                    first = await driver.closed_loop(text, args.members, args.concurrency, pid)
                    out.say(row(f"first {kind} {name}", first))
                await driver.closed_loop(text, args.warmup, args.concurrency, pid)
            # The two bots take turns in short rounds (ABBA...), so a change in the shared
            # machine's load falls on both alike instead of on whichever ran second.
            parts: dict[str, list[Figures]] = {name: [] for name in drivers}
            share = max(1, args.updates // args.rounds)
            for turn in range(args.rounds):
                order = list(drivers) if turn % 2 == 0 else list(reversed(drivers))
                for name in order:
                    driver, pid = drivers[name]
                    parts[name].append(
                        await driver.closed_loop(text, share, args.concurrency, pid)
                    )
            figures = {name: Figures.combined(runs) for name, runs in parts.items()}
            for name in drivers:
                out.say(row(f"{kind} {name}", figures[name]))
            ratio = figures["carebot"].rate / figures["anchor"].rate
            verdict = "ok" if ratio >= TARGET_RATIO and not figures["carebot"].failed else "MISSED"
            out.say(f"  {kind} carebot / anchor: {ratio:.2f}x (target ≥ {TARGET_RATIO}) {verdict}")
            if verdict != "ok":
                out.missed.append(f"{db} {mode} {kind} ratio {ratio:.2f}")
        driver, pid = drivers["carebot"]
        texts = [text for _kind, text in KINDS]
        steady = await driver.open_loop(texts, args.rate, args.seconds, pid)
        out.say(row(f"carebot at {args.rate:.0f}/s", steady))
        p99 = steady.percentile(0.99)
        verdict = "ok" if p99 <= TARGET_P99_MS and not steady.failed else "MISSED"
        out.say(f"  p99 at {args.rate:.0f} updates/s: {p99:.1f} ms (target ≤ {TARGET_P99_MS:.0f}) "
                f"{verdict}")  # fmt: skip
        if verdict != "ok":
            out.missed.append(f"{db} {mode} p99 {p99:.1f} ms at {args.rate:.0f}/s")
        strays = api.line(CAREBOT_TOKEN).stray
        if strays:
            out.say(f"  (carebot sent {strays} messages nobody waited for)")
    shutil.rmtree(workdir, ignore_errors=True)


async def answer_seconds(env: dict[str, str]) -> tuple[float, int, str]:
    """How long ``carebot run`` takes to exit with its one line, its exit code and the line."""
    started = time.perf_counter()
    process = await asyncio.create_subprocess_exec(
        *carebot_command(), env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    _stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    lines = stderr.decode(errors="replace").strip().splitlines()
    return time.perf_counter() - started, process.returncode or 0, lines[-1] if lines else ""


async def startup_answers(api: FakeBotAPI, out: Outcome) -> None:
    """A missing token and a token the Bot API refuses: each one line within a second."""
    env = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "LANG"}}
    workdir = Path(tempfile.mkdtemp(prefix="bench-updates-start-"))
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{workdir / 'start.db'}"
    refused = {**env, "BOT_TOKEN": REFUSED_TOKEN, "TELEGRAM_API_URL": api.base_url}
    cases = [("no BOT_TOKEN", env), ("a refused BOT_TOKEN", refused)]
    out.say("\nstart-up answers (after a first run: compiled modules in place)")
    for label, case in cases:
        seconds, code, line = await answer_seconds(case)
        verdict = "ok" if seconds <= TARGET_ANSWER_S and code != 0 else "MISSED"
        out.say(
            f"  {label:<20} {seconds:5.2f} s, exit {code} (target ≤ {TARGET_ANSWER_S:.0f} s) "
            f"{verdict}  {load_text()}\n    {line}"
        )
        if verdict != "ok":
            out.missed.append(f"{label} answered after {seconds:.2f} s (exit {code})")
    shutil.rmtree(workdir, ignore_errors=True)


async def run(args: argparse.Namespace) -> int:
    out = Outcome()
    # "After its first run": the modules are compiled, as any second launch finds them.
    compileall.compile_dir(ROOT / "bot", quiet=1)
    for package in ("care", "handlers", "storage"):
        compileall.compile_dir(ROOT / package, quiet=1)
    databases = [args.db] if args.db else ["sqlite", "postgres"]
    modes = [args.mode] if args.mode else ["webhook", "polling"]
    out.say(
        f"{args.members} registered members, {args.concurrency} in flight, {args.updates} "
        f"updates per figure after {args.warmup} to warm up; {load_text()}"
    )
    api = FakeBotAPI()
    await api.start()
    try:
        await startup_answers(api, out)
        for db in databases:
            if db == "postgres" and not postgres_answers():
                out.say("\npostgres: no server on 127.0.0.1:5432, skipped")
                continue
            workdir = Path(tempfile.mkdtemp(prefix="bench-updates-db-"))
            try:
                async with bench_database(db, workdir) as url:
                    await seed(url, args.members)
                    for mode in modes:
                        await bench_pair(api, db, mode, url, args, out)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    finally:
        await api.stop()
    if out.missed:
        print(f"\ntargets missed: {'; '.join(out.missed)}", flush=True)
        return 1
    print("\nevery updates target met", flush=True)
    return 0


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--updates", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=8, help="turns each bot takes per kind")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--db", choices=["sqlite", "postgres"])
    parser.add_argument("--mode", choices=["webhook", "polling"])
    parser.add_argument("--profile", help="write a cProfile of the carebot process here")
    parser.add_argument("--quick", action="store_true", help="fewer updates, to iterate")
    args = parser.parse_args(argv)
    if args.quick:
        args.updates, args.warmup, args.seconds = 300, 60, 4.0
        args.members = min(args.members, 400)
    return args


def main(argv: list[str] | None = None) -> int:
    return asyncio.run(run(parse(argv)))


if __name__ == "__main__":
    sys.exit(main())
