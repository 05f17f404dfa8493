"""Command line: ``python -m dualviz solve [options] [--json]`` and
``python -m dualviz sweep [options] --vary FIELD=v1,v2 [--vary ...] [--seeds S] [--json]``.

Every option comes from the Experiment's knob table (``--target-rank`` is the URL key
``target-rank``), so ``--query`` with a page's query string computes the same experiment.
A typed option is an intent: one outside its range (the table's, a cross-constraint such as
target-rank <= min(rank X, K), or this server's cap) exits with status 2 and one line naming
the allowed range. Values from ``--query`` are a link's and are clamped with a note on stderr,
as a page does. Other unusable input exits with status 2 and one line on stderr; a run whose
solver failed prints its numbers, then exits with status 1 and one line on stderr.

``python -m dualviz serve [--port N] [--address A]`` starts the app.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import sys
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from . import limits
from .config import KNOBS, KNOBS_BY_NAME, ConfigError, Experiment
from .data import DataError, Dataset, load_file
from .gapcurves import rows
from .results import RunResult
from .runner import run
from .service.store import Store, StoreError
from .service.sweeps import SCHEDULER_ENV, executor_for, run_sweep
from .sweep import Sweep, parse_vary


class UsageError(Exception):
    """Bad command-line input: reported on one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, status 2, no usage dump
        raise UsageError(message)


def _number(text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
    if value != value:
        raise argparse.ArgumentTypeError("nan is not a usable value")
    return text


def _experiment_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--query", default="", help="a page URL's query string (same keys)")
    command.add_argument("--data", metavar="FILE", help="an .npz (arrays X, Y) or .csv file")
    command.add_argument("--json", action="store_true", help="print JSON")
    for knob in KNOBS:
        if knob.name == "data":
            continue  # set by --data from the file's digest
        kwargs: dict[str, Any] = {"dest": knob.name, "default": None, "help": knob.help}
        if knob.kind == "bool":
            kwargs["action"] = argparse.BooleanOptionalAction
        elif knob.kind == "choice":
            kwargs["choices"] = knob.choices
        elif knob.kind in ("int", "float"):
            kwargs["type"] = _number  # a typo is an error; a number out of range is clamped
        command.add_argument(f"--{knob.key}", **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m dualviz", description="dualviz: duality gaps of deep nets")
    commands = parser.add_subparsers(dest="command", required=True)
    solve = commands.add_parser("solve", help="run one experiment", description=(
        "Train the network, solve the dual and evaluate the closed forms of one experiment."))
    sweep = commands.add_parser("sweep", help="run a grid of experiments", description=(
        "Every point of the grid is solved like `solve` and stored as it completes; points "
        "already stored are not recomputed (a stopped sweep resumes)."))
    for command in (solve, sweep):
        command.error = parser.error  # type: ignore[method-assign]
        _experiment_options(command)
    sweep.add_argument("--vary", action="append", default=[], metavar="FIELD=v1,v2,...",
                       help="a field and its values (repeat for a grid)")
    sweep.add_argument("--seeds", type=int, default=1, help="seeds per point (seed, seed+1, ..)")
    sweep.add_argument("--workers", type=int, default=None,
                       help="local worker processes (default: the number of cores)")
    sweep.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                       help=f"a Dask scheduler (default ${SCHEDULER_ENV}; unset: local pool)")
    serve = commands.add_parser("serve", help="start the app", description=(
        "Serve the app (Streamlit) on the embedded store. It listens on 127.0.0.1 only "
        "unless --address says otherwise: serving a network is a choice."))
    serve.error = parser.error  # type: ignore[method-assign]
    serve.add_argument("--port", type=_port, default=8501, help="TCP port (default 8501)")
    serve.add_argument("--address", default="127.0.0.1",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0: every "
                            "interface)")
    return parser


def ranged_int(low: int, high: int, what: str = "a whole number"):
    """An argparse type: an integer in [low, high], else argparse exits 2 naming the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {what}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside [{low}, {high}]")
        return value
    return parse


_port = ranged_int(1, 65535, "a port number")


def experiment_from_args(args: argparse.Namespace) -> tuple[Experiment, Dataset | None, list[str]]:
    """--query values, explicit options on top, then --data; clamped once, with notes."""
    values: dict[str, Any] = dict(parse_qsl(args.query.lstrip("?"), keep_blank_values=True))
    explicit = {k.key: getattr(args, k.name) for k in KNOBS
                if getattr(args, k.name, None) is not None}
    uploaded = None
    if args.data:
        uploaded = _read_data(args.data)
        explicit["data"] = uploaded.digest
    for key in list(values):  # an option given both ways: the explicit one wins
        knob = KNOBS_BY_NAME.get(key)
        if knob is not None and knob.key in explicit:
            del values[key]
    exp, notes = Experiment.from_values({**values, **explicit})
    for note in notes:  # a typed option is an intent: out of range is an error, not a clamp
        key = note.split(":", 1)[0]
        if key in explicit and key != "data":
            raise UsageError(f"--{note.split('; using')[0]}")
    return exp, uploaded, notes


def _read_data(path: str) -> Dataset:
    """A data file named on the command line: a regular file (a FIFO or a device would block
    or never end), loaded through the same gate as an upload."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"{path} is not a regular file")
    try:
        with open(path, "rb") as handle:
            return load_file(handle, path)
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror}") from None


