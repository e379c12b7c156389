"""The pieces around the load: nginx's config, pgbench's output, the fleet's env file."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from flow_bench.nginx import TEMPLATE, render_config
from flow_bench.pgbench import order_script, parse_output

from flow_shared.testing.fleet import descendant_pids, port_in_use, render_env_file

PGBENCH_OUTPUT = """\
pgbench (15.20 (Debian 15.20-0+deb12u1))
transaction type: /tmp/order.sql
scaling factor: 1
query mode: prepared
number of clients: 64
number of threads: 2
duration: 10 s
number of transactions actually processed: 21804
latency average = 29.353 ms
initial connection time = 61.392 ms
tps = 2180.363457 (without initial connection time)
"""


def test_nginx_config_is_rendered_completely(tmp_path: Path) -> None:
    text = render_config(
        TEMPLATE.read_text(), prefix=tmp_path, listen_port=48090, upstream_port=48004, workers=1
    )
    assert "@@" not in text
    assert "listen 127.0.0.1:48090" in text
    assert "server 127.0.0.1:48004;" in text
    assert "worker_processes 1;" in text
    assert f"pid {tmp_path}/nginx.pid;" in text
    # Upstream keep-alive needs HTTP/1.1 and an empty Connection header.
    assert "keepalive 128;" in text
    assert "proxy_http_version 1.1;" in text
    assert 'proxy_set_header Connection "";' in text


def test_a_template_field_left_unfilled_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not fill"):
        render_config(
            "listen @@OTHER@@;", prefix=tmp_path, listen_port=1, upstream_port=2, workers=1
        )


def test_pgbench_output_is_read() -> None:
    assert parse_output(PGBENCH_OUTPUT) == (2180.363457, 29.353)
    with pytest.raises(RuntimeError, match="no tps"):
        parse_output("connection to server failed")


def test_pgbench_script_makes_one_order_per_transaction() -> None:
    script = order_script(1234, vendor_id="v", depot_id="d", hospital_id="h")
    statements = [line.split()[0] for line in script.splitlines() if line and line[0].isupper()]
    assert statements == [
        "BEGIN;",
        "UPDATE",
        "RETURNING",
        "INSERT",
        "VALUES",
        "INSERT",
        "VALUES",
        "END;",
    ]
    assert "\\set k random(1, 1234)" in script
    assert "s.on_hand - s.reserved >= :q" in script


def test_env_file_overrides_each_key_once() -> None:
    template = "# a comment\nPOSTGRES_DB=flow\nLOG_LEVEL=INFO\n\nREDIS_URL=redis://x\n"
    text = render_env_file(template, {"POSTGRES_DB": "flow_bench_1", "EXTRA": "1"})
    lines = text.splitlines()
    assert lines.count("POSTGRES_DB=flow_bench_1") == 1
    assert "POSTGRES_DB=flow" not in lines
    assert "LOG_LEVEL=INFO" in lines
    assert "# a comment" in lines
    assert lines[-1] == "EXTRA=1"


def test_descendants_include_the_process_itself() -> None:
    assert descendant_pids(os.getpid())[0] == os.getpid()
    assert 1 not in descendant_pids(os.getpid())


def test_a_listening_port_is_seen_as_busy() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert port_in_use(port)
    assert not port_in_use(port)
