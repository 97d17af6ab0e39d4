"""Bearer JWTs, with PyJWT: a verified token gives the user id; ``mint_token`` makes one for
development (the ``token`` command, the demo).

Each way a token can be wrong has its own message, so a developer sees at once whether the
token expired, was signed with another secret, or lacks a claim. Nothing here knows Flask.
"""

from __future__ import annotations

import re
import time

import jwt
from jwt.exceptions import InvalidIssuedAtError

from checkout_sweeper.errors import AuthError, ConfigError, UserIdClaimInvalid
from checkout_sweeper.settings import JwtSettings
from checkout_sweeper.vocabulary import JsonObject

__all__ = ["AuthError", "bearer_token", "mint_token", "user_id_from", "verify"]

MAX_USER_ID = 2**31 - 1  # the users.id column is a 32-bit integer in PostgreSQL
MAX_ID_DIGITS = len(str(MAX_USER_ID))
CANONICAL_ID = re.compile(r"0|[1-9][0-9]*")  # [0-9], not \d: ASCII digits only


def bearer_token(header: str | None) -> str:
    if not header:
        raise AuthError("Missing Authorization header: send 'Authorization: Bearer <JWT>'.")
    scheme, _, token = header.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise AuthError("Malformed Authorization header: expected 'Bearer <JWT>'.")
    return token


_MESSAGES: list[tuple[type[Exception], str]] = [
    (jwt.ExpiredSignatureError, "Token has expired."),
    (jwt.ImmatureSignatureError, "Token is not valid yet (nbf or iat is in the future)."),
    (jwt.InvalidAudienceError, "Token audience (aud) is not accepted by this service."),
    (jwt.InvalidIssuerError, "Token issuer (iss) is not accepted by this service."),
    (jwt.InvalidAlgorithmError, "Token algorithm is not allowed."),
    (InvalidIssuedAtError, "Token issued-at (iat) is not a valid time."),
    (jwt.InvalidSignatureError, "Token signature is invalid."),
    (jwt.DecodeError, "Token is malformed."),
]


def verify(token: str, settings: JwtSettings) -> JsonObject:
    """Check signature, algorithm, ``exp`` (required), ``nbf``, ``aud`` and ``iss`` if set."""
    if settings.key is None:  # Settings.check_for_api refuses to serve without one
        raise AuthError("No key to verify tokens with is configured.")
    required = ["exp"]
    if settings.audience:
        required.append("aud")
    if settings.issuer:
        required.append("iss")
    try:
        claims = jwt.decode(
            token,
            settings.key,
            algorithms=list(settings.algorithms),
            audience=settings.audience,
            issuer=settings.issuer,
            leeway=settings.leeway_s,
            # The user id claim's type is checked by user_id_from, for whichever claim it is.
            options={
                "require": required,
                "verify_aud": bool(settings.audience),
                "verify_sub": False,
            },
        )
    except jwt.MissingRequiredClaimError as err:
        raise AuthError(f"Token is missing the required '{err.claim}' claim.") from None
    except jwt.InvalidTokenError as err:
        for kind, message in _MESSAGES:
            if isinstance(err, kind):
                raise AuthError(message) from None
        raise AuthError("Token is invalid.") from None
    _times_are_numbers(claims)
    return claims


def _times_are_numbers(claims: JsonObject) -> None:
    """RFC 7519 times are JSON numbers; PyJWT would also read ``"exp": "1999999999"``."""
    for name in ("exp", "nbf", "iat"):
        value = claims.get(name)
        if name in claims and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise AuthError(f"Token claim '{name}' must be a number (seconds since 1970).")


def user_id_from(claims: JsonObject, claim: str) -> int | None:
    """The row id the user id claim names, or None when no row can have it (a 404).

    Accepted: an integer, or a string of ASCII digits in canonical form (no sign, no leading
    zero, no space), within the id column's range. So ``"03"``, Arabic-Indic or fullwidth
    digits, or ``2**70`` name no user, and no other spelling of an id can reach another user's
    row or quota. A missing claim is the spec's missing field, and a claim of another type a
    malformed one (both 400).
    """
    value = claims.get(claim)
    if value is None or value == "":
        raise UserIdClaimInvalid(f"Token has no user id: the '{claim}' claim is required.")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise UserIdClaimInvalid(f"Token claim '{claim}' must be a string or an integer user id.")
    if isinstance(value, str):
        if len(value) > MAX_ID_DIGITS or not CANONICAL_ID.fullmatch(value):
            return None
        value = int(value)
    return value if 0 <= value <= MAX_USER_ID else None


def mint_token(
    settings: JwtSettings, user_id: str | int, *, ttl_s: int = 3600, private_key: str | None = None
) -> str:
    """A signed token for development (``checkout-sweeper token``): HS* with JWT_SECRET only,
    or with ``private_key`` for public-key algorithms."""
    now = int(time.time())
    claims: JsonObject = {settings.user_id_claim: user_id, "iat": now, "exp": now + ttl_s}
    if settings.audience:
        claims["aud"] = settings.audience
    if settings.issuer:
        claims["iss"] = settings.issuer
    key = private_key or settings.key
    if key is None:
        raise ConfigError("No signing key: set JWT_SECRET (or pass a private key).")
    return jwt.encode(claims, key, algorithm=settings.algorithms[0])
