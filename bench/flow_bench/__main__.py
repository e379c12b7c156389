"""`python -m flow_bench [full|smoke]` (with bench/ on PYTHONPATH; see the Makefile)."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from flow_bench.config import PROFILES
from flow_bench.run import ALL_SCENARIOS, BENCH_DIR, Options, exit_code, run_bench


def _workers(values: list[str]) -> dict[str, int]:
    workers: dict[str, int] = {}
    for value in values:
        short, _, count = value.partition("=")
        if not short or not count.isdigit() or int(count) < 1:
            raise argparse.ArgumentTypeError(f"--workers wants SHORT=N (e.g. GATEWAY=2): {value}")
        workers[short.upper()] = int(count)
    return workers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="flow_bench", description=__doc__)
    parser.add_argument("profile", choices=sorted(PROFILES), nargs="?", default="full")
    parser.add_argument("--port-offset", type=int, help="the bench fleet's port offset")
    parser.add_argument("--scales", help="depot counts for scenario 2, e.g. 1000,10000,100000")
    parser.add_argument("--concurrency", type=int, help="the generator's in-flight cap")
    parser.add_argument("--mixed-seconds", type=float, help="scenario 4's duration")
    parser.add_argument("--runs", type=int, help="measured runs per configuration (>= 3)")
    parser.add_argument("--run-seconds", type=float, help="length of each measured run")
    parser.add_argument("--web-concurrency", type=int, help="uvicorn workers per service")
    parser.add_argument(
        "--workers",
        action="append",
        default=[],
        metavar="SHORT=N",
        help="workers of one service, as WEB_CONCURRENCY_<SHORT> (e.g. GATEWAY=2)",
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(ALL_SCENARIOS),
        help=f"which scenarios, comma-separated from {','.join(ALL_SCENARIOS)}",
    )
    parser.add_argument(
        "--results",
        type=Path,
        help="where <timestamp>/ goes (default bench/results; the smoke uses a temporary "
        "directory, removed when it passes)",
    )
    parser.add_argument(
        "--update-readme", action="store_true", help="copy the report's table into bench/README.md"
    )
    parser.add_argument("--note", default="", help="a line for the report (e.g. what else ran)")
    parser.add_argument(
        "--keep-fleet-dir",
        action="store_true",
        help="keep the fleet's logs and env file after the run",
    )
    args = parser.parse_args(argv)

    profile = PROFILES[args.profile]
    changes: dict[str, object] = {}
    if args.port_offset is not None:
        changes["port_offset"] = args.port_offset
    if args.scales:
        changes["scales"] = tuple(sorted(int(s) for s in args.scales.split(",")))
    if args.concurrency:
        changes["concurrency"] = args.concurrency
    if args.mixed_seconds:
        changes["mixed_duration_s"] = args.mixed_seconds
    if args.runs:
        changes["runs"] = max(args.runs, 3)
    if args.run_seconds:
        changes["run_s"] = args.run_seconds
    if args.web_concurrency:
        changes["web_concurrency"] = args.web_concurrency
    if args.workers:
        changes["workers"] = _workers(args.workers)
    profile = profile.with_overrides(**changes)
    chosen = tuple(s.strip() for s in args.scenarios.split(",") if s.strip())
    unknown = [s for s in chosen if s not in ALL_SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios: {unknown}")
    temporary = args.results is None and profile.is_smoke
    results_root = (
        Path(tempfile.mkdtemp(prefix="flow-bench-smoke-"))
        if temporary
        else args.results or BENCH_DIR / "results"
    )
    options = Options(
        results_root=results_root,
        update_readme=args.update_readme,
        scenarios=chosen,
        note=args.note,
        keep_fleet_dir=args.keep_fleet_dir,
    )
    report = run_bench(profile, options)
    code = exit_code(report, smoke=profile.is_smoke and set(chosen) == set(ALL_SCENARIOS))
    if temporary and code == 0:
        shutil.rmtree(results_root, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
