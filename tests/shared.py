"""Values and helpers that several test modules share (test modules never import each other)."""

import time

import numpy as np

from dualviz.config import Experiment
from dualviz.relu.patterns import patterns, with_bias
from dualviz.results import Snapshot

# -- jobs ---------------------------------------------------------------------------------------
QUICK = Experiment(iterations=150, restarts=1)
# A run that must still be training when a test acts on it trains with Adam: L-BFGS ends a
# restart once its subproblems stall, and runs sized for "tens of seconds" with it took
# 0.8-8.7 s (one, limited to 8 s, finished before its limit on CI). An Adam restart ends only
# at a known optimum or after its iterations, here 0.7 ms (n=100, d=20) to about 2 ms (n=200,
# d=40) each; the durations next to each run are measured, warm, on this 2-core machine.
SLOW_TRAINING = {"optimizer": "adam", "lr": 0.01}
# Still running when a test acts on it (minutes): it is always cancelled or limited.
LONG = Experiment(n=200, d=40, k=10, x_rank=40, target_rank=5, width=16, iterations=20000,
                  restarts=20, **SLOW_TRAINING)


def wait_for(condition, timeout=60.0, every=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"{what}: not reached within {timeout:g} s")


def snapshot(i: int) -> Snapshot:
    return Snapshot(restart=0, iteration=i, objective=1.0 / (i + 1), loss=0.0, regularizer=1.0,
                    residual=0.0, singular_values=[1.0, 0.5], layer_singular_values=[[1.0]],
                    elapsed=i * 1e-3, done=False)


# -- hostile text -------------------------------------------------------------------------------
NASTY_TEXT = [
    "nan", "NaN", "-nan", "inf", "-inf", "+inf", "Infinity", "1e308", "-1e308", "1e309",
    "1e-320", "0", "-0", "-0.0", "0.5", "2.5", "9.5", "10.5", "1_000", " 3 ", "0x10",
    "<script>alert(1)</script>", "", " ", "\n", "\x00", "∞", "３", "½", "é", "🙂", "None",
    "true", "TRUE", "yes", "off", "maybe", "synthetic", "SYNTHETIC", "0123456789abcdef",
    "0123456789ABCDEF", "0123456789abcde", "2147483647", "2147483648", "-1",
    "9" * 400, "-" + "9" * 400, "1" + "0" * 5000,
]


# -- two-layer ReLU instances -------------------------------------------------------------------
def instance(n: int, d: int, seed: int):
    """Seeded data plus bias and a noisy ReLU teacher, with all (or sampled) patterns."""
    rng = np.random.default_rng(seed)
    X = with_bias(rng.standard_normal((n, d)))
    y = np.maximum(X @ rng.standard_normal((d + 1, 3)), 0) @ rng.standard_normal(3)
    y += 0.05 * rng.standard_normal(n)
    found = patterns(X, max_patterns=3000, samples=20_000, seed=seed)
    return X, y, found


CASES = [  # (N, d, seed, beta / N, objective)
    (20, 1, 0, 0.01, "squared"),
    (20, 2, 1, 0.01, "squared"),
    (20, 2, 2, 0.1, "squared"),
    (30, 2, 3, 0.05, "interpolation"),
    (20, 1, 4, 0.1, "interpolation"),
    (40, 4, 5, 0.05, "squared"),  # rank 5: sampled patterns
]
