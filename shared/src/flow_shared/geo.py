"""Geodesic distance on the WGS84 ellipsoid, from GeographicLib.

GeographicLib implements Karney's algorithms (J. Geodesy 87, 2013): the inverse
problem is solved to about 15 nanometres for every pair of points, nearly antipodal
ones included, where Vincenty's iteration does not converge. One implementation for
every service that needs a distance (location-service's routes, and any in-process
estimate elsewhere), so they all agree to the millimetre.
"""

from __future__ import annotations

import math

from geographiclib.geodesic import Geodesic

# Names the computation wherever a result is reported (location-service's route `source`).
GEODESIC_METHOD = "geodesic-wgs84-karney"

_WGS84 = Geodesic.WGS84


def geodesic_distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Shortest distance in metres between two points given in degrees on WGS84.

    Latitudes must lie in [-90, 90] and longitudes be finite (any value: they are taken
    modulo 360); anything else is a ValueError rather than a NaN passed on silently."""
    for name, latitude in (("lat1", lat1), ("lat2", lat2)):
        if not -90.0 <= latitude <= 90.0:  # also refuses NaN
            raise ValueError(f"{name} must be within [-90, 90] degrees, got {latitude!r}")
    for name, longitude in (("lon1", lon1), ("lon2", lon2)):
        if not math.isfinite(longitude):
            raise ValueError(f"{name} must be a finite number of degrees, got {longitude!r}")
    result = _WGS84.Inverse(lat1, lon1, lat2, lon2, Geodesic.DISTANCE)
    return float(result["s12"])
