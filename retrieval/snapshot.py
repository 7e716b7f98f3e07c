"""Index versions on disk: a version is an ordered list of immutable segments plus the chunks it deletes from them.

A segment (`segments/<name>/`) holds the rows one job added: chunk ids, vectors, a dense index and BM25 term
counts. A version folder (`v<N>/`) holds only its manifest (which segments, in order), the deleted chunk ids and
the documents' filter metadata; the segments it shares with the version before it are referenced, not copied.
Both are built under a temporary name and renamed into place only when complete, so a folder with a final name
is always whole. Which version is live is decided by the catalogue (one committed row), never by the file system,
so a job killed at any point leaves the previous version in force; folders nothing refers to are removed later
(`remove_unused`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path

import numpy as np

from penny import IndexUnavailable, Settings
from retrieval.bm25 import TermCounts, load_segment_bm25, save_segment_bm25, segmented_bm25
from retrieval.build import check_build
from retrieval.dense import build_dense, is_approximate, load_dense, save_dense

# 2: a version is segments plus deletions. 1: one folder held every row (a full rebuild per job).
FORMAT_VERSION = 2
SEGMENTS = "segments"


@dataclass(frozen=True)
class DocumentMeta:
    """What filters need to know of a document, copied into the version so search never waits on SQL."""

    id: int
    path: str
    source: str
    doc_type: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class SegmentRows:
    """Everything a segment holds, row-aligned: row i is chunk `chunk_ids[i]`."""

    chunk_ids: np.ndarray  # int64
    document_ids: np.ndarray  # int64
    text_keys: np.ndarray  # int64 prefix of each chunk text's sha256, to fold duplicate passages
    vectors: np.ndarray  # float32, unit length
    texts: list[str]


@dataclass(frozen=True)
class SegmentRef:
    """A segment as a version manifest names it. `uid` tells a segment from a folder that reused its name."""

    name: str
    uid: str
    rows: int
    approximate: bool

    def as_json(self) -> dict:
        return self.__dict__.copy()


class Segment:
    """One loaded, read-only segment. Immutable on disk, so a reader loads it once for every version using it."""

    def __init__(self, folder: Path, settings: Settings, uid: str) -> None:
        meta = json.loads((folder / "segment.json").read_text())
        if meta.get("format") != FORMAT_VERSION or meta.get("uid") != uid:
            raise ValueError(f"segment {folder.name} is not the one the version was built with")
        self.name: str = meta["name"]
        self.uid = uid
        self.chunk_ids = np.load(folder / "chunk_ids.npy")
        self.document_ids = np.load(folder / "document_ids.npy")
        self.text_keys = np.load(folder / "text_keys.npy")
        self.vectors = np.load(folder / "vectors.npy", mmap_mode="r")
        self.dense = load_dense(folder / "dense.faiss", settings)
        self.approximate = is_approximate(self.dense)
        self.bm25: TermCounts | list[list[str]] = load_segment_bm25(folder / "bm25")

    def __len__(self) -> int:
        return len(self.chunk_ids)


class RowVectors:
    """The vectors of a version's rows, numbered across its segments; each segment's file stays memory-mapped."""

    def __init__(self, parts: list[np.ndarray], offsets: np.ndarray, dimension: int) -> None:
        self._parts = parts
        self._offsets = offsets
        self.shape = (int(offsets[-1]), dimension)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        if len(self._parts) == 1:
            return np.asarray(self._parts[0][rows])
        which = np.searchsorted(self._offsets, rows, side="right") - 1
        gathered = np.empty((len(rows), self.shape[1]), dtype=np.float32)
        for part in np.unique(which):
            mine = which == part
            gathered[mine] = self._parts[part][rows[mine] - self._offsets[part]]
        return gathered

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        if not self._parts:
            return np.zeros(self.shape, dtype=dtype or np.float32)
        return np.concatenate([np.asarray(part) for part in self._parts]).astype(dtype or np.float32, copy=False)


class Snapshot:
    """One loaded, read-only index version: its segments' rows numbered in order, minus its deleted chunks.

    `previous` is the snapshot this one replaces: segments both use are taken from it, not read again."""

    def __init__(self, folder: Path, settings: Settings, previous: Snapshot | None = None) -> None:
        self.manifest = _manifest_or_refusal(folder)
        check_build(self.manifest, settings, str(folder))
        self.folder = folder
        self.version: int = self.manifest["version"]
        loaded = {(s.name, s.uid): s for s in previous.segments} if previous is not None else {}
        try:
            self.segments = [
                loaded.get((ref["name"], ref["uid"]))
                or Segment(segment_folder(settings, ref["name"]), settings, ref["uid"])
                for ref in self.manifest["segments"]
            ]
            deleted = np.load(folder / "deleted.npy")
            documents = json.loads((folder / "documents.json").read_text())
        except (OSError, ValueError, RuntimeError, KeyError) as exc:
            raise IndexUnavailable(
                f"index version {self.version} in {folder} is damaged ({exc}); run `penny index compact` to "
                "rebuild it from the catalogue"
            ) from exc
        self.offsets = np.cumsum([0] + [len(segment) for segment in self.segments]).astype(np.int64)
        self.chunk_ids = _joined([s.chunk_ids for s in self.segments])
        self.document_ids = _joined([s.document_ids for s in self.segments])
        self.text_keys = _joined([s.text_keys for s in self.segments])
        self.live = ~np.isin(self.chunk_ids, deleted)
        self.live_count = int(self.live.sum())
        self._deleted = [np.flatnonzero(~self.live[start:end]) for start, end in pairwise(self.offsets)]
        self.vectors = RowVectors([s.vectors for s in self.segments], self.offsets, self.manifest["dimension"])
        self.bm25 = segmented_bm25(self.manifest["bm25_backend"], [s.bm25 for s in self.segments], self.live)
        self.approximate = any(segment.approximate for segment in self.segments)
        self.documents = {doc["id"]: DocumentMeta(**{**doc, "groups": tuple(doc["groups"])}) for doc in documents}

    def __len__(self) -> int:
        """Live rows: what search can return."""
        return self.live_count

    def deleted_in(self, segment: int) -> np.ndarray:
        """Segment-local rows of segment `segment` that this version deleted."""
        return self._deleted[segment]

    def split_rows(self, rows: np.ndarray) -> list[np.ndarray]:
        """Sorted version rows as segment-local rows, one array per segment."""
        bounds = np.searchsorted(rows, self.offsets)
        return [rows[bounds[i] : bounds[i + 1]] - self.offsets[i] for i in range(len(self.segments))]


def _manifest_or_refusal(folder: Path) -> dict:
    manifest_path = folder / "manifest.json"
    if not manifest_path.exists():
        raise IndexUnavailable(f"index version folder {folder} has no manifest; rebuild with `penny index compact`")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != FORMAT_VERSION:
        raise IndexUnavailable(
            f"the index in {folder} has format {manifest.get('format')} and this Penny reads format {FORMAT_VERSION} "
            "(an index grown by segments): run `penny index compact` to rebuild it from the catalogue (nothing is "
            "parsed or embedded again); the next `penny ingest` rebuilds it too",
            code="index_format_outdated",
        )
    return manifest


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


# ---------------------------------------------------------------- writing


def version_folder(settings: Settings, version: int) -> Path:
    return settings.index_dir / f"v{version}"


def segment_folder(settings: Settings, name: str) -> Path:
    return settings.index_dir / SEGMENTS / name


def write_segment(settings: Settings, name: str, rows: SegmentRows) -> SegmentRef:
    """Write segment `name` completely under a temporary name, then rename it into place. Its dense index is
    exact or HNSW by its own size (PENNY_ANN_MIN_CHUNKS); FAISS ids are its rows."""
    parent = settings.index_dir / SEGMENTS
    parent.mkdir(parents=True, exist_ok=True)
    final = parent / name
    if final.exists():  # left by a job that died before its catalogue commit: no committed version refers to it
        shutil.rmtree(final)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=parent))
    try:
        np.save(staging / "chunk_ids.npy", rows.chunk_ids.astype(np.int64))
        np.save(staging / "document_ids.npy", rows.document_ids.astype(np.int64))
        np.save(staging / "text_keys.npy", rows.text_keys.astype(np.int64))
        np.save(staging / "vectors.npy", rows.vectors.astype(np.float32))
        dense = build_dense(rows.vectors, np.arange(len(rows.chunk_ids), dtype=np.int64), settings)
        save_dense(dense, staging / "dense.faiss")
        save_segment_bm25(rows.texts, settings.bm25_backend, staging / "bm25")
        ref = SegmentRef(name=name, uid=uuid.uuid4().hex, rows=len(rows.chunk_ids), approximate=is_approximate(dense))
        meta = {
            "format": FORMAT_VERSION,
            **ref.as_json(),
            "dimension": int(rows.vectors.shape[1]),
            "bm25_backend": settings.bm25_backend,
            "hnsw_m": settings.hnsw_m if ref.approximate else None,
        }
        _write_durably(staging / "segment.json", json.dumps(meta, indent=2))  # last: it marks a complete folder
        os.rename(staging, final)
        _fsync_dir(parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return ref


def write_version(
    settings: Settings,
    version: int,
    segments: list[SegmentRef],
    deleted: np.ndarray,
    documents: list[DocumentMeta],
    build: dict,
    dimension: int,
) -> Path:
    """Write version `version`'s folder: which segments in which order, the chunk ids it deletes from them, and
    the documents' metadata. `build` is what the manifest records of the settings that shaped it."""
    settings.index_dir.mkdir(parents=True, exist_ok=True)
    final = version_folder(settings, version)
    if final.exists():  # left by a job that died after writing but before its catalogue commit
        shutil.rmtree(final)
    staging = Path(tempfile.mkdtemp(prefix=f".v{version}-", dir=settings.index_dir))
    try:
        np.save(staging / "deleted.npy", np.sort(deleted.astype(np.int64)))
        rows = sum(segment.rows for segment in segments)
        (staging / "documents.json").write_text(
            json.dumps([{**doc.__dict__, "groups": list(doc.groups)} for doc in documents])
        )
        manifest = {
            "format": FORMAT_VERSION,
            "version": version,
            "chunks": rows - len(deleted),  # live rows: what search can return
            "rows": rows,
            "deleted": len(deleted),
            "segments": [segment.as_json() for segment in segments],
            "dimension": dimension,
            "embedding_model": settings.embedding_model,
            "bm25_backend": settings.bm25_backend,
            "approximate": any(segment.approximate for segment in segments),
            "build": build,
        }
        _write_durably(staging / "manifest.json", json.dumps(manifest, indent=2))  # last: it marks a complete folder
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


