"""inventory-service's business rules, by domain: catalog, stock, reservations.

Plain async functions taking the session; they flush, never commit.
"""
