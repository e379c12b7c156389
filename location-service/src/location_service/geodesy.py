"""Geodesic distance on the WGS84 ellipsoid (Vincenty's inverse formula, made total).

Vincenty's iteration is accurate to well under a millimetre but does not converge
for nearly antipodal points. For those, the distance is found as the shortest
two-leg path through a waypoint on the spherical bisector of the two points: every
path from A to B crosses that circle, so the true geodesic passes through one of
its points, and there the two legs (each about a quarter of the globe, where
Vincenty converges) add up to exactly the geodesic distance. Elsewhere the sum
is longer, so the minimum over the circle is the answer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

WGS84_A = 6_378_137.0
WGS84_F = 1 / 298.257223563
WGS84_B = WGS84_A * (1 - WGS84_F)

METHOD = "geodesic-wgs84-vincenty"

_MAX_ITERATIONS = 200
_TOLERANCE = 1e-12
# Bisector search: a coarse scan, then golden-section refinement of the best few minima.
_SCAN_STEPS = 72
_REFINED_MINIMA = 3
_GOLDEN_ITERATIONS = 60
_INV_PHI = (math.sqrt(5) - 1) / 2


def geodesic_distance_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Shortest distance in metres between two points (degrees) on the WGS84 ellipsoid."""
    if lat1 == lat2 and (lon1 - lon2) % 360.0 == 0.0:
        return 0.0
    distance = vincenty_inverse_m(lat1, lon1, lat2, lon2)
    if distance is not None:
        return distance
    return _distance_through_bisector_m(lat1, lon1, lat2, lon2)


def vincenty_inverse_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float | None:
    """Vincenty (1975) inverse; None when the iteration does not converge (near-antipodal)."""
    f, a, b = WGS84_F, WGS84_A, WGS84_B
    # Longitude difference in (-pi, pi]: the |lambda| > pi check below relies on it.
    lon_delta = math.remainder(math.radians(lon2 - lon1), 2 * math.pi)
    tan_u1 = (1 - f) * math.tan(math.radians(lat1))
    tan_u2 = (1 - f) * math.tan(math.radians(lat2))
    cos_u1 = 1 / math.sqrt(1 + tan_u1 * tan_u1)
    cos_u2 = 1 / math.sqrt(1 + tan_u2 * tan_u2)
    sin_u1 = tan_u1 * cos_u1
    sin_u2 = tan_u2 * cos_u2

    lam = lon_delta
    for _ in range(_MAX_ITERATIONS):
        sin_lam, cos_lam = math.sin(lam), math.cos(lam)
        sin_sigma = math.hypot(cos_u2 * sin_lam, cos_u1 * sin_u2 - sin_u1 * cos_u2 * cos_lam)
        if sin_sigma == 0.0:
            return 0.0  # coincident points
        cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_lam
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cos_u1 * cos_u2 * sin_lam / sin_sigma
        cos2_alpha = 1 - sin_alpha * sin_alpha
        # On the equator (cos2_alpha = 0) the term is undefined and irrelevant.
        cos_2sigma_m = cos_sigma - 2 * sin_u1 * sin_u2 / cos2_alpha if cos2_alpha != 0 else 0.0
        c = f / 16 * cos2_alpha * (4 + f * (4 - 3 * cos2_alpha))
        lam_previous = lam
        lam = lon_delta + (1 - c) * f * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sigma_m + c * cos_sigma * (-1 + 2 * cos_2sigma_m**2))
        )
        if abs(lam) > math.pi or math.isnan(lam):
            return None
        if abs(lam - lam_previous) < _TOLERANCE:
            break
    else:
        return None

    u_sq = cos2_alpha * (a * a - b * b) / (b * b)
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    delta_sigma = (
        big_b
        * sin_sigma
        * (
            cos_2sigma_m
            + big_b
            / 4
            * (
                cos_sigma * (-1 + 2 * cos_2sigma_m**2)
                - big_b / 6 * cos_2sigma_m * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sigma_m**2)
            )
        )
    )
    distance = b * big_a * (sigma - delta_sigma)
    return None if math.isnan(distance) else distance


Vector = tuple[float, float, float]


def _to_vector(lat: float, lon: float) -> Vector:
    phi, lam = math.radians(lat), math.radians(lon)
    return (math.cos(phi) * math.cos(lam), math.cos(phi) * math.sin(lam), math.sin(phi))


def _to_lat_lon(v: Vector) -> tuple[float, float]:
    x, y, z = v
    return math.degrees(math.atan2(z, math.hypot(x, y))), math.degrees(math.atan2(y, x))


def _normalized(v: Vector) -> Vector:
    norm = math.sqrt(v[0] ** 2 + v[1] ** 2 + v[2] ** 2)
    return (v[0] / norm, v[1] / norm, v[2] / norm)


def _cross(p: Vector, q: Vector) -> Vector:
    return (p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0])


def _distance_through_bisector_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    a, b = _to_vector(lat1, lon1), _to_vector(lat2, lon2)
    # Points equidistant from A and B on the sphere: the great circle normal to A - B.
    normal = _normalized((a[0] - b[0], a[1] - b[1], a[2] - b[2]))
    helper: Vector = (1.0, 0.0, 0.0) if abs(normal[0]) < 0.9 else (0.0, 1.0, 0.0)
    u = _normalized(_cross(normal, helper))
    v = _cross(normal, u)

    def two_legs(t: float) -> float:
        c, s = math.cos(t), math.sin(t)
        lat, lon = _to_lat_lon((c * u[0] + s * v[0], c * u[1] + s * v[1], c * u[2] + s * v[2]))
        first = vincenty_inverse_m(lat1, lon1, lat, lon)
        second = vincenty_inverse_m(lat, lon, lat2, lon2)
        if first is None or second is None:
            return math.inf
        return first + second

    step = 2 * math.pi / _SCAN_STEPS
    scan = [two_legs(i * step) for i in range(_SCAN_STEPS)]
    minima = [
        i
        for i in range(_SCAN_STEPS)
        if scan[i] <= scan[i - 1] and scan[i] <= scan[(i + 1) % _SCAN_STEPS]
    ]
    local_minima = sorted(minima, key=scan.__getitem__)[:_REFINED_MINIMA]
    best = min(scan)
    for i in local_minima:
        best = min(best, _golden_minimum(two_legs, (i - 1) * step, (i + 1) * step))
    return best


def _golden_minimum(function: Callable[[float], float], low: float, high: float) -> float:
    x1 = high - _INV_PHI * (high - low)
    x2 = low + _INV_PHI * (high - low)
    f1, f2 = function(x1), function(x2)
    for _ in range(_GOLDEN_ITERATIONS):
        if f1 <= f2:
            high, x2, f2 = x2, x1, f1
            x1 = high - _INV_PHI * (high - low)
            f1 = function(x1)
        else:
            low, x1, f1 = x1, x2, f2
            x2 = low + _INV_PHI * (high - low)
            f2 = function(x2)
    return min(f1, f2)