@dataclass(frozen=True)
class Layout:
    """Which chunks a version holds where, read without loading any index: what the next version builds on."""

    manifest: dict
    segments: list[SegmentRef]
    chunk_ids: list[np.ndarray]  # per segment, its rows' chunk ids
    deleted: np.ndarray  # sorted chunk ids


def read_layout(settings: Settings, version: int) -> Layout | None:
    """Version `version`'s segments and deletions, or None when it cannot be built on (gone, damaged, or of an
    older format): the next version is then built from scratch."""
    manifest = read_manifest(settings, version)
    if manifest is None or manifest.get("format") != FORMAT_VERSION:
        return None
    try:
        segments = [SegmentRef(**ref) for ref in manifest["segments"]]
        chunk_ids = [np.load(segment_folder(settings, s.name) / "chunk_ids.npy", mmap_mode="r") for s in segments]
        deleted = np.load(version_folder(settings, version) / "deleted.npy")
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return Layout(manifest, segments, chunk_ids, deleted)


def remove_unused(settings: Settings, keep: set[int]) -> None:
    """Delete version folders other than `keep`, segments none of them refers to, and staging of killed jobs."""
    if not settings.index_dir.exists():
        return
    for entry in settings.index_dir.iterdir():
        if entry.name.startswith(".v") or (entry.name.startswith("v") and entry.name[1:].isdigit()):
            if entry.name.startswith("v") and int(entry.name[1:]) in keep:
                continue
            shutil.rmtree(entry, ignore_errors=True)
    parent = settings.index_dir / SEGMENTS
    if not parent.exists():
        return
    manifests = [read_manifest(settings, version) or {} for version in keep]
    used = {ref["name"] for manifest in manifests for ref in manifest.get("segments", [])}  # format 1 has none
    for entry in parent.iterdir():
        if entry.name not in used:
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
