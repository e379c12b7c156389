"""The business rules of order-service, by domain: placement (the saga), direct orders,
fulfilment (the vendor's and hospital's moves), expiry, and stock holds."""
