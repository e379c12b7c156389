"""location-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import NotFound, UnprocessableEntity


class SiteNotFound(NotFound):
    code = "site-not-found"
    title = "Site not found"


class AddressNotFound(UnprocessableEntity):
    code = "address-not-found"
    title = "Address not found"
