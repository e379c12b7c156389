"""payment-service's business rules: plain async functions taking the session.

- `lifecycle`: a payment's course, driven by its order's events;
- `refunds`: refunds asked for through the API;
- `webhooks`: what provider webhooks report, once each.
None of them commits: the caller (request or consumer) owns the transaction.
"""
