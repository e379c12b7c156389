"""Geodesic distance on WGS84 (flow_shared.geo): published reference values to the
millimetre, the degenerate cases (same point, poles), the nearly antipodal pairs where
Vincenty's iteration does not converge, bad input, and the metric's properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flow_shared.geo import geodesic_distance_m

MILLIMETRE = 1e-3
# Twice the WGS84 quarter meridian (10 001 965.7293 m): pole to pole, and also exact
# antipodes on the equator, whose shortest path runs over a pole. Nothing is further.
HALF_MERIDIAN_M = 20_003_931.4586

Pair = tuple[float, float, float, float]


@pytest.mark.parametrize(
    ("pair", "expected_m"),
    [
        # GeographicLib's own test set (GeodTest), given there to 1e-8 m.
        ((35.60777, -139.44815, -11.17491, -69.95921), 8_935_244.5604818305),
        ((-21.97856, 142.59065, 41.84138, 98.56635), 8_394_328.894657671),
        # A longitude past 180 is taken modulo 360.
        ((55.52454, 106.05087, 77.03196, 197.18234), 4_105_086.1713924406),
        ((6.96833, 52.74123, -7.39675, 206.17291), 17_102_477.2496958388),
        # The documentation's example: Wellington, NZ to Salamanca, Spain (printed to 1 mm).
        ((-41.32, 174.81, 40.96, -5.50), 19_959_679.267),
    ],
)
def test_published_distances_to_the_millimetre(pair: Pair, expected_m: float) -> None:
    assert geodesic_distance_m(*pair) == pytest.approx(expected_m, abs=MILLIMETRE)


@pytest.mark.parametrize(
    "pair",
    [
        (51.50853, -0.12574, 51.50853, -0.12574),
        (0.0, -180.0, 0.0, 180.0),  # one meridian, two names
        (12.5, 10.0, 12.5, 370.0),
        (90.0, 0.0, 90.0, 123.0),  # every longitude meets at a pole
        (-90.0, -45.0, -90.0, 170.0),
    ],
)
def test_the_same_place_is_zero_metres(pair: Pair) -> None:
    assert geodesic_distance_m(*pair) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    ("pair", "expected_m"),
    [
        ((90.0, 0.0, 0.0, 0.0), HALF_MERIDIAN_M / 2),
        ((0.0, 77.0, -90.0, 0.0), HALF_MERIDIAN_M / 2),
        ((90.0, 0.0, -90.0, 0.0), HALF_MERIDIAN_M),
        ((-90.0, 10.0, 90.0, -135.0), HALF_MERIDIAN_M),
    ],
)
def test_distances_from_the_poles_are_meridian_arcs(pair: Pair, expected_m: float) -> None:
    assert geodesic_distance_m(*pair) == pytest.approx(expected_m, abs=MILLIMETRE)


@pytest.mark.parametrize(
    ("pair", "expected_m"),
    [
        # Exact antipodes: every half meridian through both is a shortest path.
        ((0.0, 0.0, 0.0, 180.0), HALF_MERIDIAN_M),
        ((10.0, 20.0, -10.0, -160.0), HALF_MERIDIAN_M),
        # GeographicLib's regression cases for nearly antipodal points (GeodSolve6, 9,
        # 10, 11), each given there to the millimetre.
        ((88.202499451857, 0.0, -88.202499451857, 179.981022032992859592), 20_003_898.214),
        ((89.262080389218, 0.0, -89.262080389218, 179.992207982775375662), 20_003_925.854),
        ((56.320923501171, 0.0, -56.320923501171, 179.664747671772880215), 19_993_558.287),
        ((52.784459512564, 0.0, -52.784459512563990912, 179.634407464943777557), 19_991_596.095),
        ((48.522876735459, 0.0, -48.52287673545898293, 179.599720456223079643), 19_989_144.774),
    ],
)
def test_nearly_antipodal_points_have_their_true_distance(pair: Pair, expected_m: float) -> None:
    distance = geodesic_distance_m(*pair)

    assert math.isfinite(distance)
    assert distance == pytest.approx(expected_m, abs=MILLIMETRE)


def test_near_the_equator_antipodes_are_reached_off_the_equator() -> None:
    # GeodSolve33: 179.5 degrees along the equator is not the shortest way (19 981 km,
    # given there to the metre); 179 degrees still is the equator, a*pi*179/180.
    assert geodesic_distance_m(0.0, 0.0, 0.0, 179.5) == pytest.approx(19_980_862, abs=0.5)
    assert geodesic_distance_m(0.0, 0.0, 0.0, 179.0) == pytest.approx(
        6_378_137.0 * math.radians(179.0), abs=MILLIMETRE
    )


@pytest.mark.parametrize(
    "pair",
    [
        (90.000001, 0.0, 0.0, 0.0),
        (0.0, 0.0, -91.0, 0.0),
        (math.nan, 0.0, 0.0, 0.0),
        (0.0, math.inf, 0.0, 0.0),
        (0.0, 0.0, 0.0, math.nan),
    ],
)
def test_impossible_coordinates_are_refused(pair: Pair) -> None:
    with pytest.raises(ValueError, match=r"lat|lon"):
        geodesic_distance_m(*pair)


latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
points = st.tuples(latitudes, longitudes)


@settings(max_examples=300, deadline=None)
@given(a=points, b=points)
def test_distance_is_symmetric_non_negative_and_at_most_half_a_meridian(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    forward = geodesic_distance_m(*a, *b)
    backward = geodesic_distance_m(*b, *a)

    assert forward >= 0
    assert forward == pytest.approx(backward, abs=MILLIMETRE)
    assert forward <= HALF_MERIDIAN_M + MILLIMETRE


@settings(max_examples=100, deadline=None)
@given(a=points)
def test_distance_to_the_same_point_is_zero(a: tuple[float, float]) -> None:
    assert geodesic_distance_m(*a, *a) == 0.0


@settings(max_examples=300, deadline=None)
@given(a=points, b=points, c=points)
def test_distance_obeys_the_triangle_inequality(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]
) -> None:
    direct = geodesic_distance_m(*a, *c)
    via_b = geodesic_distance_m(*a, *b) + geodesic_distance_m(*b, *c)

    assert direct <= via_b + MILLIMETRE
