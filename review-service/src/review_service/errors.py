"""review-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import Conflict, NotFound


class OrderNotReviewable(NotFound):
    """Unknown, or another organisation's: both look the same, so a hospital learns
    nothing about other organisations' orders."""

    code, title = "order-not-reviewable", "Order not reviewable"


class OrderNotDeliveredYet(Conflict):
    """The hospital's own order, not delivered yet: it may be reviewed once it is."""

    code, title = "order-not-delivered", "Order not delivered yet"


class ReviewExists(Conflict):
    code, title = "review-exists", "This order has already been reviewed"


class ReviewNotFound(NotFound):
    code, title = "review-not-found", "Review not found"


class ReviewAlreadyAnswered(Conflict):
    code, title = "review-already-answered", "This review already has a response"
