"""Example databases shared between machines and processes (docs/FUZZING.md).

With VITSPEC_SHARED_DB set, the nightly profile saves every failing example both in its local directory
(VITSPEC_HYPOTHESIS_DB) and in the shared database, and replays what either holds first:
- a directory on shared storage: VITSPEC_SHARED_DB=/mnt/shared/vitspec-db
- a Redis server, through Hypothesis's own RedisExampleDatabase: VITSPEC_SHARED_DB=redis://fuzz-db:6379/0

Entries are kept apart per configuration (target, device, dtype), because Hypothesis deletes a saved example
that no longer fails: a configuration that passes must not erase what another one found.
"""

from __future__ import annotations

import os
import re

from hypothesis.database import DirectoryBasedExampleDatabase, ExampleDatabase

REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


def configuration_name(target: str, device: str | None, dtype: str | None) -> str:
    """A file- and key-safe name of one configuration, e.g. impl-TARGET.cpu.default."""
    raw = f"{target}.{device or 'cpu'}.{dtype or 'default'}"
    return re.sub(r"[^A-Za-z0-9_.-]", "-", raw)


def shared_database(location: str, configuration: str) -> ExampleDatabase:
    """The shared example database at location (a directory, or a redis:// URL) for one configuration."""
    if not isinstance(location, str) or not location.strip():
        raise ValueError(f"VITSPEC_SHARED_DB must be a directory or a redis:// URL, got {location!r}")
    if location.startswith(REDIS_SCHEMES):
        try:
            from hypothesis.extra.redis import RedisExampleDatabase
            from redis import Redis
        except ImportError as e:
            raise ValueError(f"VITSPEC_SHARED_DB={location!r} needs the redis package (pip install redis): {e}") from e
        return RedisExampleDatabase(Redis.from_url(location), key_prefix=f"vitspec:{configuration}:".encode())
    if "://" in location:
        raise ValueError(
            f"VITSPEC_SHARED_DB must be a directory or a URL starting with one of {list(REDIS_SCHEMES)}, "
            f"got {location!r}"
        )
    return DirectoryBasedExampleDatabase(os.path.join(location, configuration))
