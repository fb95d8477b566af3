"""Token authentication (contract §2): ``Authorization: Token <key>``, keys stored hashed."""

from __future__ import annotations

from rest_framework import authentication, exceptions

from ulak.models import ApiToken


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
        token = (
            ApiToken.objects.select_related("user")
            .filter(key_hash=ApiToken.hash_key(key), revoked=False)
            .first()
        )
        if token is None or not token.user.is_active:
            raise exceptions.AuthenticationFailed("Invalid token.")
        return token.user, token

    def authenticate_header(self, request) -> str:
        # Its presence makes DRF answer 401 rather than 403 to unauthenticated requests.
        return self.keyword
