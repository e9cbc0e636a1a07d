"""Encryption of secrets at rest: OAuth tokens and Kleer API keys in the database are AES-256-GCM
ciphertext, so a database dump, a backup or a read-only SQL user reveals none of them.

Mirrors codec.py (payload encryption): keys are any strings (or raw 32-byte base64 keys), given
newest first and comma separated; the newest encrypts, every listed key decrypts, and each value
names the key that sealed it, so a key is rotated by prepending the new one, running
`python -m storage reencrypt`, then dropping the old one. Keys are derived with HKDF under a label
of their own, so reusing the payload key string here would still give a different key.

Each value is bound to where it lives (associated data "<column>:<portal id>"): a ciphertext
copied to another portal or column fails to decrypt instead of handing out the wrong secret.
Nothing here ever puts a plaintext or a key into an exception message.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

_VERSION = "v1"
_LABEL = b"kleer-hubspot storage secrets v1"


class SecretsKeyError(RuntimeError):
    """A stored secret cannot be decrypted with the configured keys (a key was dropped too early,
    or the data was altered). Not retryable: the configuration must change."""


def _derive(secret: str) -> bytes:
    try:
        raw = base64.b64decode(secret, validate=True)
        if len(raw) != 32:
            raw = secret.encode()
    except ValueError:
        raw = secret.encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_LABEL).derive(raw)


def parse_keys(setting: str) -> list[str]:
    """`DATABASE_SECRETS_KEY=newest,older,...` as a list, newest first."""
    return [k.strip() for k in setting.split(",") if k.strip()]


class SecretBox:
    """Seals and opens secret strings. Text in, text out: values fit a TEXT column on every
    database (`v1.<key id>.<base64url(nonce + ciphertext)>`)."""

    def __init__(self, keys: Sequence[str] | str) -> None:
        keys = parse_keys(keys) if isinstance(keys, str) else list(keys)
        if not keys:
            raise ValueError("no database secrets key: set DATABASE_SECRETS_KEY (any long random string)")
        derived = [_derive(k) for k in keys]
        self._keys = {self._key_id(d): AESGCM(d) for d in derived}
        self.current_key_id = self._key_id(derived[0])

    def __repr__(self) -> str:
        return f"SecretBox(current_key_id={self.current_key_id!r}, keys={len(self._keys)})"

    @staticmethod
    def _key_id(derived: bytes) -> str:
        return hashlib.sha256(derived).hexdigest()[:12]

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(12)
        sealed = self._keys[self.current_key_id].encrypt(nonce, plaintext.encode(), context.encode())
        return f"{_VERSION}.{self.current_key_id}.{base64.urlsafe_b64encode(nonce + sealed).decode()}"

    def open(self, value: str, context: str) -> str:
        version, key_id, data = (value.split(".", 2) + ["", ""])[:3]
        if version != _VERSION or not data:
            raise SecretsKeyError(f"a stored secret ({context}) is not in a format this version reads")
        aead = self._keys.get(key_id)
        if aead is None:
            raise SecretsKeyError(
                f"a stored secret ({context}) was encrypted with key id {key_id}, which "
                "DATABASE_SECRETS_KEY does not list: put the old key back after the new one "
                "(comma separated), run `python -m storage reencrypt`, then drop it")
        try:
            raw = base64.urlsafe_b64decode(data)
            return aead.decrypt(raw[:12], raw[12:], context.encode()).decode()
        except (InvalidTag, ValueError):
            raise SecretsKeyError(f"a stored secret ({context}) could not be decrypted: the data was "
                                  f"altered or moved, or key id {key_id} belongs to another key") from None

    def is_current(self, value: str) -> bool:
        """Sealed with the newest key (nothing to re-encrypt)."""
        return value.split(".", 2)[1:2] == [self.current_key_id]
