"""payment-service's business rules: plain async functions taking the session.

- `lifecycle`: a payment's course, driven by its order's events;
- `card_tokens`: card tokens handed over by order-service until order.placed takes them;
- `refunds`: refunds asked for through the API;
- `webhooks`: what provider webhooks report, once each.
None of them commits: the caller (request or consumer) owns the transaction.
"""
