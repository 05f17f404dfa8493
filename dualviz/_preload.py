"""Imported once by the job fork server (see jobs.py): heavy imports and a warm-up run."""

from .worker import warm_up

warm_up()
