"""GitLab OAuth tokens sealed at rest: encrypted with a key derived from SECRET_KEY.

social-auth keeps a login's token pair in `UserSocialAuth.extra_data`; a copy of the database
(a dump, a backup, a read replica) must yield no usable GitLab token. The tokens are sealed
(Fernet: AES-128-CBC with an HMAC-SHA256) just before a row is saved and opened when it is
loaded, so social-auth's pipeline and projects/oauth.py read and write plain values as before.

Key rotation: set a new SECRET_KEY and put the old one first in SECRET_KEY_FALLBACKS. Tokens
sealed with a fallback key still open, and are sealed again with the new key at their next
save (the next refresh, within two hours). A token no key opens reads as empty: that login
expires and the user logs in again, nothing worse.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.utils.crypto import salted_hmac

# The extra_data keys that are secrets; the rest (expiry, token type, GitLab's user id) is not.
SECRET_FIELDS = ("access_token", "refresh_token", "id_token")
PREFIX = "sealed:"
_SALT = "projects.sealing"


def _fernet(secret: str) -> Fernet:
    digest = salted_hmac(_SALT, "oauth-tokens", secret=secret, algorithm="sha256").digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet(secret) for secret in secrets])


def seal(value: str) -> str:
    """`value` encrypted with the current key (already sealed values are left as they are)."""
    if not value or value.startswith(PREFIX):
        return value
    return PREFIX + _keys().encrypt(value.encode()).decode()


def unseal(value: str) -> str:
    """The plain value; a value stored before sealing existed is returned as it is, and one no
    key opens (SECRET_KEY changed without a fallback) as empty."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return value
    try:
        return _keys().decrypt(value.removeprefix(PREFIX).encode()).decode()
    except InvalidToken:
        return ""


def _apply(extra_data: object, change, fields: Iterable[str] = SECRET_FIELDS) -> None:
    if isinstance(extra_data, dict):
        for field in fields:
            if isinstance(extra_data.get(field), str):
                extra_data[field] = change(extra_data[field])


def seal_before_save(sender, instance, **kwargs) -> None:
    _apply(instance.extra_data, seal)


def open_after_load(sender, instance, **kwargs) -> None:
    _apply(instance.__dict__.get("extra_data"), unseal)


def seal_rows(rows: Iterable) -> int:
    """Seal the tokens of `rows` stored in clear (the data migration); how many changed."""
    changed = 0
    for row in rows:
        before = dict(row.extra_data) if isinstance(row.extra_data, dict) else row.extra_data
        _apply(row.extra_data, seal)
        if row.extra_data != before:
            row.save(update_fields=["extra_data"])
            changed += 1
    return changed
