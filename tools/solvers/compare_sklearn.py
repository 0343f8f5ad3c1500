"""Compare the service's L1 logistic regression (src/sparse/logistic.ts) with scikit-learn.

Input: a JSON file with one or more problems (written by tools/solvers/export-problems.ts or by
bench/emotions.ts), each {"name", "X": [[...]] standardised rows, "y": [0/1], "lambda", and "ours":
{"objective", "coef", "intercept", "seconds"}}. Both sides minimise

    F(b, w) = (1/n) sum_i log(1 + exp(-s_i (b + x_i.w))) + lambda * ||w||_1,   s_i = 2 y_i - 1,

scikit-learn's `C * sum loss + ||w||_1` with C = 1 / (n * lambda). Two sklearn solvers run:
  - saga: unpenalised intercept, the same problem exactly; tol 1e-8 by default (--saga-tol), at most
    20,000 epochs: slow to reach a tight objective when n < p.
  - liblinear: penalises the intercept through a synthetic feature of value `intercept_scaling`; a large
    scaling (1e3) makes that penalty negligible, and the objective is evaluated without it.
Prints, per problem and solver, F(sklearn) - F(ours), the supports' agreement and both run times, as JSON.

Run with Debian's interpreter:  /usr/bin/python3 tools/solvers/compare_sklearn.py problems.json
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression


def objective(X: np.ndarray, y: np.ndarray, w: np.ndarray, b: float, lam: float) -> float:
    eta = X @ w + b
    loss = np.logaddexp(0.0, eta) - y * eta
    return float(loss.mean() + lam * np.abs(w).sum())


def support(w: np.ndarray, rel: float = 1e-6) -> set[int]:
    scale = max(float(np.abs(w).max(initial=0.0)), 1e-300)
    return {int(j) for j in np.flatnonzero(np.abs(w) > rel * scale)}


def run_sklearn(X, y, lam, solver: str, repeats: int, saga_tol: float = 1e-8):
    n = X.shape[0]
    C = 1.0 / (n * lam)
    kwargs = dict(penalty="l1", C=C, solver=solver, max_iter=100000, random_state=0)
    if solver == "liblinear":
        # A tighter tol sometimes stalls liblinear's randomised CD at max_iter with scaling 1e3.
        kwargs.update(tol=1e-6, intercept_scaling=1e3, max_iter=1000)
    else:
        kwargs.update(tol=saga_tol, max_iter=20000)
    best = float("inf")
    model = None
    for _ in range(repeats):
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model = LogisticRegression(**kwargs).fit(X, y)
        best = min(best, time.perf_counter() - start)
    return model.coef_.ravel(), float(model.intercept_[0]), best, int(np.max(model.n_iter_))


def compare(problem: dict, solvers: list[str], repeats: int, saga_tol: float) -> dict:
    X = np.asarray(problem["X"], dtype=np.float64)
    y = np.asarray(problem["y"], dtype=np.float64)
    lam = float(problem["lambda"])
    ours = problem["ours"]
    w_ours = np.asarray(ours["coef"], dtype=np.float64)
    f_ours = objective(X, y, w_ours, float(ours["intercept"]), lam)
    s_ours = support(w_ours)
    out = {
        "name": problem.get("name", ""),
        "n": X.shape[0],
        "p": X.shape[1],
        "lambda": lam,
        "ours": {
            "objective": f_ours,
            "reported_objective": ours["objective"],
            "support": len(s_ours),
            "seconds": ours.get("seconds"),
        },
    }
    for solver in solvers:
        w, b, seconds, n_iter = run_sklearn(X, y, lam, solver, repeats, saga_tol)
        s = support(w)
        out[solver] = {
            "objective": objective(X, y, w, b, lam),
            "objective_minus_ours": objective(X, y, w, b, lam) - f_ours,
            "support": len(s),
            "support_jaccard": len(s & s_ours) / max(len(s | s_ours), 1),
            "max_abs_coef_diff": float(np.abs(w - w_ours).max()),
            "seconds": seconds,
            "n_iter": n_iter,
        }
    return out


def main() -> None:
    args = sys.argv[1:]
    if not args:
        sys.exit(
            "usage: compare_sklearn.py problems.json [--solvers liblinear,saga] [--repeats 1] [--saga-tol 1e-8]"
        )
    solvers = ["liblinear", "saga"]
    repeats = 1
    if "--solvers" in args:
        solvers = args[args.index("--solvers") + 1].split(",")
    saga_tol = 1e-8
    if "--saga-tol" in args:
        saga_tol = float(args[args.index("--saga-tol") + 1])
    if "--repeats" in args:
        repeats = int(args[args.index("--repeats") + 1])
    with open(args[0]) as handle:
        problems = json.load(handle)
    if isinstance(problems, dict):
        problems = [problems]
    print(json.dumps([compare(problem, solvers, repeats, saga_tol) for problem in problems], indent=1))


if __name__ == "__main__":
    main()
