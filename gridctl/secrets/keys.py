"""Offline checks of API key pairs (no venue is asked)."""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Optional

import nacl.signing

BACKPACK_FORMAT = ("a Backpack API key is the base64 of an ED25519 public key (32 bytes), its secret the base64 "
                   "of the private seed (32 bytes) or of the seed and public key (64 bytes)")


def _decode(text: str) -> Optional[bytes]:
    try:
        return base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None


def backpack_pair_problem(api_key: str, secret: str) -> Optional[tuple[str, str]]:
    """(field, message) when the two cannot be one Backpack key pair, else None.

    Backpack signs every private request with ED25519: the API key is the public key of
    the secret. A pasted key from another account, or a key and a secret swapped, fail
    here instead of at the first order. The messages never contain either value.
    """
    public = _decode(api_key)
    if public is None or len(public) != 32:
        return "api_key", f"is not a Backpack API key ({BACKPACK_FORMAT}); its value is not shown"
    raw = _decode(secret)
    if raw is None or len(raw) not in (32, 64):
        return "secret", f"is not a Backpack API secret ({BACKPACK_FORMAT}); its value is not shown"
    derived = nacl.signing.SigningKey(raw[:32]).verify_key.encode()
    if len(raw) == 64 and not hmac.compare_digest(derived, raw[32:]):
        return "secret", ("is not a valid ED25519 key pair (its second half is not the public key of its first); "
                          "its value is not shown")
    if not hmac.compare_digest(derived, public):
        return "secret", ("does not match api_key: the secret's public key is not the API key (a key and a "
                          "secret from different Backpack keys?); neither is shown")
    return None
