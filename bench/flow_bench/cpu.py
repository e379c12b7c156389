"""Where the CPU went during a run: each service's processes, PostgreSQL, Redis,
RabbitMQ, nginx and the load generator itself, from /proc, in cores (1.0 = one core
busy for the whole run). That is what says what limits a figure on a shared machine.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Infrastructure processes by their command name.
INFRASTRUCTURE = {
    "postgres": "postgresql",
    "redis-server": "redis",
    "beam.smp": "rabbitmq",
    "nginx": "nginx",
    "pgbench": "pgbench",
}


def process_cpu_seconds(pid: int) -> float | None:
    """utime + stime of one process (its threads included), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    # After the command name: state is field 3 of stat, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def command_name(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def machine_cpu_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of the whole machine since boot."""
    first = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


def infrastructure_pids() -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        name = command_name(int(entry.name))
        if name in INFRASTRUCTURE:
            groups.setdefault(INFRASTRUCTURE[name], []).append(int(entry.name))
    return groups


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    per_process: dict[int, tuple[str, float]]
    machine: tuple[int, int]
    at: float


class CpuAccount:
    """Snapshots before and after a run; `usage` turns two of them into cores per group."""

    def __init__(self, service_pids: Callable[[], Mapping[str, list[int]]]) -> None:
        self.service_pids = service_pids

    def snapshot(self) -> CpuSnapshot:
        groups: dict[str, list[int]] = {
            **{name: list(pids) for name, pids in self.service_pids().items()},
            **infrastructure_pids(),
            "load generator": [os.getpid()],
        }
        per_process: dict[int, tuple[str, float]] = {}
        for group, pids in groups.items():
            for pid in pids:
                seconds = process_cpu_seconds(pid)
                if seconds is not None:
                    per_process[pid] = (group, seconds)
        return CpuSnapshot(
            per_process=per_process, machine=machine_cpu_ticks(), at=time.monotonic()
        )


def usage(before: CpuSnapshot, after: CpuSnapshot) -> dict[str, float]:
    """Cores used per group between the snapshots, plus `machine busy` (0..cores).

    A process that appeared in between (a new PostgreSQL backend) counts from zero;
    one that ended in between is missed: approximate, and said so in the report.
    """
    wall_seconds = after.at - before.at
    if wall_seconds <= 0:
        return {}
    cores: dict[str, float] = {}
    for pid, (group, seconds) in after.per_process.items():
        start = before.per_process.get(pid, (group, 0.0))[1]
        cores[group] = cores.get(group, 0.0) + max(seconds - start, 0.0) / wall_seconds
    busy = after.machine[0] - before.machine[0]
    total = after.machine[1] - before.machine[1]
    cpu_count = os.cpu_count() or 1
    if total > 0:
        cores["machine busy"] = busy / total * cpu_count
    return {group: round(value, 3) for group, value in sorted(cores.items())}


# How many consumers a figure's "what limits it" names.
TOP_CONSUMERS = 3


def top_consumers(cores: Mapping[str, float]) -> str:
    """'api-gateway 0.95, postgresql 0.40, ...' (machine busy reported separately)."""
    ranked = sorted(
        ((group, value) for group, value in cores.items() if group != "machine busy"),
        key=lambda item: item[1],
        reverse=True,
    )[:TOP_CONSUMERS]
    text = ", ".join(f"{group} {value:.2f}" for group, value in ranked)
    if "machine busy" in cores:
        text += f"; machine {cores['machine busy']:.2f} of {os.cpu_count()} cores busy"
    return text


def _fixed_python_work() -> None:
    # What the services spend their cycles on: building, encoding and parsing JSON-like
    # data, string formatting, sorting.
    document = {"items": [{"id": i, "name": f"item-{i}", "quantity": i % 7} for i in range(2000)]}
    for _ in range(10):
        json.loads(json.dumps(document))
    sorted(str(i * 7919 % 10007) for i in range(50_000))


SPEED_PROBE_ROUNDS = 7


def speed_probe_ms() -> float:
    """Wall milliseconds of a fixed pure-Python workload, the median of SPEED_PROBE_ROUNDS.

    The same code runs at different speeds from hour to hour on a shared VM; taken
    with nothing else running, before and after a bench, this says how fast the
    machine was, so that two reports' absolute figures can be compared fairly.
    """
    samples = []
    for _ in range(SPEED_PROBE_ROUNDS):
        started = time.perf_counter()
        _fixed_python_work()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)
