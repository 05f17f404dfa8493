"""ReLU networks: activation patterns, the two-layer convex program and its certified solvers,
three layers on rank-one data, and which bound applies to an experiment (docs/math.md §4, §5)."""
