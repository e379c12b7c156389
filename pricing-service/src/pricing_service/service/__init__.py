"""pricing-service's business rules, by topic:

- `prices`: a vendor's price list, every version kept in price_history;
- `quotes`: quotes priced from the current prices, stored, read, and pruned once long
  expired;
- `comparison`: every nearby vendor priced as a quote would be, stored never (cached);
- `money`: the quote arithmetic itself, pure `Decimal` functions.

Functions take the request's session and only flush; the request commits. Upstream
calls happen before the database work of a request, so a slow inventory or location
answer does not hold a pooled connection.
"""
