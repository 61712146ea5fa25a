"""The command line: options, the run (servers up, warm-up, workloads, table), the report."""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import fields, replace
from pathlib import Path

import bench
from bench.harness import QUICK, Bench, Sizes
from bench.report import TABLE_HEADER, Row, report, write_section
from bench.servers import ROOT, log_tail, start_servers
from bench.workloads import WORKLOADS, warm_up

RESULTS = ROOT / "bench" / "RESULTS.md"


def parse_args(argv: list[str] | None = None) -> tuple[argparse.Namespace, Sizes]:
    parser = argparse.ArgumentParser(
        description=bench.__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--quick", action="store_true", help="small sizes: under a minute")
    parser.add_argument(
        "--keep-alive", action="store_true", help="reuse connections (see the docstring)"
    )
    parser.add_argument("--only", help="workloads to run, e.g. 1,3 (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="Markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary directory")
    for size in fields(Sizes):
        parser.add_argument(f"--{size.name.replace('_', '-')}", type=int, dest=size.name)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else Sizes()
    overrides = {f.name: getattr(args, f.name) for f in fields(Sizes)}
    return args, replace(sizes, **{k: v for k, v in overrides.items() if v is not None})


def main(argv: list[str] | None = None) -> int:
    args, sizes = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C does, so the ExitStack below stops both servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    began = time.perf_counter()
    load_at_start = os.getloadavg()
    workdir = Path(tempfile.mkdtemp(prefix="sharinghub-bench-"))
    with contextlib.ExitStack() as stack:
        if not args.keep_data:
            stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        print(f"Starting both servers on {args.backend} in {workdir} ...", flush=True)
        servers = start_servers(workdir, args.backend, args.keep_alive, stack)
        try:
            print(f"Up after {time.perf_counter() - began:.0f} s; warming up ...", flush=True)
            run = Bench(sizes, servers, workdir)
            warm_up(run)
            print(f"Warm after {time.perf_counter() - began:.0f} s.", flush=True)
            rows = run_workloads(run, args.only.split(",") if args.only else list(WORKLOADS))
        except BaseException:
            for log in servers.logs:
                print(f"--- last lines of {log.name}:\n{log_tail(log)}", file=sys.stderr)
            raise
    load = (load_at_start, os.getloadavg())
    text = report(args, run, rows, time.perf_counter() - began, load)
    print("\n" + text)
    if not args.no_write:
        key = args.backend + ("-quick" if args.quick else "")
        write_section(args.results, key, text)
        print(f"Section {key!r} written to {args.results}.")
    return 0


def run_workloads(run: Bench, selected: list[str]) -> list[Row]:
    """The selected workloads in order, each's rows printed as soon as they are measured."""
    print(TABLE_HEADER, flush=True)
    rows: list[Row] = []
    for number in selected:
        started = time.perf_counter()
        new_rows = WORKLOADS[number](run)
        rows.extend(new_rows)
        print("\n".join(row.markdown() for row in new_rows), flush=True)
        print(f"  ({time.perf_counter() - started:.1f} s)", flush=True)
    return rows
