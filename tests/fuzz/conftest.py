"""The fuzz tier: schemathesis against every service's own OpenAPI, on a real fleet
started as `make up` starts it (its own ports, database, vhost and Redis prefix), with
real tokens from user-service for every role. Not in the default test paths: run it
with `make test-fuzz`."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Iterator

import asyncpg
import httpx
import pytest

from flow_shared.testing.fleet import IsolatedFleet

PORT_OFFSET = int(os.environ.get("FLOW_FUZZ_PORT_OFFSET", "22000"))
FUZZ_PASSWORD = "fuzzing horse battery staple"
# The gateway's limits, raised for this run only: the fuzzer is one client on one IP.
RAISED_LIMIT = {"requests": 1_000_000, "per_seconds": 60, "burst": 1_000_000}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/fuzz" in str(item.path):
            item.add_marker(pytest.mark.fuzz)


def _raised_rate_limits() -> str:
    from api_gateway.config import DEFAULT_RATE_LIMITS

    return json.dumps(
        {
            name: {**rule.model_dump(mode="json"), **RAISED_LIMIT}
            for name, rule in DEFAULT_RATE_LIMITS.items()
        }
    )


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IsolatedFleet]:
    running = IsolatedFleet(
        label="fuzz",
        port_offset=PORT_OFFSET,
        work_dir=tmp_path_factory.mktemp("fleet"),
        overrides={"RATE_LIMITS": _raised_rate_limits()},
    )
    with running:
        yield running


class FuzzAccounts:
    """Real accounts, made through user-service's API as a client would make them."""

    def __init__(self, fleet: IsolatedFleet) -> None:
        self.fleet = fleet
        self.client = httpx.Client(base_url=fleet.user_service, timeout=30)
        self.admin = self._login(fleet.admin_email, fleet.admin_password)
        self.hospital_admin = self._register("hospital")
        self.hospital_staff = self._add_staff(self.hospital_admin)
        self.vendor = self._register("vendor")

    def _login(self, email: str, password: str = FUZZ_PASSWORD) -> str:
        response = self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": password}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    def _register(self, kind: str) -> str:
        email = f"fuzz-{kind}-{uuid.uuid4().hex[:10]}@fuzz.flow.test"
        response = self.client.post(
            "/api/v1/auth/register",
            json={
                "email": email,
                "password": FUZZ_PASSWORD,
                "full_name": f"Fuzz {kind}",
                "organization": {
                    "name": f"Fuzz {kind} {uuid.uuid4().hex[:6]}",
                    "kind": kind,
                    "license_number": "LIC-FUZZ-1",
                },
            },
        )
        assert response.status_code == 201, response.text
        org_id = response.json()["organization"]["id"]
        admin = {"Authorization": f"Bearer {self.admin_token()}"}
        # Verified, so the org's users reach past "not verified" into the real paths.
        verified = httpx.post(
            f"{self.fleet.admin_service}/api/v1/admin/vendors/{org_id}/verify",
            headers=admin,
            timeout=30,
        )
        if kind == "vendor":
            assert verified.status_code == 200, verified.text
        return email

    def admin_token(self) -> str:
        return self._login(self.fleet.admin_email, self.fleet.admin_password)

    def _add_staff(self, org_admin_email: str) -> str:
        """A staff member of the org admin's hospital, written straight into user-service's
        table (membership by invitation needs the e-mail round trip), with the same
        password hash, so the login below is a real one."""
        email = f"fuzz-staff-{uuid.uuid4().hex[:10]}@fuzz.flow.test"

        async def insert() -> None:
            connection = await asyncpg.connect(self.fleet.database_dsn)
            try:
                await connection.execute(
                    """INSERT INTO users.users (id, email, password_hash, full_name, org_id, role)
                       SELECT $1, $2, password_hash, 'Fuzz staff', org_id, 'staff'
                       FROM users.users WHERE email = $3""",
                    uuid.uuid4(),
                    email,
                    org_admin_email,
                )
            finally:
                await connection.close()

        asyncio.run(insert())
        return email

    def role_headers(self) -> dict[str, dict[str, str]]:
        """role -> the headers its requests send, logged in afresh: a fuzzed logout or
        password change earlier must not leave the next service's run without a token."""

        def bearer(token: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {token}"}

        return {
            "anonymous": {},
            "hospital_org_admin": bearer(self._login(self.hospital_admin)),
            "hospital_staff": bearer(self._login(self.hospital_staff)),
            "vendor_org_admin": bearer(self._login(self.vendor)),
            "platform_admin": bearer(self.admin_token()),
        }


@pytest.fixture(scope="session")
def accounts(fleet: IsolatedFleet) -> Iterator[FuzzAccounts]:
    made = FuzzAccounts(fleet)
    yield made
    made.client.close()
