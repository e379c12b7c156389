"""Measurements built from open-loop runs: knees (search, then confirmation) and
fixed-rate comparisons, with a warm-up and at least three runs each, reported as
the median and the spread. Configurations compared with each other take their
confirmation runs in turns (a, b, c, a, b, c, ...) so drift hits them alike.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from flow_bench.config import Profile
from flow_bench.cpu import CpuAccount, top_consumers, usage
from flow_bench.knee import KneeSearch, ProbeOutcome, Slo
from flow_bench.loadgen import RequestSource, RunResult, run_open_loop

AfterRun = Callable[[RunResult], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        if not values:
            return cls(0.0, 0.0, 0.0)
        return cls(float(statistics.median(values)), float(min(values)), float(max(values)))

    def text(self, digits: int) -> str:
        return f"{self.median:.{digits}f} ({self.low:.{digits}f} to {self.high:.{digits}f})"

    def as_dict(self) -> dict[str, float]:
        return {
            "median": round(self.median, 4),
            "min": round(self.low, 4),
            "max": round(self.high, 4),
        }


@dataclass
class RecordedRun:
    scenario: str
    phase: str  # probe, warm-up, run
    result: RunResult
    cores: dict[str, float]

    def summary(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "phase": self.phase,
            "cores": self.cores,
            **self.result.summary(),
        }


@dataclass
class Config:
    """One configuration of a comparison: what it is called and what it sends."""

    label: str
    source: RequestSource


@dataclass(frozen=True, slots=True)
class CpuPerRequest:
    machine_ms: float
    groups_ms: dict[str, float]

    def top(self, count: int = 6) -> str:
        """'order-service 13.8, inventory-service 13.6, ...' in ms a request."""
        ranked = sorted(self.groups_ms.items(), key=lambda item: item[1], reverse=True)[:count]
        return ", ".join(f"{group} {ms:.1f}" for group, ms in ranked)


@dataclass
class Measurement:
    label: str
    rate: float
    runs: list[RecordedRun] = field(default_factory=list)

    @property
    def results(self) -> list[RunResult]:
        return [r.result for r in self.runs]

    @property
    def throughput(self) -> Spread:
        return Spread.of([r.throughput for r in self.results])

    @property
    def p50(self) -> Spread:
        return Spread.of([r.p50_ms for r in self.results])

    @property
    def p99(self) -> Spread:
        return Spread.of([r.p99_ms for r in self.results])

    @property
    def error_rate(self) -> Spread:
        return Spread.of([r.error_rate for r in self.results])

    @property
    def generator_cpu(self) -> Spread:
        return Spread.of([r.generator_cpu_share for r in self.results])

    def limits(self) -> str:
        """The biggest CPU consumers in the median run: what the figure ran into."""
        if not self.runs:
            return "not measured"
        ordered = sorted(self.runs, key=lambda r: r.result.p99_ms)
        return top_consumers(ordered[len(ordered) // 2].cores)

    def cpu_ms_per_request(self) -> CpuPerRequest | None:
        """Milliseconds of CPU each completed request cost, the whole machine's and each
        group's, in the median run by machine CPU per request (None when no run completed
        any or the machine's CPU was not read). Work a request leaves for later (events,
        relays) counts where it falls inside a run, as it does in steady state."""
        costs = [
            CpuPerRequest(
                machine_ms=run.cores["machine busy"] / run.result.throughput * 1000.0,
                groups_ms={
                    group: cores / run.result.throughput * 1000.0
                    for group, cores in run.cores.items()
                    if group != "machine busy"
                },
            )
            for run in self.runs
            if run.result.throughput > 0 and "machine busy" in run.cores
        ]
        if not costs:
            return None
        return sorted(costs, key=lambda cost: cost.machine_ms)[len(costs) // 2]

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "rate": round(self.rate, 3),
            "throughput": self.throughput.as_dict(),
            "p50_ms": self.p50.as_dict(),
            "p99_ms": self.p99.as_dict(),
            "error_rate": self.error_rate.as_dict(),
            "generator_cpu_share": self.generator_cpu.as_dict(),
            "limits": self.limits(),
        }


@dataclass
class Knee:
    label: str
    slo: Slo
    search: KneeSearch
    confirmation: Measurement

    @property
    def found(self) -> bool:
        return self.search.knee is not None

    @property
    def confirmed(self) -> bool:
        """The confirmation runs' medians meet the SLO too (noise can undo a probe)."""
        m = self.confirmation
        return self.found and self.slo.met_by(m.p99.median, m.error_rate.median)

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "slo": self.slo.describe(),
            "knee_rate": self.search.knee,
            "found": self.found,
            "confirmed": self.confirmed,
            "search_stopped_because": self.search.limited_by(),
            "probes": [
                {
                    "rate": p.rate,
                    "passed": p.passed,
                    "p99_ms": round(p.p99_ms, 3),
                    "error_rate": round(p.error_rate, 6),
                    "throughput": round(p.throughput, 2),
                }
                for p in self.search.probes
            ],
            "confirmation": self.confirmation.summary(),
        }


