"""Registry of CRM providers: ``provider`` in the tenants file → implementation.

Adding a CRM: a connector in ``connectors/``, a pure mapping in ``models/mappings/``, a provider
module here implementing :class:`~crmsync.providers.base.Provider`, one entry in ``_REGISTRY``.
"""

from __future__ import annotations

import importlib

from crmsync.providers.base import Provider


class UnknownProviderError(ValueError):
    pass


_REGISTRY: dict[str, str] = {
    "servicetitan": "crmsync.providers.servicetitan:ServiceTitanProvider",
    "leadperfection": "crmsync.providers.leadperfection:LeadPerfectionProvider",
    "improveit360": "crmsync.providers.improveit360:Improveit360Provider",
}
PROVIDERS: tuple[str, ...] = tuple(_REGISTRY)


def get_provider(name: str) -> Provider:
    target = _REGISTRY.get(name)
    if target is None:
        raise UnknownProviderError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")
    module, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module), attr)
    provider: Provider = cls()
    return provider
