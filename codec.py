"""Encryption of Temporal payloads: customer data (names, emails, org numbers, addresses, line
items) never sits in Temporal's database or UI in clear text.

AES-256-GCM per payload, with a key id so keys can be rotated: the newest key encrypts, every
configured key decrypts. Payloads without our encoding marker pass through unchanged, so runs
started before encryption was switched on still decode.

One exception, by design: a value wrapped in `PublicText` (ids only, e.g. a run's summary) is
converted to a payload carrying the `kleer-plaintext` marker, and the codec leaves marked payloads
unencrypted, so the Temporal UI's list stays readable without a codec. Plain `str` values
(workflow inputs, activity arguments and results, current details) carry no marker and are
encrypted like everything else.

The Temporal UI shows decoded payloads only when pointed at the codec endpoint that the API serves
(`/codec/decode`; codec_server.py, README "Encrypted histories").
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticJSONPlainPayloadConverter
from temporalio.converter import (
    CompositePayloadConverter,
    DefaultPayloadConverter,
    JSONPlainPayloadConverter,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
# Metadata key of payloads that stay readable (PublicText): no customer data, ids only.
PLAINTEXT_MARKER = "kleer-plaintext"


class PublicText(str):
    """Text that holds no customer data (ids only) and stays unencrypted in Temporal, e.g. the run
    summary shown in the UI's list. Only what is wrapped in it stays plain."""


class _MarkingJSONConverter(PydanticJSONPlainPayloadConverter):
    """The pydantic JSON converter, plus the plaintext marker on `PublicText` values."""

    def to_payload(self, value: Any) -> Payload | None:
        payload = super().to_payload(value)
        if payload is not None and isinstance(value, PublicText):
            payload.metadata[PLAINTEXT_MARKER] = b"true"
        return payload


class PayloadConverter(CompositePayloadConverter):
    """`pydantic_data_converter`'s converters (built as `PydanticPayloadConverter` builds them),
    with the JSON one marking `PublicText` values; the JSON itself is the same."""

    def __init__(self) -> None:
        super().__init__(*(_MarkingJSONConverter() if isinstance(c, JSONPlainPayloadConverter)
                           else c for c in DefaultPayloadConverter.default_encoding_payload_converters))


def is_public(payload: Payload) -> bool:
    return payload.metadata.get(PLAINTEXT_MARKER) == b"true"


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
        if is_public(payload):
            return payload
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


class RemoteDecodeCodec(PayloadCodec):
    """Decodes through a codec endpoint (codec_server.py) instead of holding the key, as the
    Temporal CLI does with `--codec-endpoint`: for tools (`kleer-hubspot send`) that read runs
    of a stack whose key they do not have. Encoding stays local and plain: such tools only read
    encrypted payloads (nothing they write carries customer data)."""

    def __init__(self, endpoint: str, token: str | None = None) -> None:
        self.endpoint = endpoint.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        if not any(p.metadata.get("encoding") == ENCODING for p in payloads):
            return list(payloads)
        import httpx  # only the tools need it here

        async with httpx.AsyncClient(timeout=30) as http:
            response = await http.post(f"{self.endpoint}/decode", headers=self.headers,
                                       json={"payloads": payloads_to_json(payloads)})
        if response.status_code != 200:
            raise ValueError(f"codec endpoint {self.endpoint} answered {response.status_code}: "
                             f"{response.text[:200]}")
        return payloads_from_json(response.json()["payloads"])
