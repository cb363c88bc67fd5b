"""The least polling any schedule can do for a known distribution of generation times, at a
given share of jobs noticed more than 10% late (issue 16, target 3). A model, not a figure: it
runs no process and measures nothing; docs/benchmarks.md ("Polling from history") cites it.

    python benchmarks/polling_frontier.py    # 20-50 s times: lognormal, median 32 s, sigma 0.23

1. Every schedule (poll times chosen freely on a 0.05 s grid, the same for every job: the jobs'
   times are independent draws) minimising expected polls + lambda x (share noticed > 10% late),
   by dynamic programming: the optimum is always a first poll, then gaps of exactly 10%; its
   expected polls against fixed 2 s polling's, for each lambda.
2. That family on runs of 30 jobs, as figure 2 measures it (p95 of 30 shares, interpolated):
   how often the p95 holds and the ratio stays under 0.3 when the distribution is known exactly,
   and with genbatch's first poll (0.9 x the 10th percentile of 30 earlier times).
"""

from __future__ import annotations

import itertools
import math
import random
import statistics
from collections.abc import Callable
from statistics import NormalDist

from common import percentile

MEDIAN, SIGMA, FIXED, GROWTH, LATE = 32.0, 0.23, 2.0, 0.10, 0.10
GRID = [10 + 0.05 * i for i in range(1600)]


def cdf(t: float) -> float:
    """P(T <= t) for the lognormal generation time."""
    return NormalDist().cdf((math.log(t) - math.log(MEDIAN)) / SIGMA) if t > 0 else 0.0


def fixed_polls() -> float:
    """Expected polls per job of fixed polling from the submit: E[ceil(T / 2 s)]."""
    return 1 + sum(1 - cdf(FIXED * k) for k in range(1, 200))


def late_between(a: float, b: float) -> float:
    """The share of jobs finishing in (a, b] that a poll at b notices more than 10% late."""
    return max(0.0, cdf(b / (1 + LATE)) - cdf(a))


def best_schedule(lam: float) -> list[float]:
    """Poll times minimising expected polls + lam x late share (one pass over the grid)."""
    best, before = [0.0] * len(GRID), [-1] * len(GRID)
    for j, t in enumerate(GRID):
        best[j] = 1 + lam * late_between(0.0, t)
        for i in range(max(0, j - int(4 * t) - 2), j):  # a gap of at most 20% of t
            cost = best[i] + (1 - cdf(GRID[i])) + lam * late_between(GRID[i], t)
            if cost < best[j]:
                best[j], before[j] = cost, i
    j = min((k for k in range(len(GRID)) if cdf(GRID[k]) > 1 - 1e-4), key=best.__getitem__)
    schedule = []
    while j >= 0:
        schedule.append(GRID[j])
        j = before[j]
    return schedule[::-1]


def expected(schedule: list[float]) -> tuple[float, float]:
    """Expected polls per job and share of jobs noticed more than 10% late."""
    polls = 1 + sum(1 - cdf(t) for t in schedule[:-1])
    late = late_between(0.0, schedule[0])
    late += sum(late_between(a, b) for a, b in itertools.pairwise(schedule))
    return polls, late


def one_run(first: float, rng: random.Random, jobs: int = 30) -> tuple[float, float]:
    """Ratio to fixed polling and p95 late share of one run of ``jobs`` jobs (polls at
    ``first``, then gaps of 10% of the age, a 2 s floor; 50 ms each way to the API)."""
    polls = fixed = 0.0
    shares = []
    for _ in range(jobs):
        took = rng.lognormvariate(math.log(MEDIAN), SIGMA)
        at, count = first, 1
        while at + 0.05 < took:
            at, count = at + max(FIXED, GROWTH * at), count + 1
        polls += count
        fixed += max(1, math.ceil(took / FIXED))
        shares.append((at + 0.1 - took) / took)
    return polls / fixed, percentile(shares, 0.95)


def main() -> None:
    fixed = fixed_polls()
    print(f"fixed {FIXED:g} s polling: {fixed:.2f} polls per job")
    for lam in (20, 30, 40, 60, 100):
        schedule = best_schedule(lam)
        polls, late = expected(schedule)
        widest = max(b / a - 1 for a, b in itertools.pairwise(schedule))
        print(
            f"best schedule, lambda {lam}: first poll {schedule[0]:.1f} s, gaps <= {widest:.1%}, "
            f"{polls / fixed:.3f}x fixed polling, {late:.1%} noticed > 10% late"
        )
    rng = random.Random(1)
    policies: list[tuple[str, Callable[[list[float]], float]]] = [
        (f"first poll at {f:g} s", lambda _history, f=f: f) for f in (22.0, 22.5, 23.0, 23.5)
    ]
    policies.append(("0.9 x 10th pct of 30 earlier times", lambda h: 0.9 * percentile(h, 0.1)))
    for name, first in policies:
        runs = []
        for _ in range(2000):
            history = [rng.lognormvariate(math.log(MEDIAN), SIGMA) for _ in range(30)]
            runs.append(one_run(first(history), rng))
        ratio = statistics.mean(r for r, _ in runs)
        p95_ok = sum(p <= LATE for _, p in runs) / len(runs)
        both = sum(r <= 0.3 and p <= LATE for r, p in runs) / len(runs)
        print(f"{name}: mean {ratio:.3f}x, p95 <= 10% in {p95_ok:.0%} of runs, both in {both:.0%}")


if __name__ == "__main__":
    main()
