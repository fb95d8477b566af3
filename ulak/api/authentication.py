"""Token authentication (contract §2): ``Authorization: Token <key>``, keys stored hashed."""

from __future__ import annotations

import functools

from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework import authentication, exceptions

from ulak import statements
from ulak.models import ApiToken

# Every request runs this, so it is one indexed join in plain SQL: building the token and
# user through the ORM cost about half of a small publish request's CPU. The user's other
# fields stay deferred (loaded on first access).
_USER_FIELDS = {"id", "password", "last_login", "is_superuser", "username", "is_active", "is_staff"}


@functools.cache
def _user_fields() -> list:
    """The user model's fields we load, in the model's order (``from_db`` expects it)."""
    user_model = get_user_model()
    return [
        field
        for field in user_model._meta.concrete_fields
        if field.name in _USER_FIELDS or field.primary_key
    ]


@functools.cache
def _lookup_sql(vendor: str) -> str:
    """The lookup's SQL, built once per database vendor (quoting differs)."""
    user_model = get_user_model()
    quote = connection.ops.quote_name
    columns = ", ".join(f"u.{quote(field.column)}" for field in _user_fields())
    return (
        f"SELECT t.id, {columns} FROM {ApiToken._meta.db_table} t "
        f"JOIN {quote(user_model._meta.db_table)} u ON u.{quote(user_model._meta.pk.column)} = t.user_id "
        "WHERE t.key_hash = %s AND NOT t.revoked"
    )


@functools.cache
def _user_attnames() -> list[str]:
    return [field.attname for field in _user_fields()]


class TokenAuthentication(authentication.BaseAuthentication):
    """Looks the key's SHA-256 up; a missing or bad token answers 401 with WWW-Authenticate."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Invalid token header.")
        try:
            key = header[1].decode("ascii")
        except UnicodeDecodeError:
            raise exceptions.AuthenticationFailed("Invalid token header.") from None
        user_model = get_user_model()
        rows = statements.fetch_all(
            connection, _lookup_sql(connection.vendor), [ApiToken.hash_key(key)]
        )
        row = rows[0] if rows else None
        if row is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        names = _user_attnames()
        # from_db marks the instance as loaded from the database (saves update, not insert).
        user = user_model.from_db(connection.alias, names, row[1:])
        if not user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        token = ApiToken.from_db(connection.alias, ["id", "user_id"], (row[0], user.pk))
        return user, token

    def authenticate_header(self, request) -> str:
        # Its presence makes DRF answer 401 rather than 403 to unauthenticated requests.
        return self.keyword
