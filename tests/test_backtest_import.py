"""The backtest on the CDNOW sample brought in as a shop would: a customer list and a till
export written as CSV, imported with `carebot import members` and `carebot import purchases`,
then `carebot care backtest --json` finds the paper's BG/NBD parameters."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from bot.cli import main
from tests.test_value_model import PAPER_BGNBD

CDNOW = Path(__file__).parent / "data" / "cdnow_sample.txt"


def _phone(customer: str) -> str:
    return f"+86139{int(customer):08d}"


def write_cdnow_as_shop_files(directory: Path) -> tuple[Path, Path]:
    """The CDNOW customers as a customer list (phone, name, joined) and every CDNOW line as a
    receipt at noon shop time, paid in the shop's currency (a $0.00 line as one cent: a till
    has no free receipts)."""
    members = ["phone,name,joined"]
    purchases = ["receipt_id,member,amount,purchased_at"]
    seen: set[str] = set()
    for number, line in enumerate(CDNOW.read_text().splitlines()):
        customer, _sample, day, _cds, dollars = line.split()
        if customer not in seen:
            seen.add(customer)
            members.append(f"{_phone(customer)},CDNOW {customer},1996-12-01")
        amount = max(float(dollars), 0.01)
        purchases.append(
            f"CD{number},{_phone(customer)},{amount:.2f},{day[:4]}-{day[4:6]}-{day[6:]}T12:00:00"
        )
    members_csv = directory / "cdnow_members.csv"
    purchases_csv = directory / "cdnow_purchases.csv"
    members_csv.write_text("\n".join(members) + "\n", encoding="utf-8")
    purchases_csv.write_text("\n".join(purchases) + "\n", encoding="utf-8")
    return members_csv, purchases_csv


async def test_cdnow_imported_through_the_cli_backtests_to_the_papers_parameters(
    sqlite_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", sqlite_url)
    monkeypatch.chdir(Path(os.environ.get("TMPDIR", "/tmp")))
    members_csv, purchases_csv = write_cdnow_as_shop_files(tmp_path)

    assert await asyncio.to_thread(main, ["import", "members", str(members_csv)]) == 0
    assert "2357 new members" in capsys.readouterr().out
    assert await asyncio.to_thread(main, ["import", "purchases", str(purchases_csv)]) == 0
    assert "6919 new purchases, 0 already recorded, 0 rejected" in capsys.readouterr().out

    argv = ["care", "backtest", "--until", "1997-09-30", "--holdout-until", "1998-06-30"]
    assert await asyncio.to_thread(main, [*argv, "--json"]) == 0
    body = json.loads(capsys.readouterr().out)
    assert body["customers"] == 2357
    params = body["params"]
    assert set(params) == {"r", "alpha", "a", "b"}
    # Fitted in days; the paper's alpha is in weeks.
    assert params["r"] == pytest.approx(PAPER_BGNBD.r, rel=0.01)
    assert params["alpha"] / 7 == pytest.approx(PAPER_BGNBD.alpha, rel=0.01)
    assert params["a"] == pytest.approx(PAPER_BGNBD.a, rel=0.01)
    assert params["b"] == pytest.approx(PAPER_BGNBD.b, rel=0.01)
    assert body["actual_repeat_purchases"] > 0 and body["predicted_repeat_purchases"] > 0
    assert {"auc_p_alive", "auc_expected_purchases", "auc_gap_rule"} <= set(body)
    assert body["best_signal"] == "expected_purchases"
