"""The event envelope of SPEC.

`{id, type, version, occurred_at, producer, correlation_id, data}`, routing key = type.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flow_shared.clock import utcnow
from flow_shared.correlation import get_correlation_id


class EventEnvelope(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID = Field(default_factory=uuid.uuid4)
    type: str = Field(min_length=1, max_length=100, pattern=r"^[a-z_]+\.[a-z_]+$")
    version: int = 1
    # When it was written (metadata; rules read their own clock's moment in `data`).
    occurred_at: datetime = Field(default_factory=utcnow)
    producer: str
    correlation_id: str | None = Field(default_factory=get_correlation_id)
    data: dict[str, Any]

    @property
    def routing_key(self) -> str:
        return self.type
