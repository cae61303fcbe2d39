"""Registry of CRM providers: ``provider`` in the tenants file → implementation."""

from __future__ import annotations

from crmsync.providers.base import Provider


class UnknownProviderError(ValueError):
    pass


def get_provider(name: str) -> Provider:
    if name == "servicetitan":
        from crmsync.providers.servicetitan import ServiceTitanProvider

        return ServiceTitanProvider()
    raise UnknownProviderError(f"unknown provider {name!r}; known: {', '.join(PROVIDERS)}")


PROVIDERS: tuple[str, ...] = ("servicetitan",)
