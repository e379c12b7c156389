from flow_shared.migrations import run_migrations
from payment_service.models import Base

run_migrations(Base.metadata, schema="payments")
