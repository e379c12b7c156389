from admin_service.models import Base
from flow_shared.migrations import run_migrations

run_migrations(Base.metadata, schema="admin")
