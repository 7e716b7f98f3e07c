"""Documents uploaded over the API: kept under DATA_DIR/uploads by their file name, so that uploading a file again
replaces it (and re-ingesting it updates the document), and written whole before they are visible there."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from penny import BadInput, Settings

UPLOADS = "uploads"
_STAGING = ".incoming"


def uploads_dir(settings: Settings) -> Path:
    return settings.data_dir / UPLOADS


def upload_name(filename: str | None) -> str:
    """The name an upload is stored under: its base name, which must be an ordinary file name."""
    name = Path((filename or "").replace("\\", "/")).name
    if not name or name.startswith(".") or "\x00" in name:
        raise BadInput(f"an uploaded file needs an ordinary file name, not {filename!r}")
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
    staging.mkdir(parents=True, exist_ok=True)
    stored = []
    for name, (_, content) in zip(names, files, strict=True):
        partial = staging / f"{uuid.uuid4().hex}-{name}"
        try:
            with open(partial, "wb") as handle:
                shutil.copyfileobj(content, handle)
            os.replace(partial, folder / name)
        finally:
            partial.unlink(missing_ok=True)
        stored.append(folder / name)
    return stored
