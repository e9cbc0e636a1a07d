"""Pacing calls to HubSpot and Kleer under their rate limits, shared by every process.

`Limiter` is a GCRA rate limiter keyed by any string: the database's (storage.Store.acquire,
shared by the API and all workers) or, without a database, an in-process one. `Pacer` waits
until a call may go out and counts it: the limit counts HTTP calls, not activities.
"""

from pacing.limiter import Limiter, LocalLimiter, Pacer, RateLimit

__all__ = ["Limiter", "LocalLimiter", "Pacer", "RateLimit"]
