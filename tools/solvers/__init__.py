"""scikit-learn comparisons of the sparse solvers (src/sparse/)."""
