"""The two-layer ReLU convex program: the working-set solver, CVXPY + Clarabel and pyscnn.

A plain script, not a test: it prints figures and asserts nothing. For fixed seeded instances
(X Gaussian N x d plus a bias column, y from a random ReLU teacher plus small noise) it samples
gate vectors g, keeps those giving distinct non-zero patterns 1[X1 g >= 0] (at N = 20: every
pattern that 10^6 Gaussian gates find), and solves

    min 0.5 || sum_i D_i X1 (v_i - w_i) - y ||^2 + beta sum_i (||v_i|| + ||w_i||)
    s.t. (2 D_i - I) X1 v_i >= 0, (2 D_i - I) X1 w_i >= 0

three times over the SAME gates:

* working set: :func:`dualviz.relu.working_set.solve_working_set` (the app's solver), certified to
  a relative gap of 1e-8; its value is the upper end of the certified bracket;
* Clarabel: :func:`dualviz.relu.convex.two_layer_convex` (CVXPY + Clarabel, tolerances 1e-10),
  compiling anew;
* pyscnn: ``scnn.solvers.AL`` on ``ConvexReLU(G)`` with lam = beta / N (its squared loss is
  divided by N), float64, no unitizing. It reorders the gates and tests X g > 0 strictly, so
  its patterns are re-derived from the returned model's G; if they differ from ours as a set,
  our program is solved again on exactly its patterns so that both numbers are of one program.
  Its objective is evaluated here, in our units, from its returned convex weights, with its
  largest cone violation max_i (-(2 D_i - I) X1 v_i)_+ (and the same for w_i).

Every solve except the interactive-target timing runs in a fresh child process with a time
limit (``--limit``), so a solve that would take too long is stopped and reported as such.
The interactive targets are also timed in this process, 3 times after one untimed warm-up:
the working set at N = 20 with all patterns (target < 0.25 s) and at N = 100, d = 5, 200
patterns (target < 1 s, issue 4).

Usage: ``.venv/bin/python benchmarks/bench_relu.py [--sizes 0,1,2,3] [--limit SECONDS]
[--no-pyscnn]``. Install pyscnn into the venv with
``.venv/bin/pip install --no-deps pyscnn linalg-backends opt-einsum tqdm``.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import time
from dataclasses import dataclass

import numpy as np

# A plain script: make the repository's package importable without installing it.
from dualviz.relu.convex import two_layer_convex
from dualviz.relu.patterns import with_bias
from dualviz.relu.working_set import solve_working_set

INSTALL = ".venv/bin/pip install --no-deps pyscnn linalg-backends opt-einsum tqdm"
# (N, d, patterns); None: every pattern ALL_GATES Gaussian gates find
SIZES = ((20, 3, None), (100, 5, 200), (200, 10, 500), (500, 20, 1000))
ALL_GATES = 1_000_000
BETA_FACTORS = (0.01, 0.1)  # beta = factor * N
TEACHER_WIDTH = 3
NOISE = 0.05  # noise standard deviation relative to the teacher output's
AL_TOL = 1e-6  # pyscnn's defaults for tol and constraint_tol
INTERACTIVE_REPEATS = 3


# -- instances ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Instance:
    n: int
    d: int
    X1: np.ndarray  # N x (d + 1): the data with its column of ones
    y: np.ndarray  # (N,)
    G: np.ndarray  # (d + 1) x P gate vectors, one per distinct non-zero pattern
    masks: np.ndarray  # P x N, masks[i] = 1[X1 G[:, i] >= 0]


def make_instance(n: int, d: int, patterns: int | None, seed: int) -> Instance:
    """Seeded data, a ReLU teacher with small noise, and `patterns` gates of distinct patterns
    (patterns=None: one gate for every distinct pattern among ALL_GATES Gaussian gates)."""
    rng = np.random.default_rng(seed)
    X1 = with_bias(rng.standard_normal((n, d)))
    U = rng.standard_normal((d + 1, TEACHER_WIDTH))
    a = rng.standard_normal(TEACHER_WIDTH)
    clean = np.maximum(X1 @ U, 0.0) @ a
    y = clean + NOISE * np.std(clean) * rng.standard_normal(n)
    gates: list[np.ndarray] = []
    seen: set[bytes] = set()
    batch_size = 1000 if patterns is None else patterns
    batches = ALL_GATES // batch_size if patterns is None else 1000
    for _ in range(batches):  # batches of Gaussian gates until enough distinct patterns
        batch = rng.standard_normal((d + 1, batch_size))
        for g, mask in zip(batch.T, (X1 @ batch >= 0).T, strict=True):
            key = np.packbits(mask).tobytes()
            if mask.any() and key not in seen:
                seen.add(key)
                gates.append(g)
            if len(gates) == patterns:
                break
        if len(gates) == patterns:
            break
    if patterns is not None and len(gates) < patterns:
        raise RuntimeError(f"found only {len(gates)} distinct patterns")
    G = np.array(gates).T
    return Instance(n, d, X1, y, G, (X1 @ G >= 0).T)


# -- the solves (each in a child process, with a time limit) -----------------------------

def clarabel_solve(X1: np.ndarray, y: np.ndarray, beta: float, masks: np.ndarray) -> dict:
    res = two_layer_convex(X1, y, beta, masks, complete=False)
    return {"seconds": res.seconds, "value": res.value, "status": res.status}


def working_set_solve(X1: np.ndarray, y: np.ndarray, beta: float, masks: np.ndarray) -> dict:
    res = solve_working_set(X1, y, beta, masks)
    cert = res.certificate
    return {"seconds": res.seconds, "value": None if cert is None else cert.upper,
            "gap": None if cert is None else cert.relative_gap, "status": res.status,
            "rounds": res.rounds, "columns": len(res.columns)}


def pyscnn_available() -> bool:
    try:
        import scnn  # noqa: F401
    except ImportError:
        return False
    return True


def pyscnn_solve(X1: np.ndarray, y: np.ndarray, beta: float, G: np.ndarray) -> dict:
    import scnn.metrics
    import scnn.models
    import scnn.optimize
    import scnn.regularizers
    import scnn.solvers

    n = X1.shape[0]
    model = scnn.models.ConvexReLU(G.copy(), c=1, bias=False)
    solver = scnn.solvers.AL(model, tol=AL_TOL, constraint_tol=AL_TOL)
    started = time.perf_counter()
    model, _ = scnn.optimize.optimize_model(
        model, solver, scnn.metrics.Metrics(), X1, y,
        regularizer=scnn.regularizers.NeuronGL1(beta / n), return_convex=True,
        unitize_data=False, dtype="float64")
    seconds = time.perf_counter() - started
    V, W = (np.asarray(p, dtype=float)[0].T for p in model.parameters)  # d x P each
    return {"seconds": seconds, "G": np.asarray(model.G, dtype=float), "V": V, "W": W}


def _child(conn, fn, args) -> None:
    try:
        conn.send(("ok", fn(*args)))
    except BaseException as exc:  # report anything, including MemoryError, to the parent
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def limited(fn, args: tuple, limit: float) -> tuple[str, dict | str]:
    """fn(*args) in a fresh (spawned) process: ("ok", result), ("error", msg) or ("timeout", "")."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args))
    proc.start()
    child.close()
    try:
        if parent.poll(limit):
            try:
                return parent.recv()
            except EOFError:
                return "error", f"the child process died (exit code {proc.exitcode})"
        return "timeout", ""
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()


