"""An isolated fleet's ports: a port an outgoing connection holds counts as busy, and an
offset that puts services in the kernel's ephemeral range is refused before anything starts
(such a port is taken now and then by a client socket, and a service fails to bind)."""

from __future__ import annotations

import socket

import pytest

from flow_shared.testing.fleet import IsolatedFleet, ephemeral_port_range, port_in_use
from flow_shared.testing.ports import free_port


def test_a_port_held_by_a_client_connection_is_in_use() -> None:
    # Nothing listens on a client socket's local port, yet a server cannot bind it.
    with socket.create_connection(("127.0.0.1", 6379)) as client:
        held = client.getsockname()[1]
        assert port_in_use(held)


def test_a_free_port_is_not_in_use() -> None:
    assert not port_in_use(free_port())


def test_an_offset_inside_the_ephemeral_range_is_refused_before_anything_is_created() -> None:
    ephemeral = ephemeral_port_range()
    fleet = IsolatedFleet(label="ports", port_offset=ephemeral.start + 100 - 8000)
    with pytest.raises(RuntimeError, match="ephemeral range"):
        fleet.start(quiet=True)
    assert not fleet.env_file.exists()
    fleet.stop()
