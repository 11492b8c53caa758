"""Is a difference between two configurations real? Spread over seeds, and paired tests over users.

- :func:`seed_summary`: mean, sample std and a 95% t confidence interval of a metric over the seeds
  of one configuration (the interval says where the configuration's mean would land with more seeds).
- :func:`paired_difference`: two configurations scored on the *same* test users; each user's value is
  first averaged over the configuration's seeds, users are aligned by id, and the mean of the per-user
  differences B - A gets a 95% CI and a two-sided p-value from the paired t-test.
- :func:`holm`: Holm's step-down adjustment of p-values for the number of comparisons made.

Why the t-test and not Wilcoxon: per-user recall/NDCG are bounded in [0, 1], mostly exactly 0 and
take few distinct values, so they are far from normal — but the leaderboard's number is their *mean*,
and with hundreds to thousands of users the mean difference is close to normal (bounded values: the
central limit theorem applies quickly). The paired t-test tests exactly that mean, and its CI is in
the metric's own units. Wilcoxon's signed-rank test asks another question (a shift of the median of
the differences, with the many zero differences dropped or split by convention), can reject when the
means are equal, and its ties are the rule here; studies of IR significance tests (Smucker et al.
2007, Urbano et al. 2019) found the t-test's error rates closer to nominal than Wilcoxon's.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from scipy import stats as sps

ALPHA = 0.05


@dataclass(frozen=True)
class SeedSummary:
    mean: float
    std: float          # sample std (ddof=1); nan with one seed
    ci_low: float       # 95% t interval of the mean; nan with one seed
    ci_high: float
    n: int


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> SeedSummary:
    """Mean ± sample std over seeds and the t confidence interval of the mean (n - 1 degrees of freedom)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(x.mean()) if n else math.nan
    if n < 2:
        return SeedSummary(mean, math.nan, math.nan, math.nan, n)
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * std / math.sqrt(n)
    return SeedSummary(mean, std, mean - half, mean + half, n)


def seed_averaged(per_seed: Sequence[Mapping[str, tuple[np.ndarray, np.ndarray]]] | None,
                  key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """:func:`seed_average` of one metric ``key`` over seeds' per-user files (``{key: (users, values)}``
    each), or None when there are none or a seed lacks the key."""
    if not per_seed or any(key not in p for p in per_seed):
        return None
    return seed_average([p[key] for p in per_seed])


def seed_average(per_seed: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-user values averaged over seeds: ``[(users, values), ...] -> (users, mean values)`` on the
    users every seed evaluated (the same test users when the seeds ran on the same data)."""
    users = per_seed[0][0]
    for u, _ in per_seed[1:]:
        users = np.intersect1d(users, u)
    total = np.zeros(len(users))
    for u, v in per_seed:
        total += np.asarray(v, dtype=float)[np.searchsorted(u, users)]
    return users, total / len(per_seed)


@dataclass(frozen=True)
class Paired:
    """B - A over the users both were evaluated on."""

    n_users: int
    mean_a: float
    mean_b: float
    diff: float         # mean of (b - a) = mean_b - mean_a
    ci_low: float       # 95% t interval of diff
    ci_high: float
    p: float            # two-sided paired t-test; 1.0 when every difference is 0


def paired_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray],
                      confidence: float = 0.95) -> Paired | None:
    """Paired t-test of B against A; each side is ``(users ascending, values)``, aligned by user id.
    None when fewer than two users are common to both."""
    users = np.intersect1d(a[0], b[0])
    if len(users) < 2:
        return None
    va = np.asarray(a[1], dtype=float)[np.searchsorted(a[0], users)]
    vb = np.asarray(b[1], dtype=float)[np.searchsorted(b[0], users)]
    d = vb - va
    n, diff = len(d), float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0.0:   # all differences equal: no spread to test against
        p = 1.0 if diff == 0.0 else 0.0
        return Paired(n, float(va.mean()), float(vb.mean()), diff, diff, diff, p)
    se = sd / math.sqrt(n)
    p = float(2 * sps.t.sf(abs(diff) / se, n - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1)) * se
    return Paired(n, float(va.mean()), float(vb.mean()), diff, diff - half, diff + half, p)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values, in the input order: the i-th smallest p (1-based) becomes
    ``max_{j<=i} min(1, (m - j + 1) p_(j))``; reject at level alpha where the adjusted p < alpha.
    Controls the family-wise error rate for any dependence between the tests."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted_sorted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out = np.empty(m)
    out[order] = adjusted_sorted
    return out


def tie_marks(best: tuple[np.ndarray, np.ndarray],
              others: dict[str, tuple[np.ndarray, np.ndarray] | None],
              alpha: float = ALPHA) -> dict[str, tuple[bool | None, float]]:
    """Which rows are *not* significantly different from the best row.

    ``best`` and each of ``others`` are seed-averaged per-user values ``(users, values)`` of one metric;
    a row without per-user values is None. Every available row is paired-tested against the best,
    the p-values Holm-adjusted over those comparisons. Returns ``{row: (mark, adjusted p)}``: mark
    True = no significant difference at ``alpha`` (a tie with the best), False = significantly
    different, None = no per-user data (p nan)."""
    tested = {}
    for name, values in others.items():
        result = None if values is None else paired_difference(best, values)
        tested[name] = math.nan if result is None else result.p
    names = [n for n, p in tested.items() if not math.isnan(p)]
    adjusted = dict(zip(names, holm([tested[n] for n in names]))) if names else {}
    return {name: ((bool(adjusted[name] >= alpha), float(adjusted[name])) if name in adjusted else (None, math.nan))
            for name in others}
