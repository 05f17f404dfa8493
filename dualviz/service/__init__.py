"""Processes and storage: the result store, the job manager and its launcher and worker
processes, the push stream of a running job, and the command line's sweep driver."""
