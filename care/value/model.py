"""The maths of customer value: BG/NBD (Fader, Hardie & Lee 2005, "Counting Your Customers the
Easy Way") for how many purchases a customer will make and whether they are still "alive", and
Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV") for how much they spend per purchase.

Hand-written on numpy + scipy instead of the ``lifetimes`` package, on purpose: lifetimes
0.11.3 (2020, unmaintained) pulls in pandas, autograd and dill for what is four closed-form
likelihoods, and its code relies on pandas and ``pkg_resources`` behaviour that newer releases
deprecate or removed. numpy and scipy install from wheels (no compiler), scipy.special gives
``gammaln``/``betaln``/``hyp2f1`` and scipy.optimize the maximiser, and everything is vectorised
over plain arrays, which is what fitting and scoring a million members in seconds needs.

Inputs per customer, in one time unit of the caller's choosing (days in the product, weeks for
the paper's CDNOW fixture): ``x`` repeat purchases, ``t_x`` time of the last purchase since
the first, ``T`` time since the first purchase; ``m`` the mean value of repeat purchases.
A test checks both fits against the published CDNOW parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize
from scipy.special import betaln, digamma, expit, gammaln, hyp2f1

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class BGNBDParams:
    """Purchase rate ~ Gamma(r, alpha); drop-out probability after a purchase ~ Beta(a, b)."""

    r: float
    alpha: float
    a: float
    b: float


@dataclass(frozen=True, slots=True)
class GammaGammaParams:
    """Spend per purchase ~ Gamma(p, nu), nu ~ Gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float

    @property
    def population_mean(self) -> float:
        """The mean spend per purchase of a customer we know nothing about."""
        return self.p * self.gamma / (self.q - 1) if self.q > 1 else float("nan")


def _as_array(values: object) -> Array:
    return np.asarray(values, dtype=np.float64)


def bgnbd_log_likelihood(params: Array, x: Array, t_x: Array, T: Array) -> Array:
    """Each customer's log-likelihood under BG/NBD (the paper's equation 6, in logs)."""
    counts, per_count = np.unique(x, return_inverse=True)
    return _bgnbd(params, x, t_x, T, (counts, per_count.ravel()), gradient=False)[0]


def _bgnbd(
    params: Array,
    x: Array,
    t_x: Array,
    T: Array,
    by_count: tuple[Array, NDArray[np.intp]],
    *,
    gradient: bool,
) -> tuple[Array, Array | None]:
    """Log-likelihoods and, if asked, their gradient in (r, alpha, a, b), one row per customer.

    The analytic gradient is what keeps a million-member fit to a few dozen passes.
    """
    r, alpha, a, b = params
    repeat = x > 0
    # The special functions depend on x alone, and a shop has few distinct purchase counts:
    # they are evaluated once per count (``by_count``: the counts and each row's index).
    counts, per_count = by_count
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + t_x)
    stays = -(r + x) * log_alpha_T
    # ln(a / (b + x - 1)) - (r + x) ln(alpha + t_x), only where there was a repeat purchase.
    with np.errstate(divide="ignore"):
        drops = np.where(
            repeat,
            np.log(a) - np.log(np.where(repeat, b + x - 1, 1.0)) - (r + x) * log_alpha_tx,
            -np.inf,
        )
    mixed = np.logaddexp(stays, drops)
    head = gammaln(r + counts) - gammaln(r) + betaln(a, b + counts) - betaln(a, b)
    ll = head[per_count] + r * np.log(alpha) + mixed
    if not gradient:
        return ll, None
    w_drop = np.exp(drops - mixed)
    w_stay = 1.0 - w_drop
    psi_r = (digamma(r + counts) - digamma(r))[per_count]
    psi_a = (digamma(a + b) - digamma(a + b + counts))[per_count]
    psi_b = (digamma(b + counts) - digamma(b))[per_count]
    d_r = psi_r + np.log(alpha) - w_stay * log_alpha_T - w_drop * log_alpha_tx
    d_alpha = r / alpha - (r + x) * (w_stay / (alpha + T) + w_drop / (alpha + t_x))
    d_a = psi_a + w_drop / a
    d_b = psi_b + psi_a - w_drop / np.where(repeat, b + x - 1, 1.0)
    return ll, np.stack([d_r, d_alpha, d_a, d_b])


def _fit(negative_ll: Callable[[Array], tuple[float, Array]], start: Array) -> Array:
    """Maximise over log-parameters (so they stay positive) with L-BFGS-B and exact gradients."""
    result = minimize(
        negative_ll,
        np.log(start),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-12.0, 12.0)] * start.size,
        options={"ftol": 1e-10, "gtol": 1e-7, "maxiter": 300},
    )
    return np.exp(result.x)


def fit_bgnbd(x: object, t_x: object, T: object, weights: object | None = None) -> BGNBDParams:
    """Maximum-likelihood BG/NBD parameters; ``weights`` counts customers sharing a history."""
    x_, t_, T_ = _as_array(x), _as_array(t_x), _as_array(T)
    w = np.ones_like(x_) if weights is None else _as_array(weights)
    if x_.size == 0:
        raise ValueError("BG/NBD needs at least one customer")
    scale = max(float(np.average(T_, weights=w)), 1e-9)
    # Work in units of the mean age so alpha starts near 1 whatever the caller's time unit.
    t_s, T_s = t_ / scale, T_ / scale
    total = float(w.sum())
    counts, per_count = np.unique(x_, return_inverse=True)
    by_count = (counts, per_count.ravel())

    def negative_ll(log_params: Array) -> tuple[float, Array]:
        params = np.exp(log_params)
        ll, grad = _bgnbd(params, x_, t_s, T_s, by_count, gradient=True)
        assert grad is not None
        value = -float(np.dot(w, ll)) / total
        if not np.isfinite(value):
            return 1e300, np.zeros_like(log_params)
        return value, -(grad @ w) * params / total

    r, alpha, a, b = _fit(negative_ll, np.array([1.0, 1.0, 1.0, 1.0]))
    return BGNBDParams(r=float(r), alpha=float(alpha * scale), a=float(a), b=float(b))


