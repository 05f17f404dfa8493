#!/bin/sh
# A department server on loopback: PostgreSQL, two dualviz replicas, haproxy (deploy/run.py).
cd "$(dirname "$0")/.." && exec .venv/bin/python deploy/run.py "$@"
