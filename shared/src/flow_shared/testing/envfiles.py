"""Reading env files (.env.example, .env.production.template, generated ones) in tests."""

from __future__ import annotations

from pathlib import Path


def parse_env_text(text: str) -> dict[str, str]:
    """NAME -> value of each assignment in an env file's text, in file order, read as
    scripts/flowctl.py reads it: blank lines, comments and lines without `=` skipped,
    names and values stripped, surrounding quotes removed."""
    values: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip().strip('"').strip("'")
    return values


def parse_env(path: Path) -> dict[str, str]:
    """The assignments of the env file at `path` (see `parse_env_text`)."""
    return parse_env_text(path.read_text())
