"""The services' copy of services.toml (flow_shared.fleet_table, generated because an image
holds no services.toml) is what services.toml says, and the gateway and admin-service read
their service URLs and routes from it."""

from __future__ import annotations

import runpy
from pathlib import Path

from admin_service.config import Settings as AdminSettings
from api_gateway.config import DEFAULT_ROUTES
from api_gateway.config import Settings as GatewaySettings
from flow_shared.fleet_table import FLEET
from flow_shared.services import load_service_specs

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_fleet_table_is_what_services_toml_renders() -> None:
    # What `scripts/render-fleet-table.py --check` compares.
    renderer = runpy.run_path(str(ROOT / "scripts" / "render-fleet-table.py"))
    specs = load_service_specs(ROOT)
    assert renderer["TABLE"].read_text() == renderer["render"](specs), (
        "stale: run scripts/render-fleet-table.py"
    )
    assert list(FLEET.values()) == specs


def test_every_service_in_services_toml_has_a_url_setting_at_the_gateway_and_admin() -> None:
    for spec in load_service_specs(ROOT):
        assert spec.url_field in GatewaySettings.model_fields
        assert spec.url_field in AdminSettings.model_fields


def test_the_gateway_routes_each_prefix_services_toml_gives_a_service() -> None:
    expected = {prefix: spec.name for spec in load_service_specs(ROOT) for prefix in spec.routes}
    assert expected == DEFAULT_ROUTES
