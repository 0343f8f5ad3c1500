"""scikit-learn's side of bench/emotions.ts: the same one-vs-rest L1 logistic problems, timed.

Usage: /usr/bin/python3 tools/solvers/bench_sklearn.py DIR
DIR holds X.f64 (row-major float64, n x p, the standardised design), and meta.json:
  {"n", "p", "labels": [class per sample], "lambda", "ours": [{"objective", "intercept", "coef": {j: w}}],
   "path": [lambda grid], "path_classes": [class ids], "saga_classes": [class ids]}
Objective (both sides): (1/n) sum log(1 + exp(eta)) - y eta + lambda ||w||_1, intercept unpenalised;
sklearn's C = 1 / (n lambda). liblinear penalises the intercept through intercept_scaling; with 1e3 the
penalty is negligible (the objective below is evaluated without it).
Prints JSON: per solver, wall seconds, and F(sklearn) - F(ours) per class (max, mean, min).
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

warnings.simplefilter("ignore", ConvergenceWarning)


def objective(X, y, w, b, lam):
    eta = X @ w + b
    return float((np.logaddexp(0.0, eta) - y * eta).mean() + lam * np.abs(w).sum())


def fit(X, y, lam, solver, tol, warm=None):
    C = 1.0 / (X.shape[0] * lam)
    extra = {"intercept_scaling": 1e3} if solver == "liblinear" else {}
    cap = 1000 if solver == "liblinear" else 100000  # liblinear's randomised CD can stall at a tight tol
    model = LogisticRegression(
        penalty="l1", C=C, solver=solver, tol=tol, max_iter=cap, random_state=0, **extra
    )
    model.fit(X, y)
    return model.coef_.ravel(), float(model.intercept_[0])


def main() -> None:
    folder = sys.argv[1]
    with open(os.path.join(folder, "meta.json")) as handle:
        meta = json.load(handle)
    n, p = meta["n"], meta["p"]
    X = np.fromfile(os.path.join(folder, "X.f64"), dtype="<f8").reshape(n, p)
    labels = np.asarray(meta["labels"])
    lam = meta["lambda"]
    ours = []
    for k, entry in enumerate(meta["ours"]):
        w = np.zeros(p)
        for j, v in entry["coef"].items():
            w[int(j)] = v
        y = (labels == k).astype(float)
        ours.append(objective(X, y, w, entry["intercept"], lam))
    out = {"n": n, "p": p, "classes": len(ours), "lambda": lam}
    for solver, tol, classes in [
        ("liblinear", 1e-4, range(len(ours))),
        ("liblinear", 1e-8, range(len(ours))),
        ("saga", 1e-4, meta["saga_classes"]),
    ]:
        gaps, support_ours, support_sk = [], 0, 0
        start = time.perf_counter()
        fits = [fit(X, (labels == k).astype(float), lam, solver, tol) for k in classes]
        seconds = time.perf_counter() - start
        for k, (w, b) in zip(classes, fits):
            gaps.append(objective(X, (labels == k).astype(float), w, b, lam) - ours[k])
            support_sk += int(np.count_nonzero(np.abs(w) > 1e-8))
            support_ours += len(meta["ours"][k]["coef"])
        out[f"{solver}@tol={tol:g}"] = {
            "classes": len(fits),
            "seconds": seconds,
            "objective_gap_max": max(gaps),
            "objective_gap_min": min(gaps),
            "objective_gap_mean": float(np.mean(gaps)),
            "support_sklearn": support_sk,
            "support_ours": support_ours,
        }
    # A regularisation path per class (liblinear has no warm start), to extrapolate a CV's cost.
    start = time.perf_counter()
    for k in meta["path_classes"]:
        y = (labels == k).astype(float)
        for value in meta["path"]:
            fit(X, y, value, "liblinear", 1e-4)
    per_path = (time.perf_counter() - start) / max(len(meta["path_classes"]), 1)
    out["liblinear_path"] = {"lambdas": len(meta["path"]), "seconds_per_class_path": per_path}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
