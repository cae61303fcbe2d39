"""Email to a tenant's contact address over SMTP (seed 003: the failure summary "by email").

Configured from the environment (``CRMSYNC_SMTP_HOST``, ``_PORT``, ``_USER``, ``_PASSWORD``,
``_FROM``, ``_STARTTLS``); without a host nothing is sent and :func:`send_email` says so. Port 465
speaks TLS from the first byte (SMTPS); any other port upgrades with STARTTLS when the server
offers it (``CRMSYNC_SMTP_STARTTLS=true`` requires it, ``false`` never asks). The password is
never logged or put in an error message.
"""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SmtpSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CRMSYNC_SMTP_", extra="ignore", hide_input_in_errors=True
    )

    host: str | None = Field(default=None, description="SMTP server; unset = no email is sent.")
    port: int = Field(default=587, ge=1, le=65_535, description="465 = SMTPS (TLS at connect).")
    user: str | None = Field(default=None, description="Sign-in user, if the server needs one.")
    password: SecretStr | None = None
    from_address: str | None = Field(
        default=None,
        validation_alias=AliasChoices("CRMSYNC_SMTP_FROM", "CRMSYNC_SMTP_FROM_ADDRESS"),
        description="Sender address; default the user, else crmsync@localhost.",
    )
    starttls: bool | None = Field(
        default=None, description="None: when offered; True: required; False: never."
    )
    timeout_seconds: float = Field(default=30, gt=0)


def send_email(to: str, subject: str, body: str, settings: SmtpSettings | None = None) -> bool:
    """Send a plain-text email; False when no SMTP host is configured. Raises
    :class:`smtplib.SMTPException` or :class:`OSError` when the server refuses or is down."""
    settings = settings or SmtpSettings()
    if not settings.host:
        return False
    sender = settings.from_address or settings.user or "crmsync@localhost"
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message.set_content(body)
    context = ssl.create_default_context()
    smtp: smtplib.SMTP
    if settings.port == 465:
        smtp = smtplib.SMTP_SSL(
            settings.host, settings.port, timeout=settings.timeout_seconds, context=context
        )
    else:
        smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout_seconds)
    with smtp:
        smtp.ehlo()
        if settings.port != 465 and settings.starttls is not False:
            if smtp.has_extn("starttls"):
                smtp.starttls(context=context)
                smtp.ehlo()
            elif settings.starttls:
                raise smtplib.SMTPNotSupportedError(
                    f"{settings.host}:{settings.port} does not offer STARTTLS"
                )
        if settings.user:
            password = settings.password.get_secret_value() if settings.password else ""
            smtp.login(settings.user, password)
        smtp.send_message(message, from_addr=sender, to_addrs=[to])
    return True
