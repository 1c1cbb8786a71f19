"""Fill a SQLite database with a large, realistic shop for the benchmarks.

    python -m benchmarks.datagen --members 1000000 --purchases 10000000 --db /tmp/bench.db

The schema comes from the models (``Base.metadata.create_all``); rows go in through the
standard ``sqlite3`` module in one transaction, in big ``executemany`` batches, with the
secondary indexes dropped during the load and rebuilt afterwards (sorting once beats millions
of random b-tree inserts). Primary keys, receipt ids, member codes and Telegram ids are
generated in ascending order so that their unique indexes only ever append.

Every member's aggregates (first/last purchase, count, total, 12-month spend, average gap,
tier, points balance) agree with their purchases; each points balance is backed by one
"opening balance" ledger entry, so the ledger still sums to the balance. By default the
segments (RFM, value tier, lifecycle stage, churn risk) are then computed by the real
``care.segments.refresh.refresh_segments``. The data's "now" is stored in the ``job_state`` row
``benchmark.datagen`` so that benchmarks can freeze their clock at the same moment.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, insert
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from care.core.clock import FrozenClock
from care.core.codes import CODE_ALPHABET
from care.core.config import DEFAULT_CATEGORIES, CareConfig
from storage.models import DEFAULT_TIERS, Base, JobState, Tier

DATAGEN_JOB = "benchmark.datagen"
MEMBERS_PER_CHUNK = 50_000
BUYER_SHARE = 0.85
MARKETING_SHARE = 0.72
BLOCKED_SHARE = 0.03
MAX_HISTORY_DAYS = 3 * 365
SECONDS_PER_DAY = 86_400
MEMBER_COLUMNS = (
    "id", "telegram_id", "chat_id", "member_code", "status", "name", "phone", "birthday",
    "birthday_md", "birthday_locked", "locale", "timezone", "profile_consent_at",
    "marketing_opt_in", "marketing_changed_at", "surveys_opt_in", "blocked_at", "tier_code",
    "points_balance", "first_purchase_at", "last_purchase_at", "purchase_count",
    "total_spent_minor", "spend_12m_minor", "avg_gap_days", "lifecycle_stage", "created_at",
    "registered_at", "updated_at",
)  # fmt: skip
PURCHASE_COLUMNS = (
    "id", "member_id", "receipt_id", "amount_minor", "currency", "category", "purchased_at",
    "points_earned", "source", "created_at",
)  # fmt: skip
LEDGER_COLUMNS = (
    "member_id", "delta", "balance_after", "reason", "note", "created_at",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Generated:
    path: Path
    members: int
    purchases: int
    now: datetime
    seconds: float


def sqlite_timestamps(epoch_seconds: np.ndarray) -> list[str]:
    """Epoch seconds → the text SQLAlchemy's SQLite DateTime stores (so SQL comparisons hold)."""
    text = np.datetime_as_string(epoch_seconds.astype("datetime64[s]"), unit="s")
    return [f"{value[:10]} {value[11:]}.000000" for value in text.tolist()]


def sequential_codes(first: int, count: int, width: int = 8) -> list[str]:
    """Member codes in ascending order (the alphabet is ASCII-sorted): the index only appends."""
    base = len(CODE_ALPHABET)
    numbers = np.arange(first, first + count, dtype=np.int64) + base ** (width - 1)
    digits = []
    for _ in range(width):
        digits.append(numbers % base)
        numbers //= base
    alphabet = np.array(list(CODE_ALPHABET))
    letters = [alphabet[d] for d in reversed(digits)]
    return ["".join(chars) for chars in zip(*(column.tolist() for column in letters), strict=True)]


def purchase_counts(rng: np.random.Generator, members: int, purchases: int) -> np.ndarray:
    """How many purchases each member made: most a few, some very many (a gamma mixture)."""
    counts = np.zeros(members, dtype=np.int64)
    buyers = np.flatnonzero(rng.random(members) < BUYER_SHARE)
    if purchases < len(buyers):
        buyers = rng.choice(buyers, size=purchases, replace=False)
    if len(buyers) == 0:
        return counts
    weights = rng.gamma(shape=0.8, scale=1.0, size=len(buyers))
    counts[buyers] = 1 + rng.multinomial(purchases - len(buyers), weights / weights.sum())
    return counts


