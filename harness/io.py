"""Atomic file writes, for every file another process may read while it is written (records,
references, cards, checkpoints, grid and projection summaries): a temporary file beside the
target, flushed to disk, then renamed over it, so a reader sees the old file or the new, never half.
Beside them, a file's sha256 and an installed package's version (a leaf: it imports no harness module)."""
from __future__ import annotations

import hashlib
import os
from importlib import metadata
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


class BadInputFile(ValueError):
    """An input file that exists but cannot be read as what it should be (a malformed record, law or
    grid summary): the CLI prints it as one line and exits 2, writing nothing."""


@contextmanager
def atomic_file(path: str | Path, binary: bool = False) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``,
    on an error it is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_atomic(path: str | Path, text: str) -> Path:
    with atomic_file(path) as f:
        f.write(text)
    return Path(path)


def sha256(path: str | Path) -> str:
    """The file's SHA-256, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def package_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None where it is not installed."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cache_dir(env: str, name: str) -> Path:
    """A folder meekbench builds once and reuses: $``env`` where it is set, else ``name`` under
    meekbench's folder of the user's cache ($XDG_CACHE_HOME, else ~/.cache)."""
    if os.environ.get(env):
        return Path(os.environ[env])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "meekbench" / name
