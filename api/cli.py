"""The `penny` command: a thin shell that parses arguments, calls the library, and prints."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Bar
from rich.table import Table

from api.cli_ask import ask
from api.cli_eval import eval_command
from api.terminal import console, errors, fail, settings
from penny import PennyError

app = typer.Typer(
    help="Penny answers questions from your company's documents at the lowest cost per correct answer.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
documents_app = typer.Typer(help="List, inspect and delete ingested documents.", no_args_is_help=True)
app.add_typer(documents_app, name="documents")
app.command()(ask)
app.command("eval")(eval_command)
models_app = typer.Typer(help="Prepare the local models Penny runs.", no_args_is_help=True)
app.add_typer(models_app, name="models")
index_app = typer.Typer(help="Inspect and compact the search index's segments.", no_args_is_help=True)
app.add_typer(index_app, name="index")


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log debug detail to stderr.")] = False):
    from api.logs import configure_logging

    configure_logging(logging.DEBUG if verbose else logging.WARNING)  # one JSON object per line, as the server logs


# ---------------------------------------------------------------- ingestion


class _BarProgress:
    """Draws the job's progress on a terminal: files with files/s and chunks/s, then chunks embedded. It has
    ingest.job.Progress's methods without importing it: commands that never ingest never load the parsers."""

    def __init__(self, bar: Bar) -> None:
        self.bar = bar
        self.task = bar.add_task("parsing", total=None, rate="")
        self.chunks = 0

    def job_started(self, job_id: int) -> None: ...

    def start(self, files: int) -> None:
        self.bar.update(self.task, total=files)

    def advance(self, files: int = 0, chunks: int = 0, embedded: int = 0) -> None:
        self.chunks += chunks
        if embedded:
            self.bar.update(self.task, advance=embedded)
            return
        task = self.bar.tasks[self.task]
        elapsed = task.elapsed or 1e-9
        rate = f"{(task.completed + files) / elapsed:.1f} files/s, {self.chunks / elapsed:.1f} chunks/s"
        self.bar.update(self.task, advance=files, rate=rate)

    def stage(self, name: str, total: int | None = None) -> None:
        if total is None:
            self.bar.update(self.task, description=name)
            return
        self.bar.stop_task(self.task)
        self.task = self.bar.add_task(name, total=total, rate="chunks")


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files and folders to ingest (folders are walked).")],
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="Group allowed to read these documents (repeatable).")
    ] = None,
    source: Annotated[str, typer.Option(help="A name for where these documents come from.")] = "default",
    prune: Annotated[bool, typer.Option(help="Remove documents under PATHS whose files are gone.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the job report as JSON.")] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Parse and embed on a Ray cluster: 'local' (start one here), 'auto' (the one `ray start` runs on "
            "this machine) or the head's HOST:PORT. Needs the cluster extra; see docs/scaling.md."
        ),
    ] = None,
):
    """Parse, chunk and embed documents into the catalogue and the search indexes.

    Re-running is cheap: unchanged files are skipped by content hash. A killed job leaves the previous index live.
    """
    from ingest.pipeline import IngestRequest

    request = IngestRequest(paths=paths, groups=group or ["everyone"], source=source, prune=prune)
    try:
        if sys.stderr.isatty() and not as_json:
            columns = [
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
            ]
            with Bar(*columns, console=errors, transient=True) as bar:
                report, split = _run_job(request, cluster, _BarProgress(bar))
        else:
            report, split = _run_job(request, cluster, None)
    except PennyError as exc:
        fail(exc)
    if as_json:
        console.print_json(json.dumps(asdict(report) | ({"cluster": split} if cluster else {})))
        return
    _print_report(report)
    for what, by_node in split.items():
        for node, count in sorted(by_node.items()):
            console.print(f"  node {node}: {count} {what.replace('_', ' ')}")


def _run_job(request, cluster: str | None, progress) -> tuple:
    """The job's report, and on a cluster how its work split across nodes: {"files_parsed": {node: n}, ...}."""
    if cluster is None:
        from ingest.pipeline import ingest as run_ingest

        return run_ingest(settings(), request, progress), {}
    from ingest.cluster import cluster_ingest

    job = cluster_ingest(settings(), request, cluster, progress)
    return job.report, {"files_parsed": job.files_parsed, "texts_embedded": job.texts_embedded}


