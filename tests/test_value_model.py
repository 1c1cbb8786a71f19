"""The value model's maths against the published CDNOW results.

BG/NBD: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", Table/section 5:
r = 0.243, α = 4.414, a = 0.793, b = 2.426. Gamma-Gamma: Fader, Hardie & Lee (2005), "RFM and
CLV", fitted on the 946 customers with repeat purchases in the calibration period using the mean
of their repeat purchases: p = 6.25, q = 3.74, γ = 15.44. Both asserted within 1% (relative).
"""

from __future__ import annotations

import numpy as np
import pytest

from care.value.model import (
    BGNBDParams,
    GammaGammaParams,
    bgnbd_log_likelihood,
    expected_purchases,
    expected_purchases_new_customer,
    expected_spend,
    fit_bgnbd,
    fit_gamma_gamma,
    probability_alive,
)
from tests.value_helpers import cdnow_calibration

PAPER_BGNBD = BGNBDParams(r=0.243, alpha=4.414, a=0.793, b=2.426)
PAPER_GG = GammaGammaParams(p=6.25, q=3.74, gamma=15.44)


@pytest.fixture(scope="module")
def cdnow() -> tuple[BGNBDParams, GammaGammaParams]:
    data = cdnow_calibration()
    return fit_bgnbd(data.x, data.t_x, data.T), fit_gamma_gamma(data.x, data.zbar)


def test_cdnow_calibration_is_the_papers_sample() -> None:
    data = cdnow_calibration()
    assert len(data.x) == 2357
    assert sum(1 for x in data.x if x > 0) == 946
    assert sum(data.x) == 2457  # repeat purchase days in weeks 1–39, as in the paper


def test_bgnbd_fit_matches_the_published_parameters(cdnow: tuple[BGNBDParams, ...]) -> None:
    fitted = cdnow[0]
    for name in ("r", "alpha", "a", "b"):
        assert getattr(fitted, name) == pytest.approx(getattr(PAPER_BGNBD, name), rel=0.01), name
    # The paper's maximised log-likelihood is -9582.4.
    data = cdnow_calibration()
    params = np.array([fitted.r, fitted.alpha, fitted.a, fitted.b])
    ll = bgnbd_log_likelihood(params, *(np.asarray(v) for v in (data.x, data.t_x, data.T)))
    assert float(ll.sum()) == pytest.approx(-9582.4, abs=0.5)


def test_gamma_gamma_fit_matches_the_published_parameters(
    cdnow: tuple[BGNBDParams, GammaGammaParams],
) -> None:
    fitted = cdnow[1]
    for name in ("p", "q", "gamma"):
        assert getattr(fitted, name) == pytest.approx(getattr(PAPER_GG, name), rel=0.01), name


def test_conditional_expectation_matches_the_papers_example() -> None:
    # The paper's worked example: x = 2, t_x = 30.43, T = 38.86 → 1.226 purchases in 39 weeks.
    assert expected_purchases(PAPER_BGNBD, 39, [2], [30.43], [38.86])[0] == pytest.approx(
        1.226, abs=0.002
    )
    # A customer seen for no time at all is the population curve (equation 9).
    assert expected_purchases(PAPER_BGNBD, 78, [0], [0], [0])[0] == pytest.approx(
        expected_purchases_new_customer(PAPER_BGNBD, 78), rel=1e-9
    )


def test_probability_alive_behaves() -> None:
    alive = probability_alive(PAPER_BGNBD, [0, 5, 5, 5], [0, 38, 20, 2], [38.9] * 4)
    assert alive[0] == 1.0  # no repeat purchase: the model never saw them drop out
    assert alive[1] > alive[2] > alive[3]  # the longer since the last purchase, the less alive
    assert ((alive >= 0) & (alive <= 1)).all()
    # A frequent buyer long gone: far below 1, and no overflow on extreme histories.
    assert probability_alive(PAPER_BGNBD, [400], [1], [5000])[0] < 1e-6


def test_expected_spend_shrinks_towards_the_population() -> None:
    population = PAPER_GG.population_mean
    assert population == pytest.approx(6.25 * 15.44 / 2.74)
    none, few, many = expected_spend(PAPER_GG, [0, 1, 50], [0, 100.0, 100.0])
    assert none == pytest.approx(population)
    assert population < few < many < 100.0
    assert many == pytest.approx(100.0, rel=0.02)


def test_fit_recovers_simulated_parameters() -> None:
    """Draw customers from the model itself and fit them back (days, as the product uses)."""
    rng = np.random.default_rng(7)
    n, r, alpha, a, b = 20_000, 0.8, 40.0, 1.5, 6.0
    T = rng.uniform(30, 720, n)
    rate = rng.gamma(r, 1 / alpha, n)
    drop = rng.beta(a, b, n)
    x = np.zeros(n)
    t_x = np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1 / rate[i])
            if t > T[i]:
                break
            x[i] += 1
            t_x[i] = t
            if rng.random() < drop[i]:
                break
    fitted = fit_bgnbd(x, t_x, T)
    assert fitted.r == pytest.approx(r, rel=0.1)
    assert fitted.alpha == pytest.approx(alpha, rel=0.15)
    assert fitted.a == pytest.approx(a, rel=0.25)
    assert fitted.b == pytest.approx(b, rel=0.3)


def test_a_shop_where_everyone_buys_like_clockwork_still_gets_finite_numbers() -> None:
    """Identical rhythms and no drop-outs push the fit to the edge of the parameter space."""
    x = [k % 4 for k in range(60)]
    T = [10.0 + 20 * (k % 4) for k in range(60)]
    t_x = [20.0 * (k % 4) for k in range(60)]
    params = fit_bgnbd(x, t_x, T)
    expected = expected_purchases(params, 365, x, t_x, T)
    assert np.isfinite(expected).all() and (expected >= 0).all()
    # About one purchase every 20 days for those who showed a rhythm.
    assert expected[3] == pytest.approx(365 / 20, rel=0.3)
