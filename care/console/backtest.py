"""The backtest an owner runs before trusting a churn signal: ``carebot care backtest``.

The fitting and scoring live in ``care.value.backtest`` (the value refresh reuses them to
choose the shop's churn signal); this module renders the report for the terminal.
"""

from __future__ import annotations

from datetime import timedelta

from care.value.backtest import Backtest, BacktestError, FrequencyGroup, auc, run_backtest

__all__ = [
    "Backtest",
    "BacktestError",
    "FrequencyGroup",
    "auc",
    "render_backtest",
    "run_backtest",
]


def render_backtest(report: Backtest) -> str:
    """The backtest as plain text for the terminal."""
    p = report.params
    lines = [
        f"Backtest: fitted on purchases up to {report.until}, "
        f"compared with {report.until + timedelta(days=1)} … {report.holdout_until}",
        f"  customers: {report.customers:,}",
        f"  BG/NBD (days): r={p.r:.4f} alpha={p.alpha:.4f} a={p.a:.4f} b={p.b:.4f}",
        "  repeat purchase days in the holdout: "
        f"predicted {report.predicted_repeat_purchases:,.1f}, "
        f"actual {report.actual_repeat_purchases:,}",
        "  by repeat purchase days before the date (mean per customer):",
        "    repeats  customers  predicted  actual",
    ]
    lines += [
        f"    {g.repeat_purchases:>7}  {g.customers:>9,}  {g.predicted:>9.2f}  {g.actual:>6.2f}"
        for g in report.groups
    ]
    lines.append("  how well each signal ranks who did not come back (AUC, 0.5 = chance):")
    lines += [
        f"    {name:<20} {'—' if value is None else f'{value:.3f}'}"
        for name, value in report.aucs.items()
    ]
    if report.best_signal is not None:
        lines.append(f"  best signal for this shop: {report.best_signal}")
    return "\n".join(lines)