def _print_report(report) -> None:
    counts = report.counts()
    console.print(
        f"job {report.job_id} {report.status}: {counts['files_seen']} files, {counts['added']} added, "
        f"{counts['updated']} updated, {counts['unchanged']} unchanged, {counts['removed']} removed, "
        f"{counts['failed']} failed, {counts['skipped']} skipped; {counts['chunks_added']} chunks "
        f"({counts['chunks_embedded']} embedded); index version {report.index_version or 'unchanged'}"
    )
    if report.sentences_embedded:
        console.print(f"  then embedded {report.sentences_embedded} answer sentences (the version was already live)")
    for line in report.rebuilt:
        console.print(f"  settings changed: {line}")
    for error in report.errors:
        console.print(f"  {error['kind']:<12} {error['path']}: {error['reason']}")


@models_app.command("prepare")
def models_prepare(force: Annotated[bool, typer.Option(help="Export again even when a checked copy exists.")] = False):
    """Export the embedding model to int8 ONNX in the models directory (offline, from its package; ~20 s once)."""
    from retrieval.onnx_model import prepare_onnx_model

    try:
        model = prepare_onnx_model(settings(), force=force)
    except PennyError as exc:
        fail(exc)
    console.print(f"{model.model_file} (sha256 {model.sha256[:12]}, {model.dimension} dimensions)")


@app.command()
def jobs(
    limit: Annotated[int, typer.Option(help="How many recent jobs to show.")] = 20,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Show recent ingestion jobs with their counts and per-file errors."""
    from ingest.admin import list_jobs

    found = list_jobs(settings(), limit)
    if as_json:
        console.print_json(json.dumps(found, default=str))
        return
    table = Table("id", "status", "started", "finished", "counts", "version", "errors")
    for job in found:
        counts = ", ".join(f"{k}={v}" for k, v in job["counts"].items() if v)
        table.add_row(
            str(job["id"]),
            job["status"],
            str(job["started_at"])[:19],
            str(job["finished_at"] or "")[:19],
            counts,
            str(job["index_version"] or ""),
            str(len(job["errors"])),
        )
    console.print(table)


@documents_app.command("list")
def documents_list(
    status: Annotated[str | None, typer.Option(help="Only documents with this status (indexed, failed).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """List ingested documents."""
    from ingest.admin import list_documents

    found = list_documents(settings(), status=status)
    if as_json:
        console.print_json(json.dumps(found, default=str))
        return
    table = Table("id", "status", "type", "chunks", "groups", "title", "path")
    for doc in found:
        table.add_row(
            str(doc["id"]),
            doc["status"],
            doc["doc_type"],
            str(doc["chunk_count"]),
            ",".join(doc["groups"]),
            doc["title"][:40],
            doc["path"],
        )
    console.print(table)


@documents_app.command("show")
def documents_show(document_id: int, as_json: Annotated[bool, typer.Option("--json")] = False):
    """Show one document and its chunks."""
    from ingest.admin import show_document

    try:
        doc = show_document(settings(), document_id)
    except PennyError as exc:
        fail(exc)
    if as_json:
        console.print_json(json.dumps(doc, default=str))
        return
    for key in ("id", "path", "title", "doc_type", "status", "error", "groups", "source", "sha256", "size"):
        console.print(f"[bold]{key}[/bold]: {doc[key]}")
    for chunk in doc["chunks"]:
        where = f"p.{chunk['page']} " if chunk["page"] else ""
        console.print(f"\n[cyan]#{chunk['id']}[/cyan] {where}{chunk['section']} ({chunk['token_count']} tokens)")
        console.print(chunk["text"][:300])


@documents_app.command("delete")
def documents_delete(document_ids: list[int]):
    """Delete documents and publish an index version without them."""
    from ingest.remove import remove_documents

    try:
        report = remove_documents(settings(), document_ids)
    except PennyError as exc:
        fail(exc)
    console.print(f"deleted {report.removed} document(s); index version {report.index_version}")


# ---------------------------------------------------------------- retrieval


@app.command()
def search(
    query: str,
    k: Annotated[int, typer.Option("--k", "-k", help="How many passages.")] = 5,
    group: Annotated[
        list[str] | None, typer.Option("--group", "-g", help="Search as a member of these groups.")
    ] = None,
    source: Annotated[list[str] | None, typer.Option(help="Only documents from these sources.")] = None,
    path_prefix: Annotated[str, typer.Option(help="Only documents whose path starts with this.")] = "",
    doc_type: Annotated[list[str] | None, typer.Option("--type", help="Only these types (md, pdf, ...).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Search the documents and print ranked passages with title, section, path and scores."""
    from retrieval.search import SearchFilter, get_searcher

    search_filter = SearchFilter(
        groups=tuple(group) if group else None,
        sources=tuple(source or ()),
        path_prefix=path_prefix,
        doc_types=tuple(doc_type or ()),
    )
    try:
        result = get_searcher(settings()).search(query, k=k, search_filter=search_filter)
    except PennyError as exc:
        fail(exc)
    if as_json:
        console.print_json(json.dumps(asdict(replace(result, query_vector=None))))
        return
    console.print(f"confidence {result.confidence:.2f} (index version {result.index_version})")
    for passage in result.passages:
        chunk = passage.chunk
        page = f", page {chunk.page}" if chunk.page else ""
        console.print(
            f"\n[bold]{passage.rank}. {chunk.title}[/bold] — {chunk.section or '(top)'}{page}\n"
            f"   [dim]{chunk.source_path}  score {passage.score:.3f}  dense {passage.dense_score:.3f}  "
            f"bm25 {passage.bm25_score:.2f}[/dim]"
        )
        console.print("   " + chunk.text[:400].replace("\n", "\n   "))


@index_app.command("status")
def index_status(as_json: Annotated[bool, typer.Option("--json")] = False):
    """Show the live index version's segments: rows, deleted rows and dense index type of each."""
    from retrieval.indexer import index_status as status_of

    try:
        status = status_of(settings())
    except PennyError as exc:
        fail(exc)
    if as_json:
        console.print_json(json.dumps(asdict(status)))
        return
    console.print(
        f"index version {status.version} (format {status.format}): {status.chunks} chunks searchable, "
        f"{status.rows} rows in {len(status.segments)} segment(s), {status.deleted} deleted"
    )
    table = Table("segment", "rows", "deleted", "dense")
    for segment in status.segments:
        table.add_row(segment.name, str(segment.rows), str(segment.deleted), segment.dense)
    console.print(table)


@index_app.command("compact")
def index_compact():
    """Merge every segment into one without the deleted rows, as a new live version (no file is read again)."""
    from retrieval.indexer import compact

    try:
        version = compact(settings())
    except PennyError as exc:
        fail(exc)
    console.print(f"compacted into index version {version}")


# ---------------------------------------------------------------- service

keys_app = typer.Typer(help="Create, list and revoke API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    replicas: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Run N replicas as a Ray Serve deployment instead of one uvicorn process (the cluster extra; "
            "docs/scaling.md).",
        ),
    ] = None,
    cluster: Annotated[
        str, typer.Option(help="With --replicas: the Ray cluster, 'local' (start one here), 'auto' or HOST:PORT.")
    ] = "local",
):
    """Run the HTTP API and the web chat page (http://HOST:PORT/)."""
    from api.logs import configure_logging

    configure_logging()
    if replicas is not None:
        from api.serve import serve_replicas

        try:
            serve_replicas(settings(), replicas, host, port, cluster)
        except PennyError as exc:
            fail(exc)
        return
    import uvicorn

    from api.app import create_app

    uvicorn.run(create_app(settings()), host=host, port=port, log_config=None, access_log=False)


