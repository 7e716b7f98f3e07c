"""Finding the files a job covers and what each one is to the catalogue: one `FileChange` per file.

Change is detected by size and mtime first, then by content hash: a file whose mtime moved may hold the same bytes,
and hashing it is far cheaper than parsing it again.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from ingest.files import is_under, read_bounded, regular_stat, resolve_within, too_large
from ingest.parse import PARSER_VERSION, ParseFailure, doc_type_of
from penny import Settings
from retrieval.build import chunking_key
from retrieval.catalogue import Document

ChangeKind = Literal["new", "changed", "unchanged", "touched", "relabelled", "refused", "failed", "removed"]
TO_PARSE: tuple[ChangeKind, ...] = ("new", "changed")


@dataclass(frozen=True)
class FileChange:
    """What one file (or record) is to the catalogue, and so what the job does with it, by `kind`:

    - new: no document has this path; parse it.
    - changed: its document must be read again: the bytes differ, its last attempt failed, or an older parser read
      it or other chunking settings cut it. Parse it.
    - unchanged: same size and mtime as its document; nothing to do.
    - touched: a new mtime over the same bytes; only the mtime is recorded.
    - relabelled: the same bytes, asked for with other groups or another source; relabelled without a parse.
    - refused: examining refused it (unsupported type, unreadable, too large, not a regular file, a link out of its
      folder). It is never parsed, and a file new to the catalogue gets no document row for it.
    - failed: parsing refused it. A file new to the catalogue gets a failed document row that says why.
    - removed: its document lies under a folder being pruned, and no file answers to it any more.
    """

    path: str
    kind: ChangeKind
    size: int = 0
    mtime: float = 0.0
    sha256: str = ""  # the content's hash once read; "" until then (parsing hashes the bytes it reads)
    failure_kind: str = ""  # for refused and failed: a ParseFailure's kind and reason
    failure_reason: str = ""


def refusal(path: str, failure: ParseFailure) -> FileChange:
    return FileChange(path, "refused", failure_kind=failure.kind, failure_reason=failure.reason)


def known_documents(sessions: sessionmaker[Session]) -> dict[str, Document]:
    """The catalogue's documents by path, detached: the job compares against them after their session closes."""
    with sessions() as session:
        known = {doc.path: doc for doc in session.scalars(select(Document))}
        session.expunge_all()
    return known


def outside_roots(paths: list[Path], roots: list[Path]) -> list[str]:
    """The paths that do not really lie (links resolved) in any of `roots`."""
    return [str(p) for p in paths if _root_of(os.path.realpath(p), roots) is None]


def files_to_examine(paths: list[Path], roots: list[Path] | None) -> dict[str, str | None]:
    """Every file under `paths`, sorted, with the real folder it must resolve into: the folder it was found in, or
    for a file named itself, the ingestion root it lies in (`roots` None: an operator's command, it may lead
    anywhere)."""
    files: dict[str, str | None] = {}
    for root in paths:
        if root.is_dir():
            within = os.path.realpath(root)
        elif roots is not None:
            within = _root_of(os.path.realpath(root), roots) or os.path.realpath(root)
        else:
            within = None
        for path in _walk(root):  # folder links are not walked; file links are checked against `within`
            files.setdefault(os.path.abspath(path), within)
    return dict(sorted(files.items()))


def examine(
    path: Path, within: str | None, known: Document | None, settings: Settings, groups: list[str], source: str
) -> FileChange:
    """What the file at `path` is to `known`, its document in the catalogue (None: there is none), when asked for
    with `groups` and `source`. Only an indexed file whose size or mtime moved is read (to hash it)."""
    try:
        return _compare(path, within, known, settings, groups, source)
    except ParseFailure as failure:
        return refusal(str(path), failure)
    except OSError as exc:
        return refusal(str(path), ParseFailure("unreadable", f"cannot read the file: {exc.strerror or exc}"))


def removed(known: Iterable[str], present: Collection[str], folders: list[Path]) -> list[FileChange]:
    """The catalogue's paths under `folders` that none of the files found now (`present`) answers to."""
    roots = [os.path.abspath(p) for p in folders]
    return [FileChange(p, "removed") for p in known if p not in present and any(is_under(p, r) for r in roots)]


def _compare(
    path: Path, within: str | None, known: Document | None, settings: Settings, groups: list[str], source: str
) -> FileChange:
    doc_type_of(path)  # an unsupported type is refused before the file is even looked at
    stat = regular_stat(resolve_within(str(path), within))
    if stat.st_size > settings.max_file_bytes:
        raise too_large(f"{stat.st_size:,} bytes", settings.max_file_bytes)

    def seen(kind: ChangeKind, sha256: str = "") -> FileChange:
        return FileChange(str(path), kind, stat.st_size, stat.st_mtime, sha256)

    if known is None:
        return seen("new")
    if known.status != "indexed" or _read_otherwise(known, settings):
        return seen("changed")
    same_labels = known.groups == groups and known.source == source
    if known.size == stat.st_size and known.mtime == stat.st_mtime:
        return seen("unchanged" if same_labels else "relabelled")
    digest = hashlib.sha256(read_bounded(str(path), within, settings.max_file_bytes)).hexdigest()
    if known.sha256 != digest:
        return seen("changed", digest)
    return seen("touched" if same_labels else "relabelled", digest)


def _read_otherwise(known: Document, settings: Settings) -> bool:
    """Read by an older parser, or cut with other chunking settings: what it holds would now come out otherwise."""
    return known.parser_version < PARSER_VERSION or known.chunking != chunking_key(settings)


def _root_of(real: str, roots: list[Path]) -> str | None:
    return next((r for r in map(os.path.realpath, roots) if is_under(real, r)), None)


def _walk(root: Path) -> Iterator[Path]:
    if not root.is_dir():  # a file named itself, whatever it is: examining it says why it is refused
        yield root
        return
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(folder) / name
