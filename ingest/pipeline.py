"""The ingestion job for files: walk, detect changes by content hash, parse, chunk, embed, and publish one new index
version. The steps live beside it: ingest/job.py (lock, job row, report), ingest/scan.py (what each file is to the
catalogue), ingest/parallel.py (parsing), ingest/store.py (writing the catalogue), ingest/publish.py (embedding and
publishing; restartable at any point, see there).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from ingest.job import JobReport, Progress, ingestion_job
from ingest.parallel import Parsed, parse_files
from ingest.publish import embed_and_publish, stale_build
from ingest.scan import TO_PARSE, FileChange, examine, files_to_examine, known_documents, outside_roots, removed
from ingest.store import Plan, Staged
from penny import BadInput, Settings
from retrieval.build import chunking_key
from retrieval.catalogue import Document
from retrieval.embedder import Embedder, get_embedder

NAME_MAX = 255  # the longest file or folder name in bytes (Linux): a longer one cannot exist, so it is not probed


class PathNotAllowed(BadInput):
    code = "path_not_allowed"


@dataclass
class IngestRequest:
    paths: list[Path]
    groups: list[str] = field(default_factory=lambda: ["everyone"])
    source: str = "default"
    prune: bool = False
    # folders the paths must really lie in (the API's ingestion roots); None: an operator's command, any path.
    # Either way, a link found inside a folder may not lead out of that folder.
    roots: list[Path] | None = None


ParseMany = Callable[[list[str], Settings, Mapping[str, str | None]], Iterable[Parsed]]


@dataclass(frozen=True)
class Workers:
    """Where a job parses and embeds: by default in this machine's processes. A cluster (ingest/cluster.py) hands
    in its own; everything else (examining, storing, publishing) runs in the job's process either way, so the
    catalogue and the index have one writer."""

    # parse the paths, yielding a Parsed per path in the order given; the mapping is each path's real folder
    parse: ParseMany = parse_files
    embedder: Callable[[Settings], Embedder] = get_embedder


def ingest(
    settings: Settings, request: IngestRequest, progress: Progress | None = None, workers: Workers | None = None
) -> JobReport:
    """Run one ingestion job to completion and return its report."""
    progress = progress or Progress()
    workers = workers or Workers()
    validate_request(request)
    with ingestion_job(settings, request.paths) as (sessions, report):
        progress.job_started(report.job_id)
        _run(settings, sessions, request, report, progress, workers)
    return report


def validate_request(request: IngestRequest) -> None:
    """Refuse a request that cannot start: no paths, names too long to exist, paths outside its roots or missing,
    empty group names."""
    if not request.paths:
        raise BadInput("give at least one file or folder to ingest")
    too_long = [str(p) for p in request.paths if any(len(os.fsencode(part)) > NAME_MAX for part in p.parts)]
    if too_long:
        raise BadInput(f"a file or folder name has at most {NAME_MAX} bytes: {', '.join(too_long)[:300]}")
    if request.roots is not None:  # checked before existence: what lies outside the roots is not even probed
        outside = outside_roots(request.paths, request.roots)
        if outside:
            allowed = ", ".join(str(r) for r in request.roots)
            raise PathNotAllowed(
                f"{', '.join(outside)}: not inside the ingestion roots ({allowed}); "
                "add the folder to PENNY_INGEST_ROOTS, or upload the files"
            )
    missing = [str(p) for p in request.paths if not p.exists()]
    if missing:
        raise BadInput(f"no such file or folder: {', '.join(missing)}")
    if not request.groups or any(not g.strip() for g in request.groups):
        raise BadInput("groups must be non-empty names")


def _run(
    settings: Settings,
    sessions: sessionmaker[Session],
    request: IngestRequest,
    report: JobReport,
    progress: Progress,
    workers: Workers,
) -> None:
    embedder = workers.embedder(settings)
    files = files_to_examine(request.paths, request.roots)
    progress.start(len(files))
    started = time.perf_counter()
    known = known_documents(sessions)
    plan = Plan(groups=sorted(set(request.groups)), source=request.source, chunking=chunking_key(settings))
    plan.stale = stale_build(settings, sessions)
    to_parse = _examine_all(files, known, settings, plan, report, progress)
    _parse_all(to_parse, files, settings, plan, progress, workers.parse)
    if request.prune:
        plan.gone = removed(known, files, request.paths)
    report.seconds["scan"] = round(time.perf_counter() - started, 3)
    embed_and_publish(settings, sessions, embedder, plan, known, report, progress)


def _examine_all(
    files: dict[str, str | None],
    known: dict[str, Document],
    settings: Settings,
    plan: Plan,
    report: JobReport,
    progress: Progress,
) -> list[FileChange]:
    """Enter into `plan` what each file is to the catalogue; returns the new and changed ones, to be parsed."""
    to_parse = []
    for path, within in files.items():
        report.files_seen += 1
        change = examine(Path(path), within, known.get(path), settings, plan.groups, plan.source)
        if change.kind in TO_PARSE:
            to_parse.append(change)
            continue  # counted as it is parsed
        match change.kind:
            case "unchanged":
                report.unchanged += 1
            case "touched":  # the same bytes under a new mtime: unchanged but for the mtime recorded
                report.unchanged += 1
                plan.touched.append(change)
            case "relabelled":
                plan.relabelled.append(change)
            case "refused":
                plan.failures.append(change)
        progress.advance(files=1)
    return to_parse


def _parse_all(
    changes: list[FileChange],
    within: dict[str, str | None],
    settings: Settings,
    plan: Plan,
    progress: Progress,
    parse: ParseMany,
) -> None:
    """Parse and chunk the new and changed files into `plan`: staged, or failed with parsing's reason."""
    by_path = {change.path: change for change in changes}
    for result in parse(list(by_path), settings, within):
        # the hash and size as parsed, should the file have changed since it was examined
        change = replace(by_path[result.path], sha256=result.sha256, size=result.size)
        if result.failure_kind:
            kind, reason = result.failure_kind, result.failure_reason
            plan.failures.append(replace(change, kind="failed", failure_kind=kind, failure_reason=reason))
        else:
            plan.staged.append(Staged(change, result.parsed, list(result.drafts)))
        progress.advance(files=1, chunks=len(result.drafts))
