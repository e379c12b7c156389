"""What order-service consumes, as one registry (its handlers live with their rules).

payment.failed ends orders (service.payments); organization.* set the hospitals' caps and
supply.reported their ALLOCATION_DAYS floor (service.allocation); shortage.* feed the
projection of active shortages (service.shortages). Not in events.py, which holds what
order-service publishes: the rules import it (service.payments through state), so it
cannot import them.
"""

from __future__ import annotations

from flow_shared.events.consumer import EventHandlers
from order_service.service import allocation, shortages
from order_service.service.payments import on_payment_failed


def event_handlers() -> EventHandlers:
    return EventHandlers(
        {
            "payment.failed": on_payment_failed,
            "organization.verified": allocation.on_organization_verified,
            "organization.suspended": allocation.on_organization_suspended,
            "organization.reinstated": allocation.on_organization_reinstated,
            "shortage.declared": shortages.on_shortage_declared,
            "shortage.ended": shortages.on_shortage_ended,
            "supply.reported": allocation.on_supply_reported,
        }
    )
