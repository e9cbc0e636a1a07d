"""Temporal's codec-server protocol over HTTP, served by the API at `/codec/{encode,decode}`, so the
Temporal UI and CLI can show decrypted payloads to engineers allowed to see them (codec.py).

Who may call it (`CODEC_AUTH`, README "Encrypted histories"):
- `token` (default): `Authorization: Bearer <CODEC_AUTH_TOKEN>`, as the CLI sends it
  (`--codec-auth`) or the UI with "pass the user access token" and a token this endpoint knows;
  without a token configured the endpoint refuses everything (decrypting must be a choice);
- `none`: no token, but only clients on loopback (127.0.0.0/8, ::1) are answered: the local
  stack, whose UI (in the engineer's browser on the same machine) sends no Authorization header;
- `proxy`: no token here; an authenticating reverse proxy in front (e.g. oauth2-proxy) decides
  who gets through. Only for deployments that really have one.
Browsers call it cross-origin from the UI, so it answers CORS preflights for `CODEC_CORS_ORIGINS`.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from codec import EncryptionCodec, payloads_from_json, payloads_to_json
from settings import Settings

log = logging.getLogger("codec")


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def codec_endpoint(settings: Settings):
    """The endpoint for `Route("/codec/{op}", ..., methods=["POST", "OPTIONS"])`."""
    codec = EncryptionCodec.from_setting(settings.payload_key or "")

    def cors(request: Request) -> dict[str, str]:
        origin = request.headers.get("origin", "")
        if origin not in settings.codec_cors_origins:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Authorization, X-Namespace",
                "Vary": "Origin"}

    def allowed(request: Request) -> str | None:
        """None when the caller may use the codec, else why not."""
        if settings.codec_auth == "proxy":
            return None
        if settings.codec_auth == "none":
            return None if _loopback(request) else "CODEC_AUTH=none answers loopback clients only"
        supplied = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        token = settings.codec_auth_token
        if not token or not hmac.compare_digest(supplied.encode(), token.encode()):
            return "missing or wrong token"
        return None

    async def endpoint(request: Request) -> Response:
        headers = cors(request)
        if request.method == "OPTIONS":
            return Response(status_code=204, headers=headers)
        op = request.path_params["op"]
        if op not in ("encode", "decode"):
            return JSONResponse({"message": "use /codec/encode or /codec/decode"}, 404,
                                headers=headers)
        refused = allowed(request)
        if refused:
            log.warning("codec %s refused: %s", op, refused)
            return JSONResponse({"message": f"unauthorised: {refused}"}, status_code=401,
                                headers=headers)
        try:
            body = await request.json()
            # `{}` or `{"payloads": null}` is an empty list (what the CLI sends when it has none).
            items = (body or {}).get("payloads") or []
            payloads = payloads_from_json(items)
            done = await (codec.decode(payloads) if op == "decode" else codec.encode(payloads))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return JSONResponse({"message": f"bad payloads: {exc}"}, status_code=400, headers=headers)
        return JSONResponse({"payloads": payloads_to_json(done)}, headers=headers)

    return endpoint
