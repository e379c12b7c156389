"""JSON logs with the correlation id on every line and secrets redacted.

Both structlog and standard-library loggers (uvicorn, sqlalchemy, aio-pika)
go through the same processors, so one line format reaches the log folder.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

import structlog

from flow_shared.correlation import get_correlation_id

REDACTED = "[REDACTED]"
_SECRET_KEY = re.compile(
    r"pass(word)?|secret|token|authorization|api[_-]?key|service[_-]?key|cookie|jwt|private",
    re.IGNORECASE,
)
# Values that look like credentials even under an innocent key.
_SECRET_VALUE = re.compile(
    r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"
    r"|eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"
    r"|(://[^:/@\s]+:)[^@\s]+(@)"
)


def _scrub_text(text: str) -> str:
    def repl(match: re.Match[str]) -> str:
        if match.group(1):
            return match.group(1) + REDACTED
        if match.group(2):
            return match.group(2) + REDACTED + match.group(3)
        return REDACTED

    return _SECRET_VALUE.sub(repl, text)


def redact(value: Any, depth: int = 0) -> Any:
    """Return `value` with secret-looking keys and values replaced."""
    if depth > 6:
        return value
    if isinstance(value, Mapping):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_KEY.search(k) else redact(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact(v, depth + 1) for v in value]
    if isinstance(value, str):
        return _scrub_text(value)
    return value


def _redact_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    return redact(event_dict)  # type: ignore[no-any-return]


def _drop_console_extras(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    # uvicorn adds an ANSI-coloured copy of each message for terminals.
    event_dict.pop("color_message", None)
    return event_dict


def _add_correlation_id(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    correlation_id = get_correlation_id()
    if correlation_id is not None:
        event_dict.setdefault("correlation_id", correlation_id)
    return event_dict


def configure_logging(service_name: str, level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger to write JSON to stdout."""

    def add_service(
        _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        event_dict.setdefault("service", service_name)
        return event_dict

    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_service,
        _add_correlation_id,
        structlog.processors.format_exc_info,
        _drop_console_extras,
        _redact_processor,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    # The access log is replaced by our own request line, which carries the route template.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("aiormq").setLevel("WARNING")
    logging.getLogger("aio_pika").setLevel("WARNING")
