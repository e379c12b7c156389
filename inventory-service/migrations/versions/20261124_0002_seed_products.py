"""seed products: the medical-oxygen catalogue with stable SKUs (and ids derived from them)

Revision ID: 20261124_0002
Revises: 20261124_0001
Create Date: 2026-11-24
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "20261124_0002"
down_revision: str | None = "20261124_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "inventory"
# ids are uuid5 of the SKU, so every environment has the same product ids.
PRODUCT_ID_NAMESPACE = uuid.UUID("6f1c0b52-3d4e-4c1a-9a57-2f0e7f3b8d11")

# (sku, name, category, unit, description)
CATALOGUE: list[tuple[str, str, str, str, str]] = [
    # Cylinders by water capacity; gas content at the usual fill pressure.
    (
        "O2-CYL-1L",
        "Medical oxygen cylinder 1 L",
        "oxygen_cylinder",
        "cylinder",
        "Aluminium portable cylinder, 1 L water capacity, 200 bar, about 200 L of medical O2 "
        "(USP/EP 99.5 %); post valve with integrated regulator option.",
    ),
    (
        "O2-CYL-2L",
        "Medical oxygen cylinder 2 L",
        "oxygen_cylinder",
        "cylinder",
        "Portable cylinder, 2 L water capacity, 200 bar, about 400 L of medical O2; "
        "for ambulatory and transport use.",
    ),
    (
        "O2-CYL-5L",
        "Medical oxygen cylinder 5 L",
        "oxygen_cylinder",
        "cylinder",
        "Cylinder, 5 L water capacity, 200 bar, about 1,000 L of medical O2; ward and "
        "ambulance use.",
    ),
    (
        "O2-CYL-10L",
        "Medical oxygen cylinder 10 L",
        "oxygen_cylinder",
        "cylinder",
        "Steel cylinder, 10 L water capacity, 150 bar, about 1,500 L of medical O2; "
        "bedside supply.",
    ),
    (
        "O2-CYL-20L",
        "Medical oxygen cylinder 20 L",
        "oxygen_cylinder",
        "cylinder",
        "Steel cylinder, 20 L water capacity, 150 bar, about 3,000 L of medical O2.",
    ),
    (
        "O2-CYL-40L",
        "Medical oxygen cylinder 40 L",
        "oxygen_cylinder",
        "cylinder",
        "Steel cylinder, 40 L water capacity, 150 bar, about 6,000 L of medical O2; "
        "manifold and high-flow use.",
    ),
    (
        "O2-CYL-46.7L",
        "Medical oxygen cylinder 46.7 L (D-type)",
        "oxygen_cylinder",
        "cylinder",
        "Steel D-type cylinder, 46.7 L water capacity, 150 bar, about 7,000 L (7 m3) of "
        "medical O2; hospital manifold banks.",
    ),
    # Liquid medical oxygen by mass (1 kg of LOX is about 700 L of gas).
    (
        "LOX-100KG",
        "Liquid medical oxygen 100 kg",
        "liquid_oxygen",
        "dewar",
        "Liquid medical oxygen in a 100 kg portable cryogenic dewar, about 70,000 L of gas.",
    ),
    (
        "LOX-250KG",
        "Liquid medical oxygen 250 kg",
        "liquid_oxygen",
        "dewar",
        "Liquid medical oxygen in a 250 kg cryogenic dewar, about 175,000 L of gas.",
    ),
    (
        "LOX-1000KG",
        "Liquid medical oxygen 1,000 kg",
        "liquid_oxygen",
        "tank fill",
        "Bulk delivery of 1,000 kg liquid medical oxygen into the hospital's VIE tank by "
        "cryogenic tanker.",
    ),
    (
        "LOX-5000KG",
        "Liquid medical oxygen 5,000 kg",
        "liquid_oxygen",
        "tank fill",
        "Bulk delivery of 5,000 kg liquid medical oxygen into the hospital's VIE tank by "
        "cryogenic tanker.",
    ),
    # Concentrators by flow.
    (
        "CONC-3LPM-POC",
        "Portable oxygen concentrator 3 L/min",
        "concentrator",
        "unit",
        "Battery-powered pulse-dose portable concentrator, up to 3 L/min equivalent, 90 % +/- 3 %.",
    ),
    (
        "CONC-5LPM",
        "Oxygen concentrator 5 L/min",
        "concentrator",
        "unit",
        "Stationary continuous-flow concentrator, 0.5-5 L/min, 93 % +/- 3 % O2, with "
        "low-purity alarm.",
    ),
    (
        "CONC-10LPM",
        "Oxygen concentrator 10 L/min",
        "concentrator",
        "unit",
        "Stationary continuous-flow concentrator, 1-10 L/min, 93 % +/- 3 % O2, dual flowmeter "
        "outlets.",
    ),
    # Regulators, flowmeters and consumables.
    (
        "REG-CGA870",
        "Oxygen regulator, pin-index (CGA 870)",
        "accessory",
        "unit",
        "Pin-index regulator with contents gauge and 0-15 L/min click-style flow selector, for "
        "small post-valve cylinders.",
    ),
    (
        "REG-BULLNOSE",
        "Oxygen regulator, bullnose (CGA 540)",
        "accessory",
        "unit",
        "Bullnose regulator with contents gauge and DISS outlet, for 40 L and 46.7 L cylinders.",
    ),
    (
        "FLOW-0-15LPM",
        "Oxygen flowmeter 0-15 L/min",
        "accessory",
        "unit",
        "Thorpe-tube flowmeter, 0-15 L/min, wall-outlet or regulator mounted.",
    ),
    (
        "FLOW-0-70LPM",
        "High-flow oxygen flowmeter 0-70 L/min",
        "accessory",
        "unit",
        "High-flow flowmeter, 0-70 L/min, for high-flow nasal oxygen and CPAP set-ups.",
    ),
    (
        "HUMIDIFIER-350ML",
        "Bubble humidifier bottle 350 mL",
        "accessory",
        "unit",
        "Reusable bubble humidifier for flowmeters, 350 mL, 6 psi safety valve.",
    ),
    (
        "MASK-NRB-ADULT",
        "Non-rebreather mask, adult",
        "accessory",
        "pack of 10",
        "Adult non-rebreather oxygen masks with reservoir bag and 2 m tubing, pack of 10.",
    ),
    (
        "CANNULA-NASAL-ADULT",
        "Nasal cannula, adult",
        "accessory",
        "pack of 25",
        "Adult soft-tip nasal cannulas with 2 m crush-resistant tubing, pack of 25.",
    ),
    # Refill services: the hospital's empty cylinder exchanged or refilled.
    (
        "REFILL-1L",
        "Cylinder refill 1 L",
        "refill",
        "refill",
        "Refill of a customer-owned 1 L medical oxygen cylinder, with valve check.",
    ),
    (
        "REFILL-2L",
        "Cylinder refill 2 L",
        "refill",
        "refill",
        "Refill of a customer-owned 2 L medical oxygen cylinder, with valve check.",
    ),
    (
        "REFILL-5L",
        "Cylinder refill 5 L",
        "refill",
        "refill",
        "Refill of a customer-owned 5 L medical oxygen cylinder, with valve check.",
    ),
    (
        "REFILL-10L",
        "Cylinder refill 10 L",
        "refill",
        "refill",
        "Refill of a customer-owned 10 L medical oxygen cylinder, with valve check.",
    ),
    (
        "REFILL-40L",
        "Cylinder refill 40 L",
        "refill",
        "refill",
        "Refill of a customer-owned 40 L medical oxygen cylinder, hydrostatic test date checked.",
    ),
    (
        "REFILL-46.7L",
        "Cylinder refill 46.7 L (D-type)",
        "refill",
        "refill",
        "Refill of a customer-owned 46.7 L D-type cylinder, hydrostatic test date checked.",
    ),
]


def product_id(sku: str) -> uuid.UUID:
    return uuid.uuid5(PRODUCT_ID_NAMESPACE, sku)


products = sa.table(
    "products",
    sa.column("id", sa.Uuid()),
    sa.column("sku", sa.String()),
    sa.column("name", sa.String()),
    sa.column("category", sa.String()),
    sa.column("unit", sa.String()),
    sa.column("description", sa.Text()),
    schema=SCHEMA,
)


def upgrade() -> None:
    op.bulk_insert(
        products,
        [
            {
                "id": product_id(sku),
                "sku": sku,
                "name": name,
                "category": category,
                "unit": unit,
                "description": description,
            }
            for sku, name, category, unit, description in CATALOGUE
        ],
    )


def downgrade() -> None:
    op.execute(products.delete().where(products.c.sku.in_([row[0] for row in CATALOGUE])))
