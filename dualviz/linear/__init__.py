"""Deep linear networks: the closed forms of docs/math.md §3, their CVXPY duals, and the table
(programs) that says which applies to an experiment."""
