"""Input types every service's schemas use so that PostgreSQL never refuses a request.

PostgreSQL refuses NUL (`\\u0000`) in `text` and `jsonb`, integers beyond its
column types and amounts beyond `Numeric(14, 2)`. Input that would hit any of
these is a 422 at the edge, documented in the OpenAPI, never a 500 from the
database.

Text: put the constraints first and `NoNul()` last, so the schema keeps one
pattern and pydantic's own length messages:

    Name = Annotated[str, StringConstraints(max_length=200), NoNul()]
    q: Annotated[Text | None, Query(max_length=100)] = None

A point and an area in a query string have the same bounds everywhere: `Latitude`,
`Longitude`, `RadiusKm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import Query
from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from flow_shared.errors import UnprocessableEntity

NUL = "\x00"
# What the OpenAPI says about text without a pattern of its own: no NUL anywhere.
NO_NUL_PATTERN = r"^[^\x00]*$"

# PostgreSQL `integer`.
DB_INTEGER_MAX = 2**31 - 1
# The most units of one product a stock row, reservation, order or quote line may hold.
# Well inside `integer`, so sums of a few such values (on hand + an adjustment) fit too.
MAX_UNITS = 1_000_000_000
# `Numeric(14, 2)`, the column every stored amount uses.
AMOUNT_MAX_DIGITS = 14
AMOUNT_DECIMAL_PLACES = 2
MAX_AMOUNT = Decimal("999999999999.99")


def refuse_nul(value: str) -> str:
    if NUL in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


@dataclass(frozen=True, slots=True)
class NoNul:
    """Annotated metadata: the string may not contain NUL (422 otherwise)."""

    def __get_pydantic_core_schema__(
        self, source: type[Any], handler: GetCoreSchemaHandler
    ) -> CoreSchema:
        return core_schema.no_info_after_validator_function(refuse_nul, handler(source))

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        json_schema = handler.resolve_ref_schema(handler(schema))
        # A pattern of the type's own (an e-mail's) stays; it is the tighter promise.
        if json_schema.get("type") == "string":
            json_schema.setdefault("pattern", NO_NUL_PATTERN)
        return json_schema


# Any text a request may carry (body, query, path): NUL refused.
Text = Annotated[str, NoNul()]


def refuse_float(value: object) -> object:
    # A binary float has already lost cents; money must arrive as a decimal string.
    if isinstance(value, float):
        raise ValueError('send amounts as decimal strings, e.g. "12.50"')
    return value


# --- integers --------------------------------------------------------------------------

# Units of a product: a stock level, a threshold (0 allowed).
Units = Annotated[int, Field(ge=0, le=MAX_UNITS)]
# Units asked for: an order or reservation line (at least one).
PositiveUnits = Annotated[int, Field(ge=1, le=MAX_UNITS)]
# A change of a stock level, either way.
UnitsDelta = Annotated[int, Field(ge=-MAX_UNITS, le=MAX_UNITS)]
# Anything else that lands in an `integer` column (a count, a version, seconds).
DbInteger = Annotated[int, Field(ge=-DB_INTEGER_MAX - 1, le=DB_INTEGER_MAX)]

# --- a point and an area ----------------------------------------------------------------

# The widest area the "who is within" queries answer for (a declared shortage's at most).
MAX_AREA_RADIUS_KM = 2000

# In a query string.
Latitude = Annotated[float, Query(ge=-90, le=90, allow_inf_nan=False)]
Longitude = Annotated[float, Query(ge=-180, le=180, allow_inf_nan=False)]
RadiusKm = Annotated[float, Query(gt=0, le=MAX_AREA_RADIUS_KM)]
# In a body.
LatitudeValue = Annotated[float, Field(ge=-90, le=90, allow_inf_nan=False)]
LongitudeValue = Annotated[float, Field(ge=-180, le=180, allow_inf_nan=False)]

# --- money -----------------------------------------------------------------------------

# An amount a request carries: a decimal string, at most two decimals, fits Numeric(14, 2).
Amount = Annotated[
    Decimal,
    BeforeValidator(refuse_float),
    Field(
        ge=0,
        le=MAX_AMOUNT,
        max_digits=AMOUNT_MAX_DIGITS,
        decimal_places=AMOUNT_DECIMAL_PLACES,
        allow_inf_nan=False,
    ),
]


class AmountTooLarge(UnprocessableEntity):
    code, title = "amount-too-large", "Amount too large"


def ensure_amount_fits(value: Decimal, *, what: str) -> Decimal:
    """A computed amount (a quote's total) that a stored column could not hold is the
    request's fault (too many units at that price): 422, before the database refuses it."""
    if abs(value) > MAX_AMOUNT:
        raise AmountTooLarge(
            f"The {what} would exceed {MAX_AMOUNT}, the largest amount Flow holds."
        )
    return value


# A cylinder's serial as vendors stamp it (unique per vendor at inventory-service's
# ledger). It appears in paths and in problems, so no slashes, spaces or other marks.
CYLINDER_SERIAL_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$"
CYLINDER_SERIAL_MAX_LENGTH = 40
CylinderSerial = Annotated[
    str, StringConstraints(pattern=CYLINDER_SERIAL_PATTERN, max_length=CYLINDER_SERIAL_MAX_LENGTH)
]
# The most serials one move (a dispatch, a delivery's returns, a collection) names.
MAX_CYLINDERS_PER_MOVE = 1000


def refuse_repeated_serials(serials: list[str]) -> list[str]:
    """A serial named twice in one move is a mistake, never two cylinders."""
    repeated = sorted({serial for serial in serials if serials.count(serial) > 1})
    if repeated:
        raise ValueError("serials must be unique: " + ", ".join(repeated))
    return serials


# The serials one move names: each once, at most MAX_CYLINDERS_PER_MOVE.
CylinderSerials = Annotated[
    list[CylinderSerial],
    Field(max_length=MAX_CYLINDERS_PER_MOVE),
    AfterValidator(refuse_repeated_serials),
]