def gamma_gamma_log_likelihood(params: Array, x: Array, m: Array) -> Array:
    """Each repeat customer's log-likelihood of their mean spend ``m`` over ``x`` purchases."""
    p, q, gamma = params
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(gamma)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(gamma + m * x)
    )


def fit_gamma_gamma(x: object, m: object) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from customers with repeat purchases.

    ``x`` is their number of repeat purchases and ``m`` the mean value of those purchases
    (the paper's ``z̄``); customers with ``x == 0`` or ``m <= 0`` are left out.
    """
    x_, m_ = _as_array(x), _as_array(m)
    keep = (x_ > 0) & (m_ > 0)
    x_, m_ = x_[keep], m_[keep]
    if x_.size < 2:
        raise ValueError("Gamma-Gamma needs at least two customers with repeat purchases")
    scale = float(np.mean(m_))
    m_s = m_ / scale
    log_m, log_x = np.log(m_s), np.log(x_)

    def negative_ll(log_params: Array) -> tuple[float, Array]:
        params = np.exp(log_params)
        p, q, gamma = params
        px = p * x_
        log_total = np.log(gamma + m_s * x_)
        ll = gamma_gamma_log_likelihood(params, x_, m_s)
        value = -float(np.mean(ll))
        if not np.isfinite(value):
            return 1e300, np.zeros_like(log_params)
        psi_pxq = digamma(px + q)
        d_p = x_ * (psi_pxq - digamma(px) + log_m + log_x - log_total)
        d_q = psi_pxq - digamma(q) + np.log(gamma) - log_total
        d_gamma = q / gamma - (px + q) / (gamma + m_s * x_)
        grad = np.array([d_p.mean(), d_q.mean(), d_gamma.mean()])
        return value, -grad * params

    p, q, gamma = _fit(negative_ll, np.array([1.0, 2.0, 1.0]))
    return GammaGammaParams(p=float(p), q=float(q), gamma=float(gamma * scale))


def probability_alive(params: BGNBDParams, x: object, t_x: object, T: object) -> Array:
    """P(still a customer) given the history (the paper's equation 11)."""
    x_, t_, T_ = _as_array(x), _as_array(t_x), _as_array(T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    repeat = x_ > 0
    # P = 1 / (1 + a/(b+x-1) ((alpha+T)/(alpha+t_x))^(r+x)), through its log to never overflow.
    log_odds = np.where(
        repeat,
        np.log(a)
        - np.log(np.where(repeat, b + x_ - 1, 1.0))
        + (r + x_) * (np.log(alpha + T_) - np.log(alpha + t_)),
        -np.inf,
    )
    return expit(-log_odds)


def expected_purchases(
    params: BGNBDParams, horizon: float, x: object, t_x: object, T: object
) -> Array:
    """Expected purchases in the next ``horizon`` time units given the history (equation 10).

    Where the closed form cannot be evaluated (parameters at the edge of their range, which a
    shop whose customers all buy at one rhythm and never leave produces: the Gauss
    hypergeometric function then over- or underflows), the expectation without future drop-out
    is used: P(alive) × the customer's posterior mean rate ``(r + x) / (alpha + T)`` × horizon.
    """
    x_, t_, T_ = _as_array(x), _as_array(t_x), _as_array(T)
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    with np.errstate(all="ignore"):
        z = horizon / (alpha + T_ + horizon)
        tail = np.exp((r + x_) * (np.log(alpha + T_) - np.log(alpha + T_ + horizon)))
        series = hyp2f1(r + x_, b + x_, a + b + x_ - 1, z)
        body = (a + b + x_ - 1) / (a - 1) * (1.0 - tail * series)
    fallback = ~np.isfinite(body) | (body < 0)
    body[fallback] = (r + x_[fallback]) / (alpha + T_[fallback]) * horizon
    return body * probability_alive(params, x_, t_, T_)


def expected_spend(params: GammaGammaParams, x: object, m: object) -> Array:
    """Expected spend per purchase: the customer's own mean, shrunk towards the population's.

    ``(q - 1) / (p x + q - 1)`` of the weight goes to the population mean, the rest to ``m``;
    with no repeat purchase it is the population mean.
    """
    x_, m_ = _as_array(x), _as_array(m)
    p, q, gamma = params.p, params.q, params.gamma
    own = np.where(x_ > 0, m_, 0.0)
    return (gamma + own * x_) * p / (p * x_ + q - 1)


def expected_purchases_new_customer(params: BGNBDParams, t: float) -> float:
    """E[X(t)] for a customer just acquired: the model's population curve (equation 9)."""
    r, alpha, a, b = params.r, params.alpha, params.a, params.b
    z = t / (alpha + t)
    tail = (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, z)
    return float((a + b - 1) / (a - 1) * (1.0 - tail))
