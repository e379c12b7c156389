"""SIGTERM is a graceful stop: in-flight requests finish and the lifespan shuts down."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from flow_shared.testing.infra import TestInfra
from flow_shared.testing.ports import free_port


async def test_sigterm_lets_in_flight_requests_finish(infra: TestInfra) -> None:
    port = free_port()
    env = dict(os.environ, REDIS_URL=infra.redis_url, REDIS_KEY_PREFIX=infra.redis_prefix)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "lifecycle_app:create_app",
            "--factory",
            "--app-dir",
            str(Path(__file__).parent),
            "--port",
            str(port),
            "--timeout-graceful-shutdown",
            "10",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            for _ in range(100):
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            in_flight = [asyncio.create_task(client.get("/slow")) for _ in range(5)]
            await asyncio.sleep(0.4)  # the requests are now inside the handler
            process.send_signal(signal.SIGTERM)
            responses = await asyncio.gather(*in_flight)
        assert [r.status_code for r in responses] == [200] * 5
        assert all(r.json() == {"status": "done"} for r in responses)
        # uvicorn re-raises the caught SIGTERM after its graceful shutdown completes.
        assert process.wait(timeout=15) in (0, -signal.SIGTERM)
        output = process.stdout.read().decode() if process.stdout else ""
        assert '"event": "service_stopped"' in output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