class Runner:
    """Runs open-loop load with one client session and one generator budget, records
    every run with the CPU it cost, and calls `after` hooks (the order checks)."""

    def __init__(self, session: aiohttp.ClientSession, profile: Profile, cpu: CpuAccount) -> None:
        self.session = session
        self.profile = profile
        self.cpu = cpu
        self.recorded: list[RecordedRun] = []
        # Called with the run's duration before it starts (to renew tokens).
        self.before_run: Callable[[float], Awaitable[None]] | None = None

    async def run(
        self,
        scenario: str,
        phase: str,
        label: str,
        source: RequestSource,
        rate: float,
        duration: float,
        *,
        after: AfterRun | None = None,
        window_seconds: float | None = None,
    ) -> RecordedRun:
        if self.before_run is not None:
            await self.before_run(duration)
        before = self.cpu.snapshot()
        result = await run_open_loop(
            self.session,
            source,
            label=label,
            rate=rate,
            duration=duration,
            concurrency=self.profile.concurrency,
            request_timeout=self.profile.timeout_s,
            window_seconds=window_seconds,
        )
        cores = usage(before, self.cpu.snapshot())
        recorded = RecordedRun(scenario=scenario, phase=phase, result=result, cores=cores)
        self.recorded.append(recorded)
        print(
            f"  [{scenario}] {phase:<8} {label:<28} {rate:8.1f}/s  ok {result.ok:6d}  "
            f"err {result.error_count:4d}  p50 {result.p50_ms:8.2f} ms  "
            f"p99 {result.p99_ms:8.2f} ms  gen cpu {result.generator_cpu_share:.2f}",
            flush=True,
        )
        if after is not None:
            await after(result)
        return recorded

    async def search_knee(
        self,
        scenario: str,
        config: Config,
        slo: Slo,
        *,
        start_rate: float,
        max_rate: float,
        after: AfterRun | None = None,
    ) -> KneeSearch:
        profile = self.profile
        search = KneeSearch(
            start_rate=start_rate,
            min_rate=min(profile.min_rate, start_rate),
            max_rate=max_rate,
            max_probes=profile.max_probes,
        )
        while (rate := search.next_rate()) is not None:
            run = await self.run(
                scenario, "probe", config.label, config.source, rate, profile.probe_s, after=after
            )
            result = run.result
            search.record(
                ProbeOutcome(
                    rate=rate,
                    passed=slo.met_by(result.p99_ms, result.error_rate),
                    p99_ms=result.p99_ms,
                    error_rate=result.error_rate,
                    throughput=result.throughput,
                )
            )
        return search

    async def measure(
        self,
        scenario: str,
        configs: Sequence[Config],
        rates: Sequence[float],
        *,
        after: AfterRun | None = None,
        duration: float | None = None,
    ) -> list[Measurement]:
        """A warm-up for each configuration, then `runs` rounds taking turns."""
        profile = self.profile
        measurements = [Measurement(c.label, rate) for c, rate in zip(configs, rates, strict=True)]
        for config, rate in zip(configs, rates, strict=True):
            await self.run(
                scenario,
                "warm-up",
                config.label,
                config.source,
                rate,
                profile.warmup_s,
                after=after,
            )
        for _ in range(profile.runs):
            for config, measurement in zip(configs, measurements, strict=True):
                recorded = await self.run(
                    scenario,
                    "run",
                    config.label,
                    config.source,
                    measurement.rate,
                    duration or profile.run_s,
                    after=after,
                )
                measurement.runs.append(recorded)
        return measurements

    async def knees(
        self,
        scenario: str,
        configs: Sequence[Config],
        slo: Slo,
        *,
        start_rate: float,
        max_rate: float,
        after: AfterRun | None = None,
    ) -> list[Knee]:
        """Each configuration's knee searched in turn, then confirmed side by side."""
        searches = [
            await self.search_knee(
                scenario, config, slo, start_rate=start_rate, max_rate=max_rate, after=after
            )
            for config in configs
        ]
        rates = [s.knee or s.min_rate for s in searches]
        confirmations = await self.measure(scenario, configs, rates, after=after)
        return [
            Knee(config.label, slo, search, confirmation)
            for config, search, confirmation in zip(configs, searches, confirmations, strict=True)
        ]
