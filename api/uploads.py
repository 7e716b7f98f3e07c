"""Documents uploaded over the API: kept under DATA_DIR/uploads by their file name, so that uploading a file again
replaces it (and re-ingesting it updates the document), and written whole before they are visible there."""

from __future__ import annotations

import os
import shutil
import unicodedata
import uuid
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import select

from ingest.parse import SUPPORTED
from penny import BadInput, Settings
from retrieval.catalogue import Document, open_catalogue

UPLOADS = "uploads"
_STAGING = ".incoming"
MAX_NAME_BYTES = 200  # under NAME_MAX (255) with room for the staging copy's prefix


def uploads_dir(settings: Settings) -> Path:
    return settings.data_dir / UPLOADS


def upload_name(filename: str | None) -> str:
    """The name an upload is stored under: its base name, which must be an ordinary file name: no control or
    format characters (a newline would forge lines in logs and listings), at most MAX_NAME_BYTES in UTF-8."""
    name = Path((filename or "").replace("\\", "/")).name
    if not name or name.startswith(".") or any(unicodedata.category(char) in ("Cc", "Cf", "Cs") for char in name):
        raise BadInput(f"an uploaded file needs an ordinary file name, not {filename!r}")
    if len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise BadInput(f"an uploaded file's name has at most {MAX_NAME_BYTES} bytes; {name[:40]!r}... is longer")
    if Path(name).suffix.lower() not in SUPPORTED:
        raise BadInput(f"{name!r} is not a type Penny reads; upload one of: {', '.join(sorted(SUPPORTED))}")
    return name


def store_uploads(settings: Settings, files: list[tuple[str | None, BinaryIO]]) -> list[Path]:
    """Write each (file name, content) under the uploads folder. All names are checked before anything is
    written; each file is copied to a staging name and renamed into place, so a failed upload never leaves a
    partial file where ingestion would read it."""
    names = [upload_name(filename) for filename, _ in files]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise BadInput(f"the upload names the same file more than once: {', '.join(repeated)}")
    folder = uploads_dir(settings)
    staging = folder / _STAGING
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # uploads are as private as the catalogue
    staging.mkdir(mode=0o700, exist_ok=True)
    stored = []
    for name, (_, content) in zip(names, files, strict=True):
        partial = staging / f"{uuid.uuid4().hex}-{name}"
        try:
            with open(os.open(partial, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600), "wb") as handle:
                shutil.copyfileobj(content, handle)
            os.replace(partial, folder / name)
        finally:
            partial.unlink(missing_ok=True)
        stored.append(folder / name)
    return stored


def discard_unindexed(settings: Settings, stored: list[Path]) -> list[Path]:
    """Remove the stored uploads that back no indexed document once their job is over (refused as corrupt, too
    large or empty, or never ingested because another job ran): nothing refused stays on the server's disk.
    A file whose document kept its last good content stays, as the source of that document."""
    with open_catalogue(settings)() as session:
        paths = [str(path.resolve()) for path in stored]
        query = select(Document.path).where(Document.path.in_(paths), Document.status == "indexed")
        indexed = set(session.scalars(query))
    removed = [path for path, resolved in zip(stored, paths, strict=True) if resolved not in indexed]
    for path in removed:
        path.unlink(missing_ok=True)
    return removed
