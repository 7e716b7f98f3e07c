"""The catalogue on a real PostgreSQL server: migrations, ingestion, incremental re-runs, search and deletion.

A throw-away cluster is started in a temporary folder (`make test` installs PostgreSQL on CI); without the
server binaries the tests skip.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from test_migrations import schema_differences

from ingest.pipeline import IngestRequest, ingest
from ingest.remove import remove_documents
from penny import Settings
from retrieval.catalogue import Document, open_catalogue
from retrieval.search import Searcher

REPO = Path(__file__).resolve().parents[1]


def _server_binaries() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    binaries = _server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL server binaries are not installed (apt-get install postgresql)")
    # not under pytest's tmp folder: that is private to root, and the server runs as another user
    root = Path(tempfile.mkdtemp(prefix="penny-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    # the server refuses to run as root: run it as the postgres user the Debian package creates
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()
    subprocess.run(
        [*as_user, binaries / "initdb", "-D", data, "-U", "penny", "--auth=trust"], check=True, capture_output=True
    )
    options = f"-k {sockets} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    # the server's output goes to a log file: a pipe would be held open by the server and never reach EOF
    subprocess.run(
        [*as_user, binaries / "pg_ctl", "-D", data, "-l", root / "server.log", "-o", options, "-w", "start"],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        subprocess.run(
            [*as_user, binaries / "createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "penny", "penny"],
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://penny@127.0.0.1:{port}/penny"
    finally:
        subprocess.run([*as_user, binaries / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def test_ingest_search_rerun_and_delete_on_postgres(postgres_url, tmp_path):
    settings = Settings(data_dir=tmp_path / "penny", database_url=postgres_url)
    docs = tmp_path / "docs"
    for relative in ("leave/annual-leave.md", "travel/per-diem-rates.html", "onboarding/first-week.md"):
        (docs / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "data" / "corpus" / relative, docs / relative)

    first = ingest(settings, IngestRequest(paths=[docs], groups=["staff"]))
    assert (first.status, first.added, first.index_version) == ("succeeded", 3, 1)
    top = Searcher(settings).search("per diem rate in Lisbon", k=3).passages[0]
    assert top.chunk.source_path.endswith("per-diem-rates.html")

    again = ingest(settings, IngestRequest(paths=[docs], groups=["staff"]))
    assert (again.unchanged, again.chunks_embedded, again.index_version) == (3, 0, None)

    with open_catalogue(settings)() as session:
        leave = session.scalars(select(Document).where(Document.path.like("%annual-leave.md"))).one()
        assert leave.groups == ["staff"] and leave.chunk_count > 0
    removed = remove_documents(settings, [leave.id])
    assert removed.index_version == 2
    passages = Searcher(settings).search("annual leave days", k=5).passages
    assert all(not p.chunk.source_path.endswith("annual-leave.md") for p in passages)


def test_ids_are_never_reused_on_postgres(postgres_url, tmp_path):
    settings = Settings(data_dir=tmp_path / "penny", database_url=postgres_url)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "first.md").write_text("# First\n\nThe first note says the office opens at eight.\n")
    ingest(settings, IngestRequest(paths=[docs / "first.md"], groups=["finance"]))
    with open_catalogue(settings)() as session:
        highest = session.scalar(select(func.max(Document.id)))
    remove_documents(settings, [highest])
    (docs / "second.md").write_text("# Second\n\nThe second note says the office closes at six.\n")
    ingest(settings, IngestRequest(paths=[docs / "second.md"]))
    with open_catalogue(settings)() as session:
        assert session.scalar(select(Document.id).where(Document.path.like("%second.md"))) > highest


def test_the_migrations_build_exactly_the_schema_the_models_declare_on_postgres(postgres_url):
    assert schema_differences(create_engine(postgres_url)) == []
