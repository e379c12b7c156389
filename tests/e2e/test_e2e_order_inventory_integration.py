"""The seed's integration check (scripts/test-order-inventory-integration.py) on the real fleet."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from flow_shared.testing.infra import repo_root

SCRIPT_TIMEOUT_SECONDS = 300


# The script's own limit (below), plus the fleet's start when this test runs first.
@pytest.mark.timeout(SCRIPT_TIMEOUT_SECONDS + 300)
def test_order_inventory_integration_script_passes(fleet: Any) -> None:
    script = repo_root() / "scripts" / "test-order-inventory-integration.py"
    result = subprocess.run(
        [
            sys.executable,
            str(script),
            "--env-file",
            str(fleet.env_file),
            "--port-offset",
            str(fleet.port_offset),
        ],
        capture_output=True,
        text=True,
        timeout=SCRIPT_TIMEOUT_SECONDS,
        check=False,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout + result.stderr
    passed = [line for line in result.stdout.splitlines() if line.startswith("ok ")]
    assert [line.split()[1] for line in passed] == [str(n) for n in range(1, 12)]
