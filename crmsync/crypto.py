"""Encryption of integration credentials at rest (Fernet: AES-128-CBC + HMAC-SHA256).

A ``MultiFernet`` over the configured keys lets operators rotate: put the new key first, keep
the old ones until ``crmsync tenants rotate-key`` (or a re-apply) has re-encrypted every row.
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from crmsync.settings import get_settings


class CredentialDecryptError(RuntimeError):
    """The stored credentials cannot be decrypted with the configured key(s)."""


def _load_keys() -> list[bytes]:
    settings = get_settings()
    if settings.secret_key is not None:
        return [k.strip().encode() for k in settings.secret_key.get_secret_value().split(",") if k]
    path = settings.data_dir / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key())
    return [path.read_bytes().strip()]


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    return MultiFernet([Fernet(k) for k in _load_keys()])


def encrypt_json(value: dict[str, Any]) -> bytes:
    return _fernet().encrypt(orjson.dumps(value))


def decrypt_json(token: bytes) -> dict[str, Any]:
    try:
        data: dict[str, Any] = orjson.loads(_fernet().decrypt(bytes(token)))
    except InvalidToken:
        raise CredentialDecryptError(
            "stored credentials cannot be decrypted: CRMSYNC_SECRET_KEY differs from the key "
            "they were encrypted with"
        ) from None
    return data