def _tier_codes(spend: np.ndarray) -> np.ndarray:
    tiers = sorted(DEFAULT_TIERS, key=lambda tier: tier["rank"])
    codes = np.full(spend.shape, tiers[0]["code"], dtype=object)
    for tier in tiers[1:]:
        codes[spend >= tier["min_spend_12m_minor"]] = tier["code"]
    return codes


def _chunk_rows(
    rng: np.random.Generator,
    first_id: int,
    counts: np.ndarray,
    first_purchase_id: int,
    now_s: int,
) -> tuple[Iterator[tuple], Iterator[tuple], Iterator[tuple]]:
    """Members, purchases and ledger rows for one block of consecutive member ids."""
    n = len(counts)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    total = int(counts.sum())
    buyer = counts > 0

    # Each member's own rhythm (days between visits) and how long ago they last came.
    rhythm = np.clip(rng.lognormal(np.log(21.0), 0.7, n), 2.0, 240.0)
    churned = rng.random(n) < 0.2
    last_ago = np.where(
        churned,
        rng.uniform(60.0, 720.0, n),
        np.minimum(rng.exponential(rhythm * 1.2), 720.0),
    )

    owner = np.repeat(np.arange(n), counts)
    offsets = np.concatenate(([0], np.cumsum(counts)[:-1]))
    gaps = rng.exponential(rhythm[owner])
    running = np.cumsum(gaps)
    since_last = running - running[np.repeat(offsets, counts)]  # 0 for each member's newest
    days_ago = np.minimum(last_ago[owner] + since_last, MAX_HISTORY_DAYS)
    order = np.lexsort((-days_ago, owner))  # per member, oldest first
    days_ago = days_ago[order]
    at = now_s - (days_ago * SECONDS_PER_DAY).astype(np.int64)
    amount = np.clip(rng.lognormal(np.log(8_000), 0.9, total), 100, 5_000_000).astype(np.int64)
    points = amount // 100

    within_year = days_ago <= 365
    spend_12m = np.bincount(owner, weights=amount * within_year, minlength=n).astype(np.int64)
    spent = np.bincount(owner, weights=amount, minlength=n).astype(np.int64)
    balance = np.bincount(owner, weights=points, minlength=n).astype(np.int64)
    last_index = offsets + counts - 1
    if total:
        first_at = np.where(buyer, at[np.minimum(offsets, total - 1)], now_s)
        last_at = np.where(buyer, at[np.clip(last_index, 0, total - 1)], now_s)
    else:
        first_at = last_at = np.full(n, now_s, dtype=np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        avg_gap = np.where(counts >= 2, (last_at - first_at) / SECONDS_PER_DAY / (counts - 1), 0)
    joined = np.where(
        buyer,
        first_at - rng.uniform(0, 90 * SECONDS_PER_DAY, n).astype(np.int64),
        now_s - rng.uniform(0, 700 * SECONDS_PER_DAY, n).astype(np.int64),
    )
    marketing = rng.random(n) < MARKETING_SHARE
    blocked = rng.random(n) < BLOCKED_SHARE
    born = np.datetime64("1950-01-01") + rng.integers(0, 55 * 365, n).astype("timedelta64[D]")
    has_birthday = rng.random(n) < 0.6
    born_text = np.datetime_as_string(born, unit="D").tolist()
    born_md = [int(b[5:7]) * 100 + int(b[8:10]) for b in born_text]
    zh = rng.random(n) < 0.8

    joined_text = sqlite_timestamps(joined)
    first_text = sqlite_timestamps(first_at)
    last_text = sqlite_timestamps(last_at)
    now_text = sqlite_timestamps(np.array([now_s]))[0]
    codes = sequential_codes(first_id, n)
    tiers = _tier_codes(spend_12m).tolist()
    member_rows = (
        (
            member_id, 5_000_000_000 + member_id, 5_000_000_000 + member_id, codes[i], "active",
            f"Member {member_id}", f"+86{13_000_000_000 + member_id}",
            born_text[i] if has_birthday[i] else None,
            born_md[i] if has_birthday[i] else None, bool(has_birthday[i]),
            "zh" if zh[i] else "en", "Asia/Shanghai", joined_text[i], bool(marketing[i]),
            joined_text[i] if marketing[i] else None, True,
            now_text if blocked[i] else None, tiers[i], int(balance[i]),
            first_text[i] if buyer[i] else None, last_text[i] if buyer[i] else None,
            int(counts[i]), int(spent[i]), int(spend_12m[i]),
            float(avg_gap[i]) if counts[i] >= 2 else None,
            "active" if buyer[i] else "prospect", joined_text[i], joined_text[i], now_text,
        )
        for i, member_id in enumerate(ids.tolist())
    )  # fmt: skip

    purchase_ids = range(first_purchase_id, first_purchase_id + total)
    at_text = sqlite_timestamps(at)
    category_names = np.array(DEFAULT_CATEGORIES, dtype=object)
    categories = category_names[rng.integers(0, len(DEFAULT_CATEGORIES), total)].tolist()
    purchase_rows = zip(
        purchase_ids,
        (ids[owner]).tolist(),
        (f"G{pid:011d}" for pid in purchase_ids),
        amount.tolist(),
        _repeat("CNY", total),
        categories,
        at_text,
        points.tolist(),
        _repeat("import", total),
        at_text,
        strict=True,
    )
    ledger_rows = (
        (member_id, int(balance[i]), int(balance[i]), "adjustment", "opening balance", now_text)
        for i, member_id in enumerate(ids.tolist())
        if balance[i] > 0
    )
    return member_rows, purchase_rows, ledger_rows


def _repeat(value: str, count: int) -> Iterator[str]:
    return (value for _ in range(count))


def schema_stamp() -> int:
    """A number for the schema the models describe, kept in the file's ``user_version``: data
    generated for an older schema (a column or index added since) is made again, not measured."""
    dialect = sqlite_dialect.dialect()
    ddl = [
        str(CreateTable(table).compile(dialect=dialect)) for table in Base.metadata.tables.values()
    ]
    ddl += [
        str(CreateIndex(index).compile(dialect=dialect))
        for table in Base.metadata.tables.values()
        for index in table.indexes
    ]
    return zlib.crc32("\n".join(sorted(ddl)).encode()) & 0x7FFFFFFF


def current(path: Path) -> bool:
    """``path`` holds generated data for today's schema."""
    if not path.exists():
        return False
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0]) == schema_stamp()