# -- evaluation in our units ---------------------------------------------------------------

def our_objective(X1, y, beta, masks, V, W) -> tuple[float, float, float]:
    """(objective, largest absolute cone violation, that violation over max |X1 v|)."""
    M = masks.T.astype(float)  # N x P
    prediction = np.sum(M * (X1 @ (V - W)), axis=1)
    value = (0.5 * float(np.sum((prediction - y) ** 2))
             + beta * float(np.sum(np.linalg.norm(V, axis=0)) + np.sum(np.linalg.norm(W, axis=0))))
    signs = 2.0 * M - 1.0
    violation = max(float(np.max(np.maximum(-signs * (X1 @ V), 0.0))),
                    float(np.max(np.maximum(-signs * (X1 @ W), 0.0))))
    scale = max(float(np.max(np.abs(X1 @ V))), float(np.max(np.abs(X1 @ W))), 1e-300)
    return value, violation, violation / scale


def same_set(a: np.ndarray, b: np.ndarray) -> bool:
    return {r.tobytes() for r in np.packbits(a, axis=1)} == {r.tobytes()
                                                            for r in np.packbits(b, axis=1)}


# -- the run ---------------------------------------------------------------------------------

def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def interactive_check(inst: Instance, beta: float) -> dict:
    """One untimed warm-up, then INTERACTIVE_REPEATS timed working-set solves in this process."""
    first = working_set_solve(inst.X1, inst.y, beta, inst.masks)
    runs = [working_set_solve(inst.X1, inst.y, beta, inst.masks)
            for _ in range(INTERACTIVE_REPEATS)]
    times = [r["seconds"] for r in runs]
    return {"cold": first["seconds"], "times": times, "median": statistics.median(times),
            "value": runs[-1]["value"], "status": runs[-1]["status"]}