@keys_app.command("create")
def keys_create(
    user: Annotated[str, typer.Option(help="Who the key is for.")],
    group: Annotated[list[str] | None, typer.Option("--group", "-g", help="Group the key reads (repeatable).")] = None,
    admin: Annotated[bool, typer.Option("--admin", help="May ingest, delete and read jobs.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
):
    """Make an API key. The key is printed once; only its hash is stored."""
    from api.keys import create_key

    try:
        token, info = create_key(settings(), user, group or ["everyone"], is_admin=admin)
    except PennyError as exc:
        fail(exc)
    if as_json:
        console.print_json(json.dumps({"key": token, **asdict(info)}))
        return
    console.print(f"key {info.id} for {info.user} (groups {', '.join(info.groups)}{', admin' if admin else ''}):")
    print(token)


@keys_app.command("list")
def keys_list(as_json: Annotated[bool, typer.Option("--json")] = False):
    """List API keys (their prefixes, never the keys)."""
    from api.keys import list_keys

    found = list_keys(settings())
    if as_json:
        console.print_json(json.dumps([asdict(info) for info in found]))
        return
    table = Table("id", "user", "prefix", "groups", "admin", "created", "revoked")
    for info in found:
        table.add_row(
            str(info.id),
            info.user,
            info.prefix,
            ",".join(info.groups),
            "yes" if info.is_admin else "",
            info.created_at,
            info.revoked_at or "",
        )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key: Annotated[str, typer.Argument(help="The key's id, its shown prefix, or the key itself.")]):
    """Revoke an API key: it stops working at once."""
    from api.keys import revoke_key

    try:
        info = revoke_key(settings(), key)
    except PennyError as exc:
        fail(exc)
    console.print(f"revoked key {info.id} of {info.user} ({info.prefix}...)")
