"""Index versions on disk: plain files in one folder per version, written beside the live one.

A version folder is built under a temporary name and renamed into place only when complete, so a folder named
`v<N>` is always whole. Which version is live is decided by the catalogue (one committed row), never by the
file system, so a job killed at any point leaves the previous version in force.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from penny import IndexUnavailable, Settings
from retrieval.bm25 import Bm25Index, build_bm25, load_bm25, save_bm25
from retrieval.build import build_settings, check_build
from retrieval.dense import build_dense, load_dense, save_dense

FORMAT_VERSION = 1


@dataclass(frozen=True)
class DocumentMeta:
    """What filters need to know of a document, copied into the version so search never waits on SQL."""

    id: int
    path: str
    source: str
    doc_type: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class IndexRows:
    """Everything a version holds, row-aligned: row i is chunk `chunk_ids[i]`."""

    chunk_ids: np.ndarray  # int64
    document_ids: np.ndarray  # int64
    text_keys: np.ndarray  # int64 prefix of each chunk text's sha256, to fold duplicate passages
    vectors: np.ndarray  # float32, unit length
    texts: list[str]
    documents: list[DocumentMeta]


class Snapshot:
    """One loaded, read-only index version."""

    def __init__(self, folder: Path, settings: Settings) -> None:
        manifest_path = folder / "manifest.json"
        if not manifest_path.exists():
            raise IndexUnavailable(f"index version folder {folder} has no manifest; rebuild with `penny ingest`")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT_VERSION:
            raise IndexUnavailable(
                f"index in {folder} has format {self.manifest.get('format')}, this Penny reads {FORMAT_VERSION}: "
                "re-run `penny ingest` to rebuild it"
            )
        check_build(self.manifest, settings, str(folder))
        self.folder = folder
        self.version: int = self.manifest["version"]
        try:
            self.chunk_ids = np.load(folder / "chunk_ids.npy")
            self.document_ids = np.load(folder / "document_ids.npy")
            self.text_keys = np.load(folder / "text_keys.npy")
            self.vectors = np.load(folder / "vectors.npy", mmap_mode="r")
            self.dense = load_dense(folder / "dense.faiss", settings)
            self.bm25: Bm25Index | None = load_bm25(folder / "bm25") if len(self.chunk_ids) else None
            documents = json.loads((folder / "documents.json").read_text())
        except (OSError, ValueError, RuntimeError) as exc:
            raise IndexUnavailable(
                f"index version {self.version} in {folder} is damaged ({exc}); re-run `penny ingest` to rebuild it"
            ) from exc
        self.documents = {doc["id"]: DocumentMeta(**{**doc, "groups": tuple(doc["groups"])}) for doc in documents}
        self.row_of_chunk = {int(chunk_id): row for row, chunk_id in enumerate(self.chunk_ids)}

    def __len__(self) -> int:
        return len(self.chunk_ids)


def version_folder(settings: Settings, version: int) -> Path:
    return settings.index_dir / f"v{version}"


def write_version(settings: Settings, version: int, rows: IndexRows, build: dict | None = None) -> Path:
    """Write version `version` completely under a temporary name, then rename it into place. `build` is what the
    manifest records of the settings that shaped it (retrieval/build.py), by default today's settings."""
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    final = version_folder(settings, version)
    if final.exists():  # left by a job that died after writing but before its catalogue commit
        shutil.rmtree(final)
    staging = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=settings.index_dir))
    try:
        np.save(staging / "chunk_ids.npy", rows.chunk_ids.astype(np.int64))
        np.save(staging / "document_ids.npy", rows.document_ids.astype(np.int64))
        np.save(staging / "text_keys.npy", rows.text_keys.astype(np.int64))
        np.save(staging / "vectors.npy", rows.vectors.astype(np.float32))
        save_dense(build_dense(rows.vectors, rows.chunk_ids, settings), staging / "dense.faiss")
        if rows.texts:
            save_bm25(build_bm25(rows.texts, settings.bm25_backend), staging / "bm25")
        documents = [{**doc.__dict__, "groups": list(doc.groups)} for doc in rows.documents]
        (staging / "documents.json").write_text(json.dumps(documents))
        manifest = {
            "format": FORMAT_VERSION,
            "version": version,
            "chunks": len(rows.chunk_ids),
            "dimension": int(rows.vectors.shape[1]),
            "embedding_model": settings.embedding_model,
            "bm25_backend": settings.bm25_backend,
            "approximate": len(rows.chunk_ids) >= settings.ann_min_chunks,
            "build": build or build_settings(settings, len(rows.chunk_ids)),
        }
        # the manifest is written last: its presence marks a complete folder
        _write_durably(staging / "manifest.json", json.dumps(manifest, indent=2))
        os.rename(staging, final)
        _fsync_dir(settings.index_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final


def read_manifest(settings: Settings, version: int) -> dict | None:
    """The manifest of version `version`, or None when its folder is gone or incomplete."""
    try:
        return json.loads((version_folder(settings, version) / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def remove_unused_versions(settings: Settings, keep: set[int]) -> None:
    """Delete version folders (and staging left by killed jobs) other than `keep`."""
    if not settings.index_dir.exists():
        return
    for entry in settings.index_dir.iterdir():
        if entry.name.startswith(".v") or (entry.name.startswith("v") and entry.name[1:].isdigit()):
            if entry.name.startswith("v") and int(entry.name[1:]) in keep:
                continue
            shutil.rmtree(entry, ignore_errors=True)


def _write_durably(path: Path, text: str) -> None:
    with open(path, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