def failure(kind: str, out, limit: float, verb: str) -> str:
    if kind == "timeout":
        return f"{verb}: over the {limit:g} s limit (no result)"
    return f"failed: {out}"


def run_case(inst: Instance, beta: float, limit: float, use_pyscnn: bool,
             notes: list[str]) -> dict:
    label = f"N={inst.n} d={inst.d} P={inst.masks.shape[0]} beta={beta:g}"
    row: dict = {"case": label}
    kind, out = limited(working_set_solve, (inst.X1, inst.y, beta, inst.masks), limit)
    if kind == "ok":
        row |= {"w_s": out["seconds"], "w_val": out["value"], "w_gap": out["gap"],
                "w_status": out["status"], "w_rounds": out["rounds"]}
    else:
        notes.append(f"{label}: working set {failure(kind, out, limit, 'stopped')}")
    kind, out = limited(clarabel_solve, (inst.X1, inst.y, beta, inst.masks), limit)
    if kind == "ok":
        row |= {"c_s": out["seconds"], "c_val": out["value"], "c_status": out["status"]}
        if "w_s" in row and out["value"] is not None:
            row["w_rel"] = (row["w_val"] - out["value"]) / abs(out["value"])
            row["c_ratio"] = out["seconds"] / row["w_s"]
    else:
        notes.append(f"{label}: Clarabel {failure(kind, out, limit, 'stopped')}")
        if "w_s" in row:
            row["c_ratio_min"] = limit / row["w_s"]
    if not use_pyscnn:
        return row
    kind, out = limited(pyscnn_solve, (inst.X1, inst.y, beta, inst.G), limit)
    if kind != "ok":
        notes.append(f"{label}: pyscnn AL {failure(kind, out, limit, 'stopped')}")
        return row
    p_masks = (inst.X1 @ out["G"] > 0).T
    value, viol, rel_viol = our_objective(inst.X1, inst.y, beta, p_masks, out["V"], out["W"])
    row |= {"p_s": out["seconds"], "p_val": value, "viol": viol, "rel_viol": rel_viol}
    ref = row.get("w_val")
    if not same_set(p_masks, inst.masks):
        notes.append(f"{label}: pyscnn's patterns differ from ours ({p_masks.shape[0]} rows); "
                     "compared with the working set on its patterns")
        kind, again = limited(working_set_solve, (inst.X1, inst.y, beta, p_masks), limit)
        ref = again["value"] if kind == "ok" else None
    if ref is not None:
        row["p_rel"] = (value - ref) / abs(ref)
    if "w_s" in row:
        row["p_ratio"] = out["seconds"] / row["w_s"]
    return row


