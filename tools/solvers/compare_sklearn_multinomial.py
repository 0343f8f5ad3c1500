"""Compare the service's multinomial L1 logistic regression (src/sparse/multinomial.ts)
with scikit-learn's `LogisticRegression(penalty='l1', solver='saga', multi_class='multinomial')`.

Input: a JSON file written by tools/solvers/export-multinomial.ts: problems {"name", "X" (rows,
standardised), "labels" (0..K-1), "classes", "lambda", "ours": {"objective", "coef" (K x p),
"intercept" (K)}}. Both sides minimise

    F(b, B) = (1/n) sum_i [log sum_k exp(eta_ik) - eta_{i,y_i}] + lambda * sum_k ||B_k||_1,

scikit-learn's C * sum loss + ||B||_1 with C = 1 / (n * lambda); saga leaves the intercepts
unpenalised. Prints, per problem, F(sklearn) - F(ours), the supports' agreement and run times, as JSON.

Run with Debian's interpreter:  /usr/bin/python3 tools/solvers/compare_sklearn_multinomial.py FILE
"""

from __future__ import annotations

import json
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression


def objective(X: np.ndarray, labels: np.ndarray, B: np.ndarray, b: np.ndarray, lam: float) -> float:
    eta = X @ B.T + b
    m = eta.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(eta - m).sum(axis=1, keepdims=True)))[:, 0]
    loss = lse - eta[np.arange(len(labels)), labels]
    return float(loss.mean() + lam * np.abs(B).sum())


def support(B: np.ndarray, rel: float = 1e-5) -> set[tuple[int, int]]:
    scale = max(float(np.abs(B).max(initial=0.0)), 1e-300)
    return {(int(k), int(j)) for k, j in zip(*np.nonzero(np.abs(B) > rel * scale))}


def main() -> None:
    problems = json.load(open(sys.argv[1]))
    rows = []
    for problem in problems:
        X = np.asarray(problem["X"], dtype=np.float64)
        labels = np.asarray(problem["labels"], dtype=np.int64)
        lam = float(problem["lambda"])
        n = len(labels)
        ours_B = np.asarray(problem["ours"]["coef"])
        ours_b = np.asarray(problem["ours"]["intercept"])
        model = LogisticRegression(
            penalty="l1",
            solver="saga",
            multi_class="multinomial",
            C=1.0 / (n * lam),
            tol=1e-10,
            max_iter=200_000,
        )
        started = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, labels)
        seconds = time.perf_counter() - started
        theirs = objective(X, labels, model.coef_, model.intercept_, lam)
        ours = objective(X, labels, ours_B, ours_b, lam)
        s_ours, s_theirs = support(ours_B), support(model.coef_)
        union = s_ours | s_theirs
        rows.append(
            {
                "name": problem["name"],
                "objective_ours_recomputed": ours,
                "objective_ours_reported": problem["ours"]["objective"],
                "objective_minus_ours": theirs - ours,
                "support_jaccard": len(s_ours & s_theirs) / len(union) if union else 1.0,
                "support_sizes": [len(s_theirs), len(s_ours)],
                "seconds": {"sklearn_saga": seconds, "ours": problem["ours"]["seconds"]},
            }
        )
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