def _create_schema(path: Path, now: datetime) -> None:
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        Base.metadata.create_all(connection)
        connection.exec_driver_sql(f"PRAGMA user_version = {schema_stamp()}")
        connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
        connection.execute(insert(JobState), [{"name": DATAGEN_JOB, "last_run_at": now}])
    engine.dispose()


def _secondary_indexes(db: sqlite3.Connection, tables: tuple[str, ...]) -> list[tuple[str, str]]:
    marks = ",".join("?" * len(tables))
    return db.execute(
        f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({marks})",
        tables,
    ).fetchall()


def generate(
    path: Path,
    *,
    members: int,
    purchases: int,
    now: datetime,
    seed: int = 2026,
    report: Callable[[str], None] = print,
) -> Generated:
    """Create ``path`` afresh and fill it; returns what was made and how long it took."""
    started = time.perf_counter()
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    _create_schema(path, now)

    rng = np.random.default_rng(seed)
    counts = purchase_counts(rng, members, purchases)
    now_s = int(now.timestamp())
    db = sqlite3.connect(path, isolation_level=None)
    try:
        for pragma in (
            "journal_mode=OFF", "synchronous=OFF", "locking_mode=EXCLUSIVE",
            "cache_size=-512000", "temp_store=MEMORY",
        ):  # fmt: skip
            db.execute(f"PRAGMA {pragma}")
        indexes = _secondary_indexes(db, ("members", "purchases", "points_ledger"))
        for name, _ in indexes:
            db.execute(f"DROP INDEX {name}")
        db.execute("BEGIN")
        member_sql = _insert_sql("members", MEMBER_COLUMNS)
        purchase_sql = _insert_sql("purchases", PURCHASE_COLUMNS)
        ledger_sql = _insert_sql("points_ledger", LEDGER_COLUMNS)
        next_purchase_id = 1
        for start in range(0, members, MEMBERS_PER_CHUNK):
            block = counts[start : start + MEMBERS_PER_CHUNK]
            member_rows, purchase_rows, ledger_rows = _chunk_rows(
                rng, start + 1, block, next_purchase_id, now_s
            )
            db.executemany(member_sql, member_rows)
            db.executemany(purchase_sql, purchase_rows)
            db.executemany(ledger_sql, ledger_rows)
            next_purchase_id += int(block.sum())
            done = min(start + MEMBERS_PER_CHUNK, members)
            report(
                f"  {done:>10,} members, {next_purchase_id - 1:>11,} purchases "
                f"({time.perf_counter() - started:5.1f} s)"
            )
        db.execute("COMMIT")
        report(f"  rebuilding {len(indexes)} indexes …")
        for _, sql in indexes:
            db.execute(sql)
        db.execute("PRAGMA analysis_limit=2000")
        db.execute("ANALYZE")
        db.execute("PRAGMA locking_mode=NORMAL")
        db.execute("PRAGMA journal_mode=WAL")
    finally:
        db.close()
    return Generated(path, members, int(counts.sum()), now, time.perf_counter() - started)


