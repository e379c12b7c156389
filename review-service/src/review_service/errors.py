"""review-service's domain errors (turned into problem+json by flow_shared.errors)."""

from __future__ import annotations

from flow_shared.errors import Conflict, NotFound


class OrderNotReviewable(NotFound):
    """Unknown, not (yet) delivered, or delivered to another organisation: all look the
    same, so a hospital learns nothing about other organisations' orders."""

    code, title = "order-not-reviewable", "Order not reviewable"


class ReviewExists(Conflict):
    code, title = "review-exists", "This order has already been reviewed"


class ReviewNotFound(NotFound):
    code, title = "review-not-found", "Review not found"


class ReviewAlreadyAnswered(Conflict):
    code, title = "review-already-answered", "This review already has a response"
