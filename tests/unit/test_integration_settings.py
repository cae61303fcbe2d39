"""Integration settings as the hub stores them (``crmsync.tenants`` writes
``model_dump(mode="json")``; every run reads them back with ``model_validate``)."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from crmsync.providers import get_provider


@pytest.mark.parametrize("provider", ["servicetitan", "leadperfection", "improveit360"])
@pytest.mark.parametrize(
    "settings",
    [{}, {"inbound_activities": {"enabled": True}}],
    ids=["defaults", "inbound-on"],
)
def test_stored_settings_read_back_unchanged(provider: str, settings: dict[str, Any]) -> None:
    """A settings model whose stored form it refuses would fail every run of the integration
    (a default that a validator rejects once it is explicit, say)."""
    model: type[BaseModel] = get_provider(provider).settings_model
    stored = model.model_validate(settings).model_dump(mode="json")
    assert model.model_validate(stored).model_dump(mode="json") == stored


@pytest.mark.parametrize(
    ("provider", "kinds"),
    [("servicetitan", ["note"]), ("leadperfection", ["note", "call"])],
)
def test_inbound_activity_kinds_default_to_the_kinds_the_crm_has(
    provider: str, kinds: list[str]
) -> None:
    model = get_provider(provider).settings_model
    stored = model.model_validate({"inbound_activities": {"enabled": True}}).model_dump()
    assert stored["inbound_activities"]["kinds"] == kinds
