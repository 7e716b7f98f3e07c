"""API keys: random tokens shown once, stored only as their sha256, each with a user, groups and an admin flag."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from api.tables import ApiKey
from penny import BadInput, Settings
from retrieval.catalogue import open_catalogue, utcnow

TOKEN_PREFIX = "penny_"
SHOWN_PREFIX_CHARS = 12  # enough of the token to tell keys apart in `penny keys list`, too little to use


@dataclass(frozen=True)
class Caller:
    """Who is asking: what every endpoint knows of the key that authenticated the request."""

    key_id: int
    user: str
    groups: tuple[str, ...]
    is_admin: bool


@dataclass(frozen=True)
class KeyInfo:
    id: int
    user: str
    prefix: str
    groups: list[str]
    is_admin: bool
    created_at: str
    revoked_at: str | None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(settings: Settings, user: str, groups: list[str], is_admin: bool = False) -> tuple[str, KeyInfo]:
    """A new key for `user`: returns the token (shown once, never stored) and its record."""
    user = user.strip()
    groups = sorted({group.strip() for group in groups})
    if not user:
        raise BadInput("give the key's user: --user NAME")
    if not groups or any(not group for group in groups):
        raise BadInput("give at least one non-empty group: --group NAME (repeatable)")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        user=user,
        prefix=token[:SHOWN_PREFIX_CHARS],
        key_hash=hash_token(token),
        groups=groups,
        is_admin=is_admin,
        created_at=utcnow(),
    )
    with open_catalogue(settings).begin() as session:
        session.add(row)
        session.flush()
        return token, _info(row)


def list_keys(settings: Settings, include_revoked: bool = True) -> list[KeyInfo]:
    with open_catalogue(settings)() as session:
        query = select(ApiKey).order_by(ApiKey.id)
        if not include_revoked:
            query = query.where(ApiKey.revoked_at.is_(None))
        return [_info(row) for row in session.scalars(query)]


def revoke_key(settings: Settings, key: str) -> KeyInfo:
    """Revoke by id, by the shown prefix, or by the whole token."""
    with open_catalogue(settings).begin() as session:
        if key.isdigit():
            rows = [row for row in [session.get(ApiKey, int(key))] if row]
        elif key.startswith(TOKEN_PREFIX) and len(key) > SHOWN_PREFIX_CHARS:
            rows = list(session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_token(key))))
        else:
            rows = list(session.scalars(select(ApiKey).where(ApiKey.prefix == key)))
        if not rows:
            raise BadInput(f"no key matches {key!r}; `penny keys list` shows ids and prefixes")
        if len(rows) > 1:
            raise BadInput(f"{len(rows)} keys share the prefix {key!r}; revoke by id instead")
        row = rows[0]
        if row.revoked_at is None:
            row.revoked_at = utcnow()
        return _info(row)


def authenticate(settings: Settings, token: str) -> Caller | None:
    """The caller a token belongs to, or None for an unknown or revoked token."""
    with open_catalogue(settings)() as session:
        row = session.scalars(select(ApiKey).where(ApiKey.key_hash == hash_token(token))).one_or_none()
        if row is None or row.revoked_at is not None:
            return None
        return Caller(key_id=row.id, user=row.user, groups=tuple(row.groups), is_admin=row.is_admin)


def _info(row: ApiKey) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        user=row.user,
        prefix=row.prefix,
        groups=row.groups,
        is_admin=row.is_admin,
        created_at=row.created_at.isoformat(timespec="seconds"),
        revoked_at=row.revoked_at.isoformat(timespec="seconds") if row.revoked_at else None,
    )
