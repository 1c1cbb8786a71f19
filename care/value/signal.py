"""The shop's churn signal, chosen from its own history.

Three signals can say who is drifting away: the model's P(alive) (``p_alive``), the model's
expected purchases in the next 90 days (``expected_purchases``), and the gap rule (the time since
the last purchase against the member's usual gap, ``gap_rule``). Which of them ranks leavers best
depends on the shop, so once a week the value refresh backtests all three on the shop's own
purchases (``care.value.backtest``): fitted on the history up to ``HOLDOUT_DAYS`` ago, scored on
who did and did not buy since, one AUC each (0.5 is a coin toss, 1.0 ranks every leaver above
every stayer). The best AUC wins; a tie keeps the default.

Before the model has ever been fitted (a shop with fewer customers than the value refresh
needs, ``care.value.refresh.MIN_CUSTOMERS_TO_FIT``) there is no choice yet and nothing but the
gap rule to go by: the gap rule it is. Too little history to judge keeps the documented
default, ``DEFAULT_SIGNAL``: fewer than
``MIN_CUSTOMERS`` customers who had bought by the cut-off, or fewer than ``MIN_RETURNERS`` of
them who bought again after it, or fewer than ``MIN_LEAVERS`` who did not (an AUC from a dozen
cases is noise). The default is the model's expected purchases: on CDNOW it ranks leavers best
(AUC 0.77 against 0.72 for the gap rule), while P(alive) ranks worse than chance there because
BG/NBD gives every one-time buyer P(alive) = 1.

Who is at risk by each signal:

* ``expected_purchases`` — fewer than ln 2 expected purchases in the next 90 days: for any mix of
  Poisson buyers and drop-outs P(no purchase) ≥ e^(−expected), so below it a member is more likely
  than not to buy nothing in that time;
* ``p_alive`` — P(alive) below one half: more likely gone than still a customer;
* ``gap_rule`` — the at-risk and lapsed lifecycle stages.

This module keeps the choice (what it is, its status, storing it) and is what the bot reads at
every rules pass; making the choice, with numpy and the model, is ``care.value.choosing``, which
only the value refresh imports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ChurnSignal

P_ALIVE = "p_alive"
EXPECTED_PURCHASES = "expected_purchases"
GAP_RULE = "gap_rule"
SIGNALS: tuple[str, ...] = (EXPECTED_PURCHASES, P_ALIVE, GAP_RULE)
MODEL_SIGNALS: tuple[str, ...] = (EXPECTED_PURCHASES, P_ALIVE)
DEFAULT_SIGNAL = EXPECTED_PURCHASES

EXPECTED_90D_AT_RISK = math.log(2)
P_ALIVE_AT_RISK = 0.5

# The backtest behind the choice: fitted up to this many days ago, compared with what came after.
HOLDOUT_DAYS = 90
# The choice is made again when it is this old (AUCs move slowly; the refresh is daily).
CHOOSE_EVERY = timedelta(days=7)
# Below these the AUCs are noise: the default stays, and the owner is told why.
MIN_CUSTOMERS = 200
MIN_RETURNERS = 20
MIN_LEAVERS = 20
# A larger shop is judged on a fixed sample of about this many customers (every k-th member):
# an AUC from 20,000 customers is within about ±0.01.
SAMPLE_CUSTOMERS = 20_000

REASON_BACKTEST = "backtest"
REASON_THIN = "thin_history"
ROW_ID = 1


@dataclass(frozen=True, slots=True)
class SignalChoice:
    """The churn signal chosen and what it was chosen on."""

    signal: str
    reason: str  # REASON_BACKTEST or REASON_THIN
    aucs: dict[str, float | None]
    customers: int
    returners: int
    cutoff: date
    holdout_until: date
    chosen_at: datetime

    @property
    def best_auc(self) -> float | None:
        return self.aucs.get(self.signal)


def pick(aucs: Mapping[str, float | None], customers: int, returners: int) -> tuple[str, str]:
    """(signal, reason): the best AUC when the history is rich enough to judge, else the
    default. Ties keep the default, then the order of ``SIGNALS``."""
    leavers = customers - returners
    ranked = [(auc, name) for name, auc in aucs.items() if auc is not None and name in SIGNALS]
    if customers < MIN_CUSTOMERS or returners < MIN_RETURNERS or leavers < MIN_LEAVERS:
        return DEFAULT_SIGNAL, REASON_THIN
    if not ranked:
        return DEFAULT_SIGNAL, REASON_THIN
    order = {name: index for index, name in enumerate(SIGNALS)}
    best = max(ranked, key=lambda item: (round(item[0], 4), -order[item[1]]))
    return best[1], REASON_BACKTEST


def model_signal(signal: str) -> str:
    """The model signal ``member_value.at_risk`` follows: the chosen one, or the default when
    the gap rule is chosen (its members at risk are the lifecycle stages)."""
    return signal if signal in MODEL_SIGNALS else DEFAULT_SIGNAL


async def current_choice(session: AsyncSession) -> ChurnSignal | None:
    """The stored choice, if one was made."""
    return await session.get(ChurnSignal, ROW_ID)


async def current_signal(session: AsyncSession) -> str:
    """The signal the churn-risk audience and the win-back rule use now (the gap rule while
    no choice was made: the model has scored nobody yet)."""
    signal = await session.scalar(select(ChurnSignal.signal).where(ChurnSignal.id == ROW_ID))
    if signal is None:
        return GAP_RULE
    return signal if signal in SIGNALS else DEFAULT_SIGNAL


async def store_choice(session: AsyncSession, choice: SignalChoice, flags_signal: str) -> None:
    """Write the choice (one row) and the signal ``member_value.at_risk`` is computed with."""
    row = await session.get(ChurnSignal, ROW_ID)
    if row is None:
        row = ChurnSignal(id=ROW_ID)
        session.add(row)
    row.signal = choice.signal
    row.reason = choice.reason
    row.auc_p_alive = choice.aucs.get(P_ALIVE)
    row.auc_expected_purchases = choice.aucs.get(EXPECTED_PURCHASES)
    row.auc_gap_rule = choice.aucs.get(GAP_RULE)
    row.customers = choice.customers
    row.returners = choice.returners
    row.cutoff = choice.cutoff
    row.holdout_until = choice.holdout_until
    row.chosen_at = choice.chosen_at
    row.flags_signal = flags_signal


REASON_NONE = "none"


@dataclass(frozen=True, slots=True)
class SignalStatus:
    """What the console tells the owner: the signal in use, and why."""

    signal: str
    reason: str  # REASON_BACKTEST, REASON_THIN, or REASON_NONE before any choice
    aucs: dict[str, float | None]
    customers: int = 0
    returners: int = 0
    cutoff: date | None = None
    chosen_at: datetime | None = None


async def signal_status(session: AsyncSession) -> SignalStatus:
    """The signal the churn-risk audience and the win-back rule use now, with its evidence."""
    row = await current_choice(session)
    if row is None:
        return SignalStatus(GAP_RULE, REASON_NONE, dict.fromkeys(SIGNALS))
    aucs = {
        P_ALIVE: row.auc_p_alive,
        EXPECTED_PURCHASES: row.auc_expected_purchases,
        GAP_RULE: row.auc_gap_rule,
    }
    signal = row.signal if row.signal in SIGNALS else DEFAULT_SIGNAL
    return SignalStatus(
        signal, row.reason, aucs, row.customers, row.returners, row.cutoff, row.chosen_at
    )