def summary(result: RunResult) -> str:
    """A human-readable report."""
    def fmt(x):
        return "n/a" if x is None else f"{x:.10g}"

    e = result.experiment
    lines = [
        f"dualviz {e.arch} {e.activation} L={e.depth} {e.regularization} {e.objective} "
        f"beta={e.beta:g} t={e.t:g}  data {result.dataset.name} "
        f"({result.dataset.n}x{result.dataset.d} -> {result.dataset.k})  hash {e.hash}",
        f"primal (trained)   {fmt(result.primal.value)}   residual {fmt(result.primal.residual)}"
        f"   {result.primal.seconds:.2f}s",
        f"dual ({result.dual.status})  {fmt(result.dual.value)}   {result.dual.method}"
        f"   {result.dual.seconds:.2f}s",
        f"closed form        primal {fmt(result.closed.primal)}   dual {fmt(result.closed.dual)}",
        f"gap P - D          {fmt(result.gap)}   relative {fmt(result.relative_gap)}",
    ]
    notes = [*result.notes, *result.primal.notes, *result.dual.notes, *result.closed.notes]
    lines += [f"note: {n}" for n in dict.fromkeys(notes)]  # each once, in order
    return "\n".join(lines)


def _progress_bar(stream) -> Callable:
    def show(coords, exp, result, progress) -> None:
        width = 30
        filled = int(width * progress.done / max(progress.total, 1))
        eta = progress.eta_seconds
        stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {progress.done}/"
                     f"{progress.total}" + (f"  ETA {eta:.0f} s" if eta is not None else "")
                     + (f"  {progress.failed} failed" if progress.failed else ""))
        stream.flush()
    return show


def run_sweep_command(args: argparse.Namespace, exp: Experiment,
                      uploaded: Dataset | None) -> int:
    if not args.vary:
        raise UsageError("sweep needs at least one --vary FIELD=v1,v2,...")
    vary = []
    for text in args.vary:
        name, values, notes = parse_vary(text)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        vary.append((name, values))
    if args.workers is not None and not 1 <= args.workers <= 64:
        raise UsageError("--workers must be in [1, 64]")
    spec = Sweep(exp, tuple(vary), args.seeds)
    store = Store()
    if uploaded is not None:
        store.save_dataset(uploaded)
    # SIGTERM (a stop): exit through the finally blocks, so points in flight are marked
    # cancelled rather than left running in a dead process.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    executor, close = executor_for(args.workers, args.scheduler)
    show = _progress_bar(sys.stderr) if sys.stderr.isatty() else None
    store.sweep_started(spec.key, spec.to_json(), pid=os.getpid())
    try:
        # as many in flight as there are workers: a point's time limit counts from its start
        points = run_sweep(spec, store, executor, uploaded, on_result=show,
                           max_pending=args.workers or os.cpu_count() or 1,
                           time_limit=limits.job_time_limit())
    finally:
        close()
        store.sweep_finished(spec.key)
        store.close()
    if show:
        sys.stderr.write("\n")
    if args.json:
        text = json.dumps([result for _, _, result in points], indent=1)
    else:
        text = "\n".join("  ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in row.items()) for row in rows(points))
    return 0 if _write(text) else 1


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "serve":
            from .ui.serve import serve

            return serve(args.port, args.address)
        exp, uploaded, notes = experiment_from_args(args)
        for note in notes:
            print(f"note: {note}", file=sys.stderr)
        if args.command == "sweep":
            return run_sweep_command(args, exp, uploaded)
        result = run(exp, uploaded, notes=notes)
    except (UsageError, ConfigError, DataError) as exc:
        print(f"dualviz: error: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"dualviz: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. a Dask scheduler that cannot be reached
        print(f"dualviz: error: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
              file=sys.stderr)
        return 2
    if not _write(json.dumps(result.to_json(), indent=2) if args.json else summary(result)):
        return 1
    if result.failure:  # the numbers above are kept; the status says they are not an answer
        print(f"dualviz: failed: {result.failure}", file=sys.stderr)
        return 1
    return 0


def _write(text: str) -> bool:
    """Print to stdout; a full disk or a closed pipe is one line on stderr, not a
    traceback (at exit, Python would flush the buffer again: it is pointed at /dev/null)."""
    try:
        print(text)
        sys.stdout.flush()
        return True
    except OSError as exc:
        with open(os.devnull, "w") as sink:
            os.dup2(sink.fileno(), sys.stdout.fileno())
        print(f"dualviz: error: cannot write the output: {exc.strerror or exc}",
              file=sys.stderr)
        return False


if __name__ == "__main__":
    sys.exit(main())
