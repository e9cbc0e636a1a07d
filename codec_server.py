"""Temporal's codec-server protocol over HTTP, served by the API at `/codec/{encode,decode}`, so the
Temporal UI and CLI can show decrypted payloads to engineers allowed to see them (codec.py)."""

from __future__ import annotations

import hmac
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from codec import EncryptionCodec, payloads_from_json, payloads_to_json
from settings import Settings

log = logging.getLogger("codec")


def codec_endpoint(settings: Settings):
    """Temporal's codec-server protocol, so the Temporal UI / CLI can show decrypted payloads.

    Only callers with `Authorization: Bearer <CODEC_AUTH_TOKEN>` get plaintext; without a token
    configured the endpoint refuses everything (decrypting must be a deliberate choice).
    """
    codec = EncryptionCodec.from_setting(settings.payload_key or "")

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin", "")
        if origin not in settings.codec_cors_origins:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Authorization, X-Namespace"}

    async def endpoint(request: Request) -> Response:
        headers = cors(request)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=headers)
        op = request.path_params["op"]
        if op not in ("encode", "decode"):
            return JSONResponse({"message": "use /codec/encode or /codec/decode"}, 404)
        supplied = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        token = settings.codec_auth_token
        if not token or not hmac.compare_digest(supplied.encode(), token.encode()):
            log.warning("codec %s refused: missing or wrong token", op)
            return JSONResponse({"message": "unauthorised"}, status_code=401, headers=headers)
        try:
            payloads = payloads_from_json((await request.json())["payloads"])
            done = await (codec.decode(payloads) if op == "decode" else codec.encode(payloads))
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"message": f"bad payloads: {exc}"}, status_code=400, headers=headers)
        return JSONResponse({"payloads": payloads_to_json(done)}, headers=headers)

    return endpoint
