"""Pricing the second-layer patterns of the three-layer program by leaves (docs/math.md §6.4).

For a dual vector lam and an outer sign sigma, the price of the second-layer pattern D is

    v_D = max { sigma lam^T D h : h = sum_g J_g w_g, w_g in K_g, sum_g ||w_g|| <= 1,
                                  (2 D - I) h >= 0 },

and lam is dual feasible iff v_D <= weight (= beta / t) for every D and both signs. There are
2^N - 1 patterns D, but their maximum has a smaller exact description. Write l = sigma lam,
S+ = {i : l_i > 0} and S0 = {i : l_i <= 0}. Then

    max_D v_D = max_{h in B} l^T relu(h)   (B: the feasible h above, without the sign rows)
              = max_{A subset of S+} V(A),
    V(A) = max_{h in B, h_A >= 0, h_{S+ minus A} <= 0} l_A^T h_A + sum_{i in S0} l_i relu(h_i).

Proof: on the region of h with sign pattern D the objective l^T D h is l^T relu(h); for
i in S0 the term l_i relu(h_i) is concave, so each V(A) is a convex program (an SOCP; relu(h_i)
becomes r_i >= h_i, r_i >= 0 priced at |l_i|), and taking the best D over the samples of S0 is
the same as letting h_i take either sign there. So 2^{|S+|} convex programs (a "leaf" each)
price all 2^N patterns exactly, for both signs 2^{|S+|} + 2^{|S0|} of them, not 2^{N+1}.

Each leaf has a dual: by conic duality V(A) = min F(e) over the box E(A) = {e : e_i >= l_i on
A, e_i <= 0 on S+ minus A, l_i <= e_i <= 0 on S0}, F the two-layer dual norm
(:func:`dualviz.relu.three_layer_geometry.dual_norm`, evaluated exactly). So ANY e, clipped into the
box, bounds the leaf from above; e = l 1_A always exists (F(l_A)), and a leaf's programme returns
its optimal e, which is kept (by the pattern D it found) and, lam moving little between rounds,
bounds the same leaf cheaply in the next round. Only leaves whose bound exceeds the threshold are
solved. The certificate's bound is the largest leaf bound: rigorous whatever the solver's
accuracy, since it is F at an explicit point of the box.

Beyond LEAF_LIMIT leaves per sign the leaves are not enumerated: a sampled set of them is priced
(the sets A of the patterns already in the master and of their one-sample flips, and those of
random networks), and the pricing is marked incomplete.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .three_layer_conic import IN, NEG, OUT, Groups, solve_node
from .three_layer_geometry import FirstLayer, dual_norm, group_values

LEAF_LIMIT = 1 << 12  # leaves enumerated per sign (2^|S+|); beyond, they are sampled
SAMPLED_LEAVES = 512  # random subsets A priced per sign when sampling
RANDOM_UNITS = 5000  # random second-layer units whose patterns are sampled
ACTIVE_GROUP = 1e-7  # a group (or an h_i) is non-zero above this fraction of the largest
# A leaf is solved over a working set of groups (at its optimum e*, only groups whose price
# equals F(e*) carry weight): first those priced within START_FRACTION of the best at the
# leaf's bounding e (at least START_GROUPS), then those priced above the restricted value.
START_GROUPS = 8
START_FRACTION = 0.5
ADD_GROUPS = 16
LEAF_PASSES = 8
EXACT_LEAF = 1e-10  # relative: F(e) within this of the restricted value closes the leaf


@dataclass(frozen=True, eq=False)
class Violator:
    """A leaf whose programme exceeds the threshold: the unit it found (pattern D, sign, the
    groups with non-zero w) and its value."""

    value: float
    sigma: int
    D: np.ndarray
    groups: np.ndarray


@dataclass(frozen=True, eq=False)
class Pricing:
    """One pricing pass. bound: the largest upper bound on any leaf's value (so on every v_D
    when `complete`); violators: solved leaves above the threshold, largest first."""

    violators: list[Violator]
    bound: float
    complete: bool
    leaves: int
    solves: int
    failed: int = 0


@dataclass
class Pricer:
    """Prices every (or a sample of every) second-layer pattern for a given lam."""

    layer: FirstLayer
    seed: int = 0
    leaf_limit: int = LEAF_LIMIT
    sampled_leaves: int = SAMPLED_LEAVES
    pool: dict = field(default_factory=dict)  # (sigma, D bytes) -> (D, e) of a past solve
    J: np.ndarray = field(init=False)
    rows: list = field(init=False)

    def __post_init__(self) -> None:
        self.J = self.layer.group_matrices()
        self.rows = self.layer.group_rows()
        self.rng = np.random.default_rng(self.seed)
        self._random_patterns: np.ndarray | None = None

    def remember(self, sigma: int, D: np.ndarray, e: np.ndarray) -> None:
        """Keep the multiplier e found for pattern D (a master block's or a leaf's)."""
        self.pool[(sigma, np.packbits(D).tobytes())] = (D.copy(), e.copy())

    def price(self, lam: np.ndarray, threshold: float, max_violators: int,
              known: dict | None = None, deadline: float | None = None) -> Pricing:
        """Leaves by decreasing bound, solved while their bound exceeds the threshold, until
        max_violators new violators are found. known: (sigma, D bytes) -> groups of the
        master's units: a leaf that finds one of them with no new group is violated by
        rounding only; it raises the bound but is no violator. deadline (time.perf_counter()):
        past it no more leaf is solved; the unsolved leaves keep their bounds (F at a point of
        their box), so the pricing's bound stays valid, only looser."""
        violators: list[Violator] = []
        bound, leaves, solves, failed, complete = 0.0, 0, 0, 0, True
        for sigma in (1, -1):
            signed = sigma * lam
            positive = np.flatnonzero(signed > 0)
            sets, enumerated = self._leaf_sets(sigma, positive)
            complete &= enumerated
            leaves += len(sets)
            found = self._price_sign(sigma, signed, positive, sets, threshold,
                                     max_violators - len(violators), known or {}, deadline)
            violators += found[0]
            bound = max(bound, found[1])
            solves += found[2]
            failed += found[3]
        violators.sort(key=lambda v: -v.value)
        return Pricing(violators, bound, complete, leaves, solves, failed)

    # -- leaves -------------------------------------------------------------------------------

    def random_patterns(self, count: int = RANDOM_UNITS) -> np.ndarray:
        """Second-layer patterns 1[relu(X W1) u >= 0] of seeded random units (Gaussian W1 of
        a random width, Gaussian u): the sample of patterns D used beyond LEAF_LIMIT."""
        if self._random_patterns is None:
            X = self.layer.X
            rng = np.random.default_rng(self.seed + 1)
            found = []
            for width in (1, 2, 4, 8, 16):
                W1 = rng.standard_normal((count // 5, X.shape[1], width))
                u = rng.standard_normal((count // 5, width, 1))
                h = (np.maximum(X[None] @ W1, 0.0) @ u)[:, :, 0]
                found.append(h >= 0)
            self._random_patterns = np.unique(np.concatenate(found), axis=0)
        return self._random_patterns

    def _leaf_sets(self, sigma: int, positive: np.ndarray) -> tuple[np.ndarray, bool]:
        """(L x |S+|) bool: the sets A to price, and whether they are all of them.

        Sampled: A = D & S+ for the patterns D met so far (the master's, the leaves') and
        their one-sample flips, for random units' patterns, and random subsets."""
        k = len(positive)
        if (1 << k) <= self.leaf_limit:
            codes = np.arange(1 << k)
            return ((codes[:, None] >> np.arange(k)) & 1).astype(bool), True
        met = [D[positive] for (s, _), (D, _) in self.pool.items() if s == sigma]
        base = np.array([np.ones(k, dtype=bool), *met])
        flips = np.repeat(base, k, axis=0)
        flips[np.arange(len(flips)), np.tile(np.arange(k), len(base))] ^= True
        units = self.random_patterns()[:, positive]
        subsets = self.rng.random((self.sampled_leaves, k)) < self.rng.random(
            (self.sampled_leaves, 1))
        sets = np.unique(np.concatenate([base, flips, units, subsets]), axis=0)
        return sets[sets.any(axis=1)], False

    @staticmethod
    def _clip(e: np.ndarray, signed: np.ndarray, inside: np.ndarray,
              positive_mask: np.ndarray) -> np.ndarray:
        """e clipped into the boxes E(A) of the leaves (rows of `inside`: A as N-masks):
        e_i >= l_i on A, e_i <= 0 on S+ minus A, l_i <= e_i <= 0 on S0 (l = signed lam)."""
        outside = positive_mask & ~inside
        out = np.where(inside, np.maximum(e, signed), e)
        out = np.where(outside, np.minimum(out, 0.0), out)
        return np.where(~positive_mask, np.clip(out, signed, 0.0), out)

    def _leaf_bounds(self, sigma, signed, positive_mask, inside):
        """Per leaf, the least F over its candidate e's clipped into its box: signed 1_A
        (always in the box), and the pool's e of every pattern D with D & S+ = A."""
        positive = np.flatnonzero(positive_mask)
        index = {row.tobytes(): i for i, row in
                 enumerate(np.packbits(inside[:, positive], axis=1))}
        owners = list(range(len(inside)))
        candidates = [np.where(inside, signed, 0.0)]
        for (s, _), (D, e) in self.pool.items():
            i = index.get(np.packbits(D[positive]).tobytes()) if s == sigma else None
            if i is not None:
                owners.append(i)
                candidates.append(e[None, :])
        owners = np.array(owners)
        E = self._clip(np.concatenate(candidates), signed, inside[owners], positive_mask)
        values = dual_norm(self.layer, E)
        bounds = np.full(len(inside), np.inf)
        np.minimum.at(bounds, owners, values)
        best = np.zeros_like(inside, dtype=float)
        for row, (owner, value) in enumerate(zip(owners, values, strict=True)):
            if value <= bounds[owner]:
                best[owner] = E[row]
        return bounds, best

    def _price_sign(self, sigma, signed, positive, sets, threshold, wanted, known,
                    deadline=None):
        N = signed.shape[0]
        positive_mask = np.zeros(N, dtype=bool)
        positive_mask[positive] = True
        inside = np.zeros((len(sets), N), dtype=bool)
        inside[:, positive] = sets
        bounds, best_e = self._leaf_bounds(sigma, signed, positive_mask, inside)
        violators: list[Violator] = []
        seen: set = set()
        solves = failed = 0
        for i in np.argsort(-bounds):
            if bounds[i] <= threshold or len(violators) >= wanted:
                break
            if deadline is not None and time.perf_counter() > deadline:
                break  # the remaining leaves keep their (valid) bounds
            kinds = np.full(N, NEG)
            kinds[positive] = np.where(sets[i], IN, OUT)
            box = (signed, inside[i][None, :], positive_mask)
            leaf = self._solve_leaf(signed, kinds, best_e[i], box, threshold)
            solves += leaf["solves"]
            if leaf["value"] is None:
                failed += 1  # its bound stays the candidate's: valid, only looser
                continue
            bounds[i] = min(bounds[i], leaf["bound"])
            h = leaf["h"]
            scale = max(float(np.abs(h).max()), 1e-300)
            D = inside[i] | (~positive_mask & (h > ACTIVE_GROUP * scale))
            self.remember(sigma, D, leaf["e"])
            if leaf["value"] <= threshold:
                continue
            groups = leaf["groups"]
            key = (sigma, np.packbits(D).tobytes())
            if key in known and known[key].issuperset(groups.tolist()):
                continue  # the master has this unit: a rounding-level violation
            if key in seen:
                continue  # two leaves found the same unit (h_i = 0 on a sample of S+)
            seen.add(key)
            violators.append(Violator(leaf["value"], sigma, D, groups))
        return violators, float(bounds.max(initial=0.0)), solves, failed

    def _solve_leaf(self, signed, kinds, e0, box, threshold) -> dict:
        """One leaf over a growing working set of groups. Its restricted value is a lower bound
        (a feasible unit), F at its multiplier clipped into the box an upper bound; stops when
        they meet (EXACT_LEAF) or the value exceeds the threshold (a violator)."""
        prices = group_values(self.layer, e0[None, :])[0]
        order = np.argsort(-prices)
        top = prices[order[0]] if len(order) else 0.0
        count = max(START_GROUPS, int(np.sum(prices >= START_FRACTION * top)))
        chosen = np.sort(order[:count])
        solves = 0
        out: dict = {"value": None}
        for _ in range(LEAF_PASSES):
            _, sol = solve_node(Groups.of(self.J, self.rows, chosen), signed, kinds)
            solves += 1
            if sol is None:
                break
            e = self._clip(sol["e"][None, :], *box)
            prices = group_values(self.layer, e)[0]
            bound = float(prices.max(initial=0.0))
            value = sol["value"]
            norms = np.linalg.norm(sol["w"], axis=1)
            live = norms > ACTIVE_GROUP * max(float(norms.max(initial=0.0)), 1e-300)
            out = {"value": value, "bound": bound, "e": e[0], "h": sol["h"],
                   "groups": chosen[live]}
            if bound <= value + EXACT_LEAF * max(abs(value), 1e-300) or value > threshold:
                break
            outside = np.setdiff1d(np.flatnonzero(prices > value), chosen)
            if len(outside) == 0:
                break
            extra = outside[np.argsort(-prices[outside])[:ADD_GROUPS]]
            chosen = np.sort(np.concatenate([chosen, extra]))
        out["solves"] = solves
        return out
