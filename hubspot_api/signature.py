"""HubSpot request signatures (v3 and v2), used to verify executions and, in the driver, to sign them.

v3: base64(HMAC-SHA256(secret, method + uri + body + timestamp)); v2: hex(SHA-256(secret + method +
uri + body)). HubSpot decodes a fixed set of percent-escapes in the URI before hashing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

MAX_AGE_MS = 5 * 60 * 1000

# HubSpot's "validating requests" guide: these escapes are decoded before the v3 hash is computed.
_V3_DECODE = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$", "%27": "'",
    "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}


def _decode_uri(uri: str) -> str:
    for escaped, char in _V3_DECODE.items():
        uri = uri.replace(escaped, char).replace(escaped.lower(), char)
    return uri


def sign_v3(secret: str, method: str, uri: str, body: bytes, timestamp_ms: int) -> str:
    message = method.upper().encode() + _decode_uri(uri).encode() + body + str(timestamp_ms).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def sign_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    message = secret.encode() + method.upper().encode() + uri.encode() + body
    return hashlib.sha256(message).hexdigest()


class SignatureError(Exception):
    """The request is not provably from HubSpot; answer 401 and start nothing."""


def verify(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    headers: dict[str, str],
    now_ms: int | None = None,
) -> str:
    """Verify a request's signature headers (lower-cased keys); returns the version used.

    A blank secret verifies nothing: anyone could compute a signature with it."""
    if not secret.strip():
        raise SignatureError("no client secret is configured, so no signature can be trusted")
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    v3 = headers.get("x-hubspot-signature-v3")
    if v3:
        raw_ts = headers.get("x-hubspot-request-timestamp", "")
        if not raw_ts.isdigit():
            raise SignatureError("missing or malformed X-HubSpot-Request-Timestamp")
        if abs(now_ms - int(raw_ts)) > MAX_AGE_MS:
            raise SignatureError("timestamp older than 5 minutes")
        expected = sign_v3(secret, method, uri, body, int(raw_ts))
        if not hmac.compare_digest(expected, v3):
            raise SignatureError("v3 signature mismatch")
        return "v3"
    v2 = headers.get("x-hubspot-signature")
    if v2 and headers.get("x-hubspot-signature-version", "v2").lower() in ("v2", ""):
        if not hmac.compare_digest(sign_v2(secret, method, uri, body), v2):
            raise SignatureError("v2 signature mismatch")
        return "v2"
    raise SignatureError("no HubSpot signature header")


def signed_headers(secret: str, method: str, uri: str, body: bytes, version: str = "v3",
                   timestamp_ms: int | None = None) -> dict[str, str]:
    """Headers HubSpot would send with this request (used by the driver and tests)."""
    if version == "v2":
        return {"X-HubSpot-Signature": sign_v2(secret, method, uri, body),
                "X-HubSpot-Signature-Version": "v2"}
    ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
    return {"X-HubSpot-Signature-v3": sign_v3(secret, method, uri, body, ts),
            "X-HubSpot-Request-Timestamp": str(ts)}