def _insert_sql(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"


async def refresh(path: Path, now: datetime) -> str:
    """Compute the segments with the real refresh, as the scheduler would."""
    from care.segments.refresh import refresh_segments
    from storage.db import create_engine as create_async_engine
    from storage.db import create_session_factory

    engine = create_async_engine(f"sqlite+aiosqlite:///{path}")
    try:
        stats = await refresh_segments(
            create_session_factory(engine), CareConfig(), FrozenClock(now)
        )
    finally:
        await engine.dispose()
    return f"{stats.members:,} members in {stats.seconds:.1f} s; stages {stats.stages}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.datagen", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--purchases", type=int, default=1_000_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/carebot-bench.db"))
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--now",
        type=datetime.fromisoformat,
        default=None,
        help="the data's present moment, ISO 8601 with offset (default: now)",
    )
    parser.add_argument(
        "--no-segments", action="store_true", help="skip computing RFM, stages and churn risk"
    )
    args = parser.parse_args(argv)
    if args.members < 1 or args.purchases < 0:
        parser.error("need at least one member and a non-negative number of purchases")
    if args.now is not None and args.now.tzinfo is None:
        parser.error("--now needs a UTC offset, e.g. 2026-03-02T03:00:00+00:00")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    now = (args.now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    print(f"Generating {args.members:,} members and {args.purchases:,} purchases in {args.db}")
    made = generate(
        args.db, members=args.members, purchases=args.purchases, now=now, seed=args.seed
    )
    print(f"Loaded in {made.seconds:.1f} s ({made.purchases / made.seconds:,.0f} purchases/s)")
    if not args.no_segments:
        print("Computing segments: " + asyncio.run(refresh(args.db, now)))
    size_mb = args.db.stat().st_size / 1e6
    print(f"Done: {args.db} ({size_mb:,.0f} MB), data's now = {now.isoformat()}")


def read_data_now(db: sqlite3.Connection) -> datetime | None:
    """The "now" a generated database was made for, if it was made by this module."""
    row = db.execute("SELECT last_run_at FROM job_state WHERE name = ?", (DATAGEN_JOB,)).fetchone()
    if row is None or row[0] is None:
        return None
    return datetime.fromisoformat(row[0]).replace(tzinfo=UTC)


if __name__ == "__main__":
    main(sys.argv[1:])
