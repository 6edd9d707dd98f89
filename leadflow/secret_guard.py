"""Secrets: the identity secret a production process may use, the warehouse's fingerprint of it,
and passwords kept out of error and log lines."""
from __future__ import annotations

import hashlib
import hmac
import logging
import re
from datetime import datetime, timezone

from clickhouse_connect.driver.client import Client

from leadflow.config import DEV_IDENTITY_SECRET, ConfigError, Settings

_FINGERPRINT_MESSAGE = b"leadflow identity secret fingerprint v1"
# scheme://user:password@host  and  password=... in a query string or key=value list
_URL_PASSWORD = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]*(?P<at>@)")
_PARAM_PASSWORD = re.compile(r"(?P<pre>\b(?:password|passwd|pwd|token|secret)=)[^&\s;,'\"]+", re.IGNORECASE)


class SecretMismatch(RuntimeError):
    """The warehouse's identity hashes were made with another identity secret."""


def redact(text: str) -> str:
    """`text` with the passwords of URLs (http://user:pass@host) and `password=` values replaced by ***."""
    text = _URL_PASSWORD.sub(r"\g<pre>***\g<at>", text)
    return _PARAM_PASSWORD.sub(r"\g<pre>***", text)


class RedactingFilter(logging.Filter):
    """A log filter that redacts passwords from the formatted message (and the traceback text)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def install_log_redaction() -> None:
    """Redact every handler of the root logger (call after logging is configured)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())


def check_identity_secret(settings: Settings) -> None:
    """Refuse the development identity secret outside the embedded default."""
    if settings.identity_secret == DEV_IDENTITY_SECRET and (settings.kafka_bootstrap or settings.clickhouse_url):
        raise ConfigError(
            "identity_secret is the development default, and LEADFLOW_KAFKA_BOOTSTRAP or LEADFLOW_CLICKHOUSE_URL "
            "is set: identity hashes made with a public secret can be reversed by anyone; set "
            "LEADFLOW_IDENTITY_SECRET to a long random value")


def fingerprint(secret: str) -> str:
    return hmac.new(secret.encode(), _FINGERPRINT_MESSAGE, hashlib.sha256).hexdigest()


def check_fingerprint(client: Client, secret: str) -> None:
    """Record the secret's fingerprint in an empty warehouse; raise SecretMismatch if it holds another."""
    mine = fingerprint(secret)
    rows = client.query("SELECT fingerprint FROM identity_secret_fingerprint FINAL WHERE id = 0").result_rows
    if not rows:
        client.insert("identity_secret_fingerprint", [(0, mine, datetime.now(timezone.utc))],
                      column_names=["id", "fingerprint", "recorded_at"])
        return
    if rows[0][0] != mine:
        raise SecretMismatch(
            f"refusing to write: this warehouse's identity hashes were made with another identity_secret "
            f"(its fingerprint {rows[0][0][:12]}..., this process {mine[:12]}...); the same person would get "
            f"two different hashes. Start with the secret the warehouse was built with (LEADFLOW_IDENTITY_SECRET)")
