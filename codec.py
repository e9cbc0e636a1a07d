"""Encryption of Temporal payloads: customer data (names, emails, org numbers, addresses, line
items) never sits in Temporal's database or UI in clear text.

AES-256-GCM per payload, with a key id so keys can be rotated: the newest key encrypts, every
configured key decrypts. Payloads without our encoding marker pass through unchanged, so runs
started before encryption was switched on still decode.

The Temporal UI shows decoded payloads only when pointed at the codec endpoint that the API serves
(`/codec/decode`), which requires `CODEC_AUTH_TOKEN` (README "Encrypted histories").
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

ENCODING = b"binary/encrypted"


def _derive(secret: str) -> bytes:
    """Keys may be given as any string; stretch to 32 bytes (a raw 32-byte base64 key also works)."""
    try:
        raw = base64.b64decode(secret, validate=True)
        if len(raw) == 32:
            return raw
    except ValueError:
        pass
    return hashlib.sha256(secret.encode()).digest()


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ValueError("at least one key")
        self._keys = {self.key_id(k): AESGCM(_derive(k)) for k in keys}
        self._current = self.key_id(keys[0])

    @staticmethod
    def key_id(secret: str) -> str:
        return hashlib.sha256(_derive(secret)).hexdigest()[:12]

    @classmethod
    def from_setting(cls, value: str) -> EncryptionCodec:
        """`PAYLOAD_ENCRYPTION_KEY=newest,older,...` (comma separated)."""
        return cls([k.strip() for k in value.split(",") if k.strip()])

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self._decrypt(p) for p in payloads]

    def _encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(12)
        sealed = self._keys[self._current].encrypt(nonce, payload.SerializeToString(), None)
        return Payload(metadata={"encoding": ENCODING, "encryption-key-id": self._current.encode()},
                       data=nonce + sealed)

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get("encryption-key-id", b"").decode()
        if key_id not in self._keys:
            raise ValueError(f"payload encrypted with unknown key {key_id}")
        plain = self._keys[key_id].decrypt(payload.data[:12], payload.data[12:], None)
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def payloads_from_json(items: Iterable[dict]) -> list[Payload]:
    """Temporal's codec-server JSON (`{"metadata": {k: b64}, "data": b64}`) to Payloads."""
    return [Payload(metadata={k: base64.b64decode(v) for k, v in (i.get("metadata") or {}).items()},
                    data=base64.b64decode(i.get("data") or "")) for i in items]


def payloads_to_json(payloads: Iterable[Payload]) -> list[dict]:
    return [{"metadata": {k: base64.b64encode(v).decode() for k, v in p.metadata.items()},
             "data": base64.b64encode(p.data).decode()} for p in payloads]