def print_table(rows: list[dict]) -> None:
    header = ("case", "WS s", "WS value (certified upper)", "WS gap", "rounds", "Clarabel s",
              "(ws-cl)/cl", "t_cl/t_ws", "pyscnn s", "(py-ws)/ws", "cone viol/max|Xv|",
              "t_py/t_ws")
    cells = [header] + [(
        r["case"], fmt(r.get("w_s"), ".3f"), fmt(r.get("w_val"), ".12g"),
        fmt(r.get("w_gap"), ".1e"), fmt(r.get("w_rounds"), "d"), fmt(r.get("c_s"), ".3f"),
        fmt(r.get("w_rel"), "+.1e"),
        fmt(r.get("c_ratio"), ".1f") if "c_ratio" in r else
        (f">{r['c_ratio_min']:.1f}" if "c_ratio_min" in r else "-"),
        fmt(r.get("p_s"), ".2f"), fmt(r.get("p_rel"), "+.1e"), fmt(r.get("rel_viol"), ".1e"),
        fmt(r.get("p_ratio"), ".1f")) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    for i, c in enumerate(cells):
        print("  ".join(s.ljust(w) if j == 0 else s.rjust(w)
                        for j, (s, w) in enumerate(zip(c, widths, strict=True))))
        if i == 0:
            print("  ".join("-" * w for w in widths))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,1,2,3",
                        help=f"indices into {SIZES} (default all)")
    parser.add_argument("--no-pyscnn", action="store_true", help="skip pyscnn")
    parser.add_argument("--limit", type=float, default=600.0,
                        help="seconds allowed to each solve in a child process (default 600)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import clarabel
    import cvxpy
    print(f"python {platform.python_version()}, cvxpy {cvxpy.__version__}, "
          f"clarabel {clarabel.__version__}, numpy {np.__version__}")
    print(f"platform : {platform.platform()} ({platform.processor() or platform.machine()}), "
          f"{os.cpu_count()} CPUs")
    print(f"load average at start (1, 5, 15 min): {os.getloadavg()}")
    use_pyscnn = pyscnn_available() and not args.no_pyscnn
    if use_pyscnn:
        import scnn
        import torch
        print(f"pyscnn (scnn) {getattr(scnn, '__version__', '?')}, torch {torch.__version__} "
              f"({torch.get_num_threads()} threads); AL tol = constraint_tol = {AL_TOL:g}")
    else:
        print(f"pyscnn is not importable: only the Clarabel part runs. Install it with\n"
              f"  {INSTALL}\n(never plain `pip install pyscnn`: it pulls in a CUDA torch)")
    print(f"per-solve limit {args.limit:g} s; seed {args.seed}\n")

    sizes = [SIZES[int(i)] for i in args.sizes.split(",")]
    rows: list[dict] = []
    notes: list[str] = []
    interactive: list[tuple[str, float, dict]] = []
    for n, d, patterns in sizes:
        inst = make_instance(n, d, patterns, args.seed)
        for factor in BETA_FACTORS:
            beta = factor * n
            if n in (20, 100):
                target = 0.25 if n == 20 else 1.0
                interactive.append((f"N={n} d={d} P={inst.masks.shape[0]} beta={beta:g}",
                                    target, interactive_check(inst, beta)))
            rows.append(run_case(inst, beta, args.limit, use_pyscnn, notes))
            print(f"[done {rows[-1]['case']}, load {os.getloadavg()[0]:.2f}]", flush=True)

    print()
    print_table(rows)
    print("\nobjectives in our units: 0.5||sum D_i X1 (v_i - w_i) - y||^2 "
          "+ beta sum(||v_i|| + ||w_i||), pyscnn's from its returned convex weights")
    print("WS gap: the working set's certified relative gap (upper - lower) / upper")
    print("times: each solver in a fresh process; Clarabel = CVXPY compile + solve; "
          "pyscnn = optimize_model")
    for note in notes:
        print(f"note: {note}")
    for label, target, check in interactive:
        med = check["median"]
        print(f"\ninteractive ({label}): working set "
              f"{', '.join(f'{t:.3f}' for t in check['times'])} s (median {med:.3f} s; "
              f"untimed warm-up {check['cold']:.3f} s), {check['status']}; "
              f"under {target:g} s: {'YES' if med < target else 'NO'}")
    print(f"\nload average at end (1, 5, 15 min): {os.getloadavg()}")


if __name__ == "__main__":
    main()
