"""``up --redis``: Prefect's server spread over several processes (N API processes without
services, the background services in one more), coordinated through Redis with prefect-redis."""

from __future__ import annotations

from ops.stack.state import StackError

# Prefect's documented Redis settings for a server spread over several processes
# (docs.prefect.io/v3/advanced/self-hosted, "Redis setup"), with prefect-redis 0.3.
REDIS_SERVER_SETTINGS = {
    "PREFECT_MESSAGING_BROKER": "prefect_redis.messaging",
    "PREFECT_MESSAGING_CACHE": "prefect_redis.messaging",
    "PREFECT_SERVER_EVENTS_CAUSAL_ORDERING": "prefect_redis.ordering",
    "PREFECT_SERVER_CONCURRENCY_LEASE_STORAGE": "prefect_redis.lease_storage",
}
# Other names of the same settings (and the Redis connection's separate fields), which would
# compete with the values above if inherited from the caller's environment.
_REDIS_COMPETING = (
    "PREFECT_SERVER_EVENTS_MESSAGING_BROKER",
    "PREFECT_SERVER_EVENTS_MESSAGING_CACHE",
    "PREFECT_REDIS_MESSAGING_HOST",
    "PREFECT_REDIS_MESSAGING_PORT",
    "PREFECT_REDIS_MESSAGING_DB",
    "PREFECT_REDIS_MESSAGING_USERNAME",
    "PREFECT_REDIS_MESSAGING_PASSWORD",
    "PREFECT_REDIS_MESSAGING_SSL",
    "PREFECT_API_DATABASE_MIGRATE_ON_START",
    "PREFECT_API_BLOCKS_REGISTER_ON_START",
)


def redact_redis(url: str) -> str:
    """A Redis URL for people and stack.json: no password."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def check_redis(url: str, timeout: float = 3) -> None:
    """Raise StackError unless prefect-redis is installed and Redis at ``url`` answers PING."""
    import importlib.util

    if importlib.util.find_spec("prefect_redis") is None:
        raise StackError("--redis needs the prefect-redis package; run `make setup`")
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=timeout, socket_timeout=timeout)
        with client:
            client.ping()
    except (ValueError, redis.RedisError) as exc:
        reason = str(exc).strip() or type(exc).__name__
        raise StackError(
            f"Redis at {redact_redis(url)} does not answer ({reason}); "
            "start it or pass another --redis URL (redis://host:6379/db)"
        ) from None


def _redis_server_env(env: dict[str, str], url: str) -> None:
    """Point a server process's environment at Redis (messaging, ordering, leases, Docket).

    The migrations and block types are applied once before any process starts
    (``prepare-database``), so N API processes starting together do not race on them.
    """
    for key in _REDIS_COMPETING:
        env.pop(key, None)
    env.update(REDIS_SERVER_SETTINGS)
    env.update(
        PREFECT_REDIS_MESSAGING_URL=url,  # prefect-redis: authoritative over host/port/db fields
        PREFECT_SERVER_DOCKET_URL=url,  # background tasks shared by API and services processes
        PREFECT_SERVER_DATABASE_MIGRATE_ON_START="false",
        PREFECT_SERVER_REGISTER_BLOCKS_ON_START="false",
    )
