"""Reading a file for ingestion without being led anywhere else: links may not leave the folder being ingested,
only regular files are read (a FIFO would block for ever, a device never ends), and no read goes past the size
limit, whatever the file's size claims to be (/proc files say 0)."""

from __future__ import annotations

import os
import stat

from ingest.parse import ParseFailure

_KINDS = {
    stat.S_IFIFO: "a FIFO",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
    stat.S_IFDIR: "a folder",
}


def is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def resolve_within(path: str, within: str | None) -> str:
    """The real path `path` leads to; refused when a link takes it outside the real folder `within` (None: the
    path was named by an operator on this machine, and it may lead anywhere)."""
    real = os.path.realpath(path)
    if within is not None and not is_under(real, within):
        raise ParseFailure("outside_root", f"a link to {real}, outside {within}: links may not leave the folder")
    return real


def regular_stat(real: str) -> os.stat_result:
    """The file's status, refused unless it is a regular file; nothing is opened."""
    status = os.stat(real)
    _require_regular(status.st_mode)
    return status


def read_bounded(path: str, within: str | None, limit: int) -> bytes:
    """The bytes of `path`, read from the file it really is, at most `limit` of them (ParseFailure beyond)."""
    real = resolve_within(path, within)
    regular_stat(real)  # refuse a FIFO or a device before opening it: opening one can block or act
    # O_NONBLOCK: should the file become a FIFO after the check, opening it still returns at once
    descriptor = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as handle:
        _require_regular(os.fstat(descriptor).st_mode)
        content = handle.read(limit + 1)
    if len(content) > limit:
        raise too_large(f"it holds more than {limit:,} bytes", limit)
    return content


def too_large(what: str, limit: int) -> ParseFailure:
    return ParseFailure("too_large", f"{what}, over the limit of {limit:,} (PENNY_MAX_FILE_BYTES)")


def _require_regular(mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "not a regular file")
        raise ParseFailure("not_a_file", f"{kind}, not a regular file: only regular files are read")
