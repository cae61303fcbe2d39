"""What every CRM's integration settings share."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from models.normalize import normalize_email


def _placeholders(v: list[str]) -> list[str]:
    return sorted({e for e in (normalize_email(x) for x in v) if e})


PlaceholderEmails = Annotated[list[str], AfterValidator(_placeholders)]
"""Addresses or glob patterns (``noemail@*``) that never merge two contacts (seed 002),
trimmed and lower-cased once, when the settings are read."""
