"""One bench invocation: start the isolated fleet, seed, run the scenarios side by side,
write bench/results/<UTC timestamp>/, tear everything down."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
import uvloop

from flow_bench import scenarios, service_time
from flow_bench.api import FlowApi
from flow_bench.charts import load_charts, mixed_chart
from flow_bench.checks import InvariantViolation, OrderChecks
from flow_bench.config import Profile, fleet_overrides
from flow_bench.cpu import CpuAccount, speed_probe_ms
from flow_bench.loadgen import make_session
from flow_bench.measure import Runner
from flow_bench.report import Report, render_markdown, update_readme
from flow_bench.seed import choose_order_targets, grow_depots, seed_accounts
from flow_shared.testing.fleet import IsolatedFleet

BENCH_DIR = Path(__file__).resolve().parent.parent
ALL_SCENARIOS = ("gateway", "nearby", "orders", "lag", "mixed", "runway", "sos")


@dataclass(frozen=True, slots=True)
class Options:
    results_root: Path
    update_readme: bool
    scenarios: tuple[str, ...]
    note: str
    keep_fleet_dir: bool = False


def _git_commit(root: Path) -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, as make runs it
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return (
        f"{os.cpu_count()} CPUs, {memory_gib:.0f} GiB RAM, Linux {platform.release()}, "
        f"load average at start {load}; fleet, PostgreSQL, Redis, RabbitMQ and the "
        "load generator all on this machine"
    )


def _meta(
    profile: Profile, fleet: IsolatedFleet, options: Options, stamp: str
) -> dict[str, object]:
    workers = {"default": profile.web_concurrency, **profile.workers}
    pool = f"{fleet.setting('DB_POOL_SIZE')}+{fleet.setting('DB_MAX_OVERFLOW')}"
    return {
        "timestamp": stamp,
        "profile": profile.name,
        "git_commit": _git_commit(fleet.root),
        "machine": _machine(),
        "fleet": (
            f"all ten services via scripts/flowctl.py (uvloop, httptools), uvicorn workers "
            f"{workers}, DB pool {pool} "
            f"per process, LOG_LEVEL {fleet.setting('LOG_LEVEL')} (a JSON line per request), "
            "gateway rate limits raised but enforced (a Redis round trip per request); "
            f"nginx {profile.nginx_workers} worker(s)"
        ),
        "generator": (
            f"one process, asyncio + uvloop + aiohttp, open loop, concurrency cap "
            f"{profile.concurrency}, timeout {profile.timeout_s:g} s, warm-up "
            f"{profile.warmup_s:g} s then {profile.runs} runs of {profile.run_s:g} s "
            f"(probes {profile.probe_s:g} s, at most {profile.max_probes} per knee search; "
            f"SOS runs of {profile.sos_run_s:g} s at {profile.sos_rate:g}/s; runway reads at "
            f"{profile.runway_rate:g}/s); "
            f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}"
        ),
        "data": (
            f"{profile.vendors} verified vendors, {profile.hospitals} hospitals x "
            f"{profile.sites_per_hospital} sites, depots {list(profile.scales)} spread over "
            f"{profile.region.describe()}, {profile.products_per_depot} products per depot; "
            f"{profile.runway_sites:,} hospital sites with an oxygen runway (scenario 7)"
        ),
        "note": options.note,
        "profile_settings": {k: v for k, v in asdict(profile).items() if k != "region"},
    }


async def _run_scenarios(
    profile: Profile, fleet: IsolatedFleet, options: Options, report: Report, directory: Path
) -> None:
    cpu = CpuAccount(fleet.service_pids)
    async with make_session(profile.concurrency) as session:
        api = FlowApi(session, fleet.gateway)
        started = time.monotonic()
        world = await seed_accounts(api, fleet, profile)
        await grow_depots(fleet, world, profile, profile.scales[0])
        await choose_order_targets(fleet, world, profile)
        print(
            f"seeded accounts and {world.depots:,} depots in {time.monotonic() - started:.1f} s",
            flush=True,
        )
        runner = Runner(session, profile, cpu)
        bench = scenarios.Bench(
            profile=profile,
            fleet=fleet,
            api=api,
            runner=runner,
            world=world,
            report=report,
            checks=OrderChecks(fleet.database_dsn, profile.drain_timeout_s, vhost=fleet.vhost),
        )
        runner.before_run = bench.renew_tokens
        steps: list[tuple[str, str, Callable[[scenarios.Bench], Awaitable[None]]]] = [
            ("gateway", scenarios.GATEWAY, scenarios.gateway_overhead),
            ("nearby", scenarios.NEARBY, scenarios.catalog_nearby),
            ("orders", scenarios.ORDERS, scenarios.orders_end_to_end),
            ("lag", scenarios.LAG, scenarios.event_lag),
            ("mixed", scenarios.MIXED, scenarios.mixed_day),
            # Before the SOS: the last check record (the report's table) stays an order run's.
            ("runway", scenarios.RUNWAY, scenarios.supply_runway),
            ("sos", scenarios.SOS, scenarios.sos_broadcast),
        ]
        service_urls = {s.name: fleet.url(s.name) for s in fleet.services}
        try:
            for name, title, step in steps:
                if name not in options.scenarios:
                    continue
                print(f"== scenario {name}", flush=True)
                before = await service_time.scrape(session, service_urls)
                try:
                    await step(bench)
                except InvariantViolation:
                    raise
                except Exception as exc:  # one broken scenario must not hide the others
                    traceback.print_exc()
                    report.failures.append(f"scenario {name}: {type(exc).__name__}: {exc}")
                finally:
                    after = await service_time.scrape(session, service_urls)
                    report.service_time[title] = service_time.breakdown(before, after)
        finally:
            report.checks = [c.summary() for c in bench.checks.records]
            report.runs = [r.summary() for r in runner.recorded]
            report.meta["seed_seconds"] = world.seed_seconds
        mixed = report.scenarios.get(scenarios.MIXED)
        report.charts = load_charts(report.runs, directory)
        if mixed and mixed.get("windows"):
            report.charts.append(
                mixed_chart(
                    mixed["windows"], profile.mixed_window_s, mixed["memory_samples"], directory
                )
            )


def run_bench(profile: Profile, options: Options) -> Report:
    """Everything, or raise; the report is written either way."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    directory = options.results_root / stamp
    directory.mkdir(parents=True, exist_ok=True)
    fleet = IsolatedFleet(
        label="bench",
        port_offset=profile.port_offset,
        overrides=fleet_overrides(profile),
        keep_work_dir=options.keep_fleet_dir,
    )
    report = Report(meta=_meta(profile, fleet, options, stamp))
    print(
        f"starting the bench fleet on port offset {profile.port_offset} (logs in {fleet.log_dir})",
        flush=True,
    )
    started = time.monotonic()
    speed_at_start = speed_probe_ms()
    try:
        fleet.start(quiet=True)
        report.meta["fleet_start_seconds"] = round(time.monotonic() - started, 1)
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(_run_scenarios(profile, fleet, options, report, directory))
    except BaseException as exc:
        report.failures.append(f"{type(exc).__name__}: {exc}")
        if fleet.log_dir.exists():
            fleet.print_log_tails(20)
        raise
    finally:
        fleet.stop()
        report.meta["total_seconds"] = round(time.monotonic() - started, 1)
        report.meta["machine_speed"] = (
            f"a fixed Python workload (bench/flow_bench/cpu.py) took {speed_at_start:.0f} ms "
            f"before the fleet started and {speed_probe_ms():.0f} ms after it stopped; "
            "lower is faster: compare it before comparing two reports' absolute figures"
        )
        print(
            f"bench took {report.meta['total_seconds']:.0f} s "
            f"(fleet start {report.meta.get('fleet_start_seconds', '?')} s)",
            flush=True,
        )
        (directory / "report.json").write_text(report.to_json())
        (directory / "report.md").write_text(render_markdown(report))
        print(f"report: {directory / 'report.md'}", flush=True)
        if options.update_readme and not report.failures:
            update_readme(BENCH_DIR / "README.md", report)
            print("bench/README.md updated", flush=True)
    return report


