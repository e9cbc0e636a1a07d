"""Operators' commands on the database named by DATABASE_URL (or --url).

    python -m storage upgrade     # migrate to the newest schema (processes also do it on start)
    python -m storage current     # the schema revision the database is at, and the newest known
    python -m storage reencrypt   # after prepending a new DATABASE_SECRETS_KEY: re-encrypt secrets
    python -m storage revision -m "add x"   # developers: a new, empty migration file to fill in

The newest schema is what storage/schema.py says; tests/test_storage.py fails while a migration
for a change there is missing.

Exit status: 0 done, 1 the database is unreachable (retry), 2 configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from storage import migrate
from storage.db import StorageUnavailable, safe_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m storage", description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["upgrade", "current", "reencrypt", "revision"])
    parser.add_argument("--url", help="database URL (default: DATABASE_URL)")
    parser.add_argument("-m", "--message", help="revision: what the migration does")
    args = parser.parse_args(argv)
    if args.command == "revision":
        return _revision(args.message)
    url = args.url or os.environ.get("DATABASE_URL", "").strip()
    if not url:
        print("configuration error: set DATABASE_URL (postgresql://user:password@host:5432/db or "
              "sqlite:///path/to/file.db) or pass --url", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args.command, url))
    except StorageUnavailable as error:
        print(f"{error} (database {safe_url(url)}); try again", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"configuration error: {error}", file=sys.stderr)
        return 2


def _revision(message: str | None) -> int:
    """A new migration file after the head, numbered like the others (0002, 0003, ...)."""
    from alembic import command

    if not message:
        print("configuration error: revision needs -m \"what the migration does\"", file=sys.stderr)
        return 2
    head = migrate.head()
    script = command.revision(migrate.alembic_config(), message=message,
                              rev_id=f"{int(head) + 1:04d}" if head.isdigit() else None)
    print(f"new migration: {script.path}")  # type: ignore[union-attr]
    return 0


async def _run(command: str, url: str) -> int:
    if command == "upgrade":
        print(f"{safe_url(url)}: at schema revision {await migrate.upgrade(url)} (newest: {migrate.head()})")
    elif command == "current":
        print(f"{safe_url(url)}: at schema revision {await migrate.current(url) or '(none)'} "
              f"(newest: {migrate.head()})")
    else:
        from storage.store import Store

        key = os.environ.get("DATABASE_SECRETS_KEY", "")
        if not key.strip():
            raise ValueError("DATABASE_SECRETS_KEY is not set (newest key first, comma separated)")
        store = await Store.open(url, key)
        try:
            print(f"re-encrypted the secrets of {await store.reencrypt_secrets()} portal(s) "
                  "with the newest key")
        finally:
            await store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
