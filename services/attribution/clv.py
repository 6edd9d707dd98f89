"""Customer lifetime value models of contract v1.1 section 2, fitted by maximum likelihood.

* BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): repeat
  purchases of a customer with x repeat purchases, the last at t_x, observed for T
  (weeks since the first purchase) -> r, alpha, a, b; the expected number of
  purchases in the next t weeks (their eq. 10) and P(alive).
* Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV: using iso-value curves";
  Fader & Hardie's note on the Gamma-Gamma model): the mean value m of a customer's x
  repeat purchases -> p, q, v; the expected value of a purchase given (x, m).

The log-likelihoods are the published ones, written with numpy and fitted with
scipy's optimiser over the logs of the parameters (they are positive). Customers
with equal (x, t_x, T) are fitted once, weighted by their number. The README says
why not pymc-marketing (measured) or lifetimes (unmaintained).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1


@dataclass(frozen=True)
class BgNbd:
    r: float
    alpha: float
    a: float
    b: float

    def _odds_dead(self, x, t_x, T):
        """a / (b + x - 1) * ((alpha + T) / (alpha + t_x))^(r + x) for x > 0, else 0."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        pos = x > 0
        log_odds = (np.log(self.a) - np.log(np.where(pos, self.b + x - 1, 1.0))
                    + (self.r + x) * (np.log(self.alpha + T) - np.log(self.alpha + t_x)))
        return np.where(pos, np.exp(np.minimum(log_odds, 700.0)), 0.0)

    def p_alive(self, x, t_x, T) -> np.ndarray:
        return 1.0 / (1.0 + self._odds_dead(x, t_x, T))

    def expected_purchases(self, t: float, x, t_x, T) -> np.ndarray:
        """E[Y(t) | x, t_x, T]: repeat purchases in the next t weeks (eq. 10)."""
        x, t_x, T = (np.asarray(v, dtype=float) for v in (x, t_x, T))
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t / (alpha + T + t)
        head = (a + b + x - 1) / (a - 1)
        tail = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z)
        return head * tail / (1.0 + self._odds_dead(x, t_x, T))


@dataclass(frozen=True)
class GammaGamma:
    p: float
    q: float
    v: float

    def expected_value(self, x, m) -> np.ndarray:
        """E[M | x, m]: a customer's expected value per purchase (x = 0: the population mean)."""
        x = np.asarray(x, dtype=float)
        m = np.nan_to_num(np.asarray(m, dtype=float))
        return self.p * (self.v + x * m) / (self.p * x + self.q - 1.0)


def bgnbd_loglik(params, x, t_x, T, weights) -> float:
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    pos = x > 0
    a4 = np.where(pos, np.log(a) - np.log(np.where(pos, b + x - 1, 1.0)) - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(weights * (a1 + a2 + np.logaddexp(a3, a4))))


def gamma_gamma_loglik(params, x, m, weights) -> float:
    p, q, v = params
    px = p * x
    ll = (gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v) + (px - 1) * np.log(m) + px * np.log(x)
          - (px + q) * np.log(x * m + v))
    return float(np.sum(weights * ll))


LOG_BOUNDS = (-12.0, 12.0)  # each parameter in [6e-6, 1.6e5]: a fit that runs off to a boundary stops there


def _fit(loglik, start: list[float], *data) -> np.ndarray:
    """Maximise the log-likelihood over the logs of the parameters (L-BFGS-B, bounded)."""
    def objective(log_params):
        value = loglik(np.exp(log_params), *data)
        return -value if np.isfinite(value) else 1e300

    result = minimize(objective, np.log(start), method="L-BFGS-B", bounds=[LOG_BOUNDS] * len(start),
                      options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9})
    return np.exp(result.x)


def fit_bgnbd(x, t_x, T) -> BgNbd:
    """Maximum likelihood (r, alpha, a, b) from per-customer (x, t_x, T) in weeks."""
    rows = np.column_stack([np.asarray(v, dtype=float) for v in (x, t_x, T)])
    unique, counts = np.unique(rows, axis=0, return_counts=True)
    return BgNbd(*_fit(bgnbd_loglik, [1.0, max(float(np.mean(rows[:, 2])), 1.0), 1.0, 1.0],
                       unique[:, 0], unique[:, 1], unique[:, 2], counts.astype(float)))


def fit_gamma_gamma(x, m) -> GammaGamma:
    """Maximum likelihood (p, q, v) from customers with x > 0 repeat purchases of mean value m > 0."""
    x, m = np.asarray(x, dtype=float), np.asarray(m, dtype=float)
    return GammaGamma(*_fit(gamma_gamma_loglik, [1.0, 1.0, max(float(np.mean(m)), 1.0)], x, m, np.ones_like(x)))