def smoke_problems(report: Report) -> list[str]:
    """What `make bench-smoke` refuses: a missing scenario, a run with no answer, a wrong
    status (a harness or service bug), a failed check. Never a speed."""
    problems = list(report.failures)
    for scenario in (
        scenarios.GATEWAY,
        scenarios.NEARBY,
        scenarios.ORDERS,
        scenarios.LAG,
        scenarios.MIXED,
        scenarios.RUNWAY,
        scenarios.SOS,
    ):
        if scenario not in report.scenarios:
            problems.append(f"{scenario}: no result")
    problems += sos_problems(report.scenarios.get(scenarios.SOS))
    for run in report.runs:
        name = f"{run['scenario']} {run['phase']} {run['label']} at {run['offered_rate']}/s"
        if run["ok"] == 0:
            problems.append(f"{name}: no successful answer")
        wrong = {k: v for k, v in run["errors"].items() if k.startswith("status")}
        if wrong:
            problems.append(f"{name}: unexpected statuses {wrong}")
    if not report.checks:
        problems.append("no correctness check ran")
    problems += [f"check after {c['after']} failed" for c in report.checks if not c["ok"]]
    if len(report.figures) < 14:
        problems.append(f"only {len(report.figures)} figures in the report")
    return problems


def sos_problems(sos: dict[str, Any] | None) -> list[str]:
    """What the SOS scenario's own traffic got wrong: its acceptances are not runs of the
    generator, so their errors are not in the runs' statuses."""
    if sos is None:
        return []
    problems = []
    # A ring short of vendors, or not open (statuses are flagged with every run's).
    unreadable = {k: v for k, v in sos["open_errors"].items() if k.startswith("unreadable")}
    if unreadable:
        problems.append(f"{scenarios.SOS}: SOS answers refused: {unreadable}")
    if sos["accept_errors"]:
        problems.append(f"{scenarios.SOS}: acceptances failed: {sos['accept_errors']}")
    if not sos["acceptance"]["count"]:
        problems.append(f"{scenarios.SOS}: no SOS accepted")
    if sos["ring_one_incomplete"]:
        problems.append(
            f"{scenarios.SOS}: {sos['ring_one_incomplete']} SOS with a ring-1 vendor not notified"
        )
    if not sos["notification"]["count"]:
        problems.append(f"{scenarios.SOS}: no SOS notification lag measured")
    return problems


def exit_code(report: Report, *, smoke: bool) -> int:
    if smoke:
        problems = smoke_problems(report)
        for problem in problems:
            print(f"bench-smoke: {problem}", file=sys.stderr)
        if not problems:
            print("bench-smoke: every scenario ran and every check held", flush=True)
        return 1 if problems else 0
    return 1 if report.failures else 0
