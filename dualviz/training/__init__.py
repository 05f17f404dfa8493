"""The non-convex networks (PyTorch) and their training: restarts, snapshots, statuses."""
