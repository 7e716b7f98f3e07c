"""Ingestion under attack (issue 13): ids that are never reused, paths outside the ingestion roots, links, FIFOs
and devices, decompression bombs, parsing outside the serving process, and jobs killed with kill -9."""

from __future__ import annotations

import base64
import io
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
import tracemalloc
import zipfile
import zlib
from pathlib import Path

import psutil
import pytest
from alembic import command
from alembic.config import Config as AlembicConfig
from api_support import key
from fastapi.testclient import TestClient
from pypdf import PdfReader, PdfWriter
from sqlalchemy import create_engine, func, select, text

from api.app import create_app
from api.conversations import HIDDEN
from ingest import parallel
from ingest.admin import list_jobs
from ingest.parse import ParseFailure, UnpackLimits, parse_bytes
from ingest.pipeline import IngestRequest, PathNotAllowed, ingest
from ingest.remove import remove_documents
from penny import Settings
from retrieval.catalogue import ChunkRow, Document, IngestionJob, open_catalogue

BUDGET_MD = "# Project Bluefin\n\n## Budget\n\nThe budget of Project Bluefin is 2.4 million euros for this year.\n"
LEAVE_MD = "# Annual leave\n\n## Entitlement\n\nFull-time employees receive 25 days of paid annual leave.\n"
CANTEEN_MD = "# Canteen\n\n## Opening hours\n\nThe canteen serves lunch from 12:00 to 14:00 on weekdays.\n"


def _write(folder: Path, name: str, content: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(content)
    return path


def _ids(settings: Settings, path: Path) -> tuple[int, set[int]]:
    with open_catalogue(settings)() as session:
        document = session.scalars(select(Document).where(Document.path == str(path))).one()
        return document.id, set(session.scalars(select(ChunkRow.id).where(ChunkRow.document_id == document.id)))


# ---------------------------------------------------------------- item 2: ids are never reused


def test_a_deleted_documents_ids_are_never_given_to_a_new_document(tmp_path):
    settings = Settings(data_dir=tmp_path / "penny")
    docs = tmp_path / "docs"
    ingest(settings, IngestRequest(paths=[_write(docs, "leave.md", LEAVE_MD)]))
    budget = _write(docs, "budget.md", BUDGET_MD)
    ingest(settings, IngestRequest(paths=[budget], groups=["finance"]))
    budget_id, budget_chunks = _ids(settings, budget)
    remove_documents(settings, [budget_id])  # the highest ids, the ones SQLite would hand out again

    canteen = _write(docs, "canteen.md", CANTEEN_MD)
    ingest(settings, IngestRequest(paths=[canteen]))
    canteen_id, canteen_chunks = _ids(settings, canteen)
    assert canteen_id > budget_id
    assert min(canteen_chunks) > max(budget_chunks)


def test_an_answer_citing_a_deleted_document_stays_hidden_from_keys_outside_its_groups(tmp_path):
    settings = Settings(data_dir=tmp_path / "penny", router_min_gain=1.0, abstain_floor=0.3)
    docs = tmp_path / "docs"
    ingest(settings, IngestRequest(paths=[_write(docs, "leave.md", LEAVE_MD)]))
    budget = _write(docs, "budget.md", BUDGET_MD)
    ingest(settings, IngestRequest(paths=[budget], groups=["finance"]))
    budget_id, _ = _ids(settings, budget)
    finance_key = key(settings, "carol", ["finance", "everyone"])
    everyone_key = key(settings, "carol", ["everyone"])  # the same user: the conversation is hers on both keys
    admin = key(settings, "root", ["everyone"], admin=True)
    with TestClient(create_app(settings)) as client:
        asked = client.post(
            "/v1/chat", json={"message": "What is the budget of Project Bluefin?"}, headers=finance_key
        ).json()
        assert [c["document_id"] for c in asked["answer"]["citations"]] == [budget_id]
        assert client.delete(f"/v1/documents/{budget_id}", headers=admin).status_code == 200

        ingest(settings, IngestRequest(paths=[_write(docs, "canteen.md", CANTEEN_MD)]))
        conversation = client.get(f"/v1/conversations/{asked['conversation_id']}", headers=everyone_key)
        assert conversation.status_code == 200
        assert "2.4 million" not in conversation.text
        answer = conversation.json()["messages"][-1]
        assert (answer["content"], answer["answer"]) == (HIDDEN, None)
        # the old citation link shows nothing rather than the new document
        assert client.get(f"/v1/documents/{budget_id}", headers=everyone_key).status_code == 404


def test_the_migration_keeps_every_row_and_stops_reuse_on_an_existing_catalogue(tmp_path):
    """A catalogue made before the fix: the rebuild keeps documents and chunks (no cascade on the old table's drop)
    and the highest id is not handed out again afterwards."""
    settings = Settings(data_dir=tmp_path / "penny")
    settings.data_dir.mkdir()
    engine = create_engine(settings.db_url)
    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(__file__).parents[1] / "retrieval" / "migrations"))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        for doc_id in (1, 2):
            connection.execute(
                text(
                    "INSERT INTO documents (id, path, source, sha256, size, mtime, title, doc_type, groups_json, "
                    "status, chunk_count, created_at, updated_at) VALUES (:id, :path, 'default', '', 1, 0, 't', "
                    "'md', '[\"finance\"]', 'indexed', 1, '2026-01-01', '2026-01-01')"
                ),
                {"id": doc_id, "path": f"/old/{doc_id}.md"},
            )
            connection.execute(
                text(
                    "INSERT INTO chunks (document_id, ordinal, text, text_sha256, title, section, char_start, "
                    "char_end, token_count) VALUES (:id, 0, 'old text', '', 't', '', 0, 8, 2)"
                ),
                {"id": doc_id},
            )
    engine.dispose()

    sessions = open_catalogue(settings)
    with sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(ChunkRow)) == 2
        session.delete(session.get(Document, 2))
    with sessions.begin() as session:
        assert session.scalar(select(func.count()).select_from(ChunkRow)) == 1  # deletes still cascade
        new = Document(path="/new.md", source="default", sha256="", size=1, mtime=0, doc_type="md", status="indexed")
        session.add(new)
        session.flush()
        assert new.id == 3


# ---------------------------------------------------------------- item 3: what ingestion may read


def _refused(report) -> dict[str, tuple[str, str]]:
    errors = report["errors"] if isinstance(report, dict) else report.errors
    return {Path(e["path"]).name: (e["kind"], e["reason"]) for e in errors}


def _all_text(settings: Settings) -> str:
    with open_catalogue(settings)() as session:
        return " ".join(session.scalars(select(ChunkRow.text)))


def _wait_for_job(client: TestClient, url: str, headers: dict[str, str]) -> dict:
    deadline = time.monotonic() + 180
    while (job := client.get(url, headers=headers).json())["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def _penny_ingest(settings: Settings, *paths: Path) -> subprocess.CompletedProcess:
    """`penny ingest --json` in its own process, as an operator runs it, bounded in time and memory: a regression
    that blocks on a FIFO must fail here rather than hang, and one that reads /dev/zero whole must not take the
    machine's memory."""
    env = {**os.environ, "PENNY_DATA_DIR": str(settings.data_dir), "PENNY_MAX_FILE_BYTES": str(settings.max_file_bytes)}

    def bounded_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # the command itself peaks near 2 GiB (torch)

    return subprocess.run(
        [sys.executable, "-m", "api", "ingest", *map(str, paths), "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=bounded_memory,
    )


def test_links_that_leave_the_folder_are_refused_with_a_reason(tmp_path):
    settings = Settings(data_dir=tmp_path / "penny")
    docs = tmp_path / "docs"
    _write(docs, "leave.md", LEAVE_MD)
    (docs / "passwd.md").symlink_to("/etc/passwd")
    secret = _write(tmp_path / "elsewhere", "secret.md", "# Vault\n\nThe vault code is 8841.\n")
    (docs / "secret.md").symlink_to(secret)
    (docs / "inner").mkdir()
    (docs / "inner" / "leave-again.md").symlink_to(docs / "leave.md")  # a link inside the folder is followed
    (docs / "etc").symlink_to("/etc")  # a folder link is never walked

    report = ingest(settings, IngestRequest(paths=[docs]))
    refused = _refused(report)
    assert {name: kind for name, (kind, _) in refused.items()} == {
        "passwd.md": "outside_root",
        "secret.md": "outside_root",
    }
    assert f"a link to /etc/passwd, outside {docs}" in refused["passwd.md"][1]
    assert (report.status, report.added, report.failed) == ("succeeded", 2, 2)
    text = _all_text(settings)
    assert "25 days" in text and "root:" not in text and "8841" not in text


def test_fifos_and_devices_are_refused_without_opening_them_and_the_job_finishes(tmp_path):
    settings = Settings(data_dir=tmp_path / "penny")
    docs = tmp_path / "docs"
    _write(docs, "leave.md", LEAVE_MD)
    os.mkfifo(docs / "pipe.md")  # no writer: opening it for reading blocks for ever
    zero = tmp_path / "zero.md"
    zero.symlink_to("/dev/zero")  # named itself, so it may lead anywhere, but only a regular file is read

    done = _penny_ingest(settings, docs, zero)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    refused = _refused(report)
    assert {name: kind for name, (kind, _) in refused.items()} == {"pipe.md": "not_a_file", "zero.md": "not_a_file"}
    assert refused["pipe.md"][1].startswith("a FIFO") and refused["zero.md"][1].startswith("a character device")
    assert (report["status"], report["added"]) == ("succeeded", 1)
    assert ingest(settings, IngestRequest(paths=[docs])).status == "succeeded"  # the lock was let go


def test_every_read_stops_at_the_size_limit_whatever_stat_says(tmp_path):
    settings = Settings(data_dir=tmp_path / "penny", max_file_bytes=2000)
    status = tmp_path / "status.txt"
    status.symlink_to("/proc/self/smaps")  # a regular file whose stat size is 0 and whose content is far larger
    assert status.stat().st_size == 0 and len(status.read_bytes()) > 2000
    report = ingest(settings, IngestRequest(paths=[status]))
    assert _refused(report) == {
        "status.txt": ("too_large", "it holds more than 2,000 bytes, over the limit of 2,000 (PENNY_MAX_FILE_BYTES)")
    }


def test_server_paths_must_lie_under_the_ingestion_roots(tmp_path):
    shared = tmp_path / "shared"
    settings = Settings(data_dir=tmp_path / "penny", ingest_roots=[shared], rate_limit_per_minute=10_000)
    _write(shared, "leave.md", LEAVE_MD)
    (shared / "etc").symlink_to("/etc")
    outside = _write(tmp_path / "outside", "canteen.md", CANTEEN_MD)
    admin = key(settings, "root", ["everyone"], admin=True)
    with TestClient(create_app(settings)) as client:
        for path in ("/etc", "/etc/passwd", str(outside), str(shared / ".." / "outside"), str(shared / "etc")):
            refused = client.post("/v1/ingest", json={"paths": [path]}, headers=admin)
            assert refused.status_code == 403, (path, refused.text)
            assert refused.json()["error"]["code"] == "path_not_allowed"
        missing = client.post("/v1/ingest", json={"paths": ["/etc/no-such-file"]}, headers=admin)
        assert missing.status_code == 403  # what lies outside the roots is not even probed
        started = client.post("/v1/ingest", json={"paths": [str(shared)]}, headers=admin)
        assert started.status_code == 202, started.text
        job = _wait_for_job(client, started.json()["url"], admin)
        assert (job["status"], job["counts"]["added"], job["errors"]) == ("succeeded", 1, [])
    with pytest.raises(PathNotAllowed):  # the library refuses the same, whoever calls it with roots
        ingest(settings, IngestRequest(paths=[outside], roots=[shared]))


# ---------------------------------------------------------------- item 4: decompression bombs


def _docx(path: Path, headings: int = 1, padding: int = 0) -> Path:
    """A real .docx; `padding` spaces after the root element of word/document.xml (valid XML that parses, and
    packs ~1000:1 like the zero-filled part of the issue's bomb)."""
    from docx import Document as DocxDocument

    document = DocxDocument()
    for i in range(headings):
        document.add_heading(f"Section {i}", level=1)
        document.add_paragraph(f"Clause {i}: the allowance for item {i} is {i * 7} units.")
    path.parent.mkdir(parents=True, exist_ok=True)
    plain = path.with_suffix(".plain")
    document.save(str(plain))
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for member in source.infolist():
            data = source.read(member)
            target.writestr(member, data + b" " * padding if member.filename == "word/document.xml" else data)
    plain.unlink()
    return path


def test_a_docx_bomb_is_refused_from_its_declared_sizes_before_anything_is_unpacked(tmp_path):
    bomb = _docx(tmp_path / "docs" / "bomb.docx", padding=50 * 1024 * 1024)
    assert bomb.stat().st_size < 200_000  # 50 MiB of XML in under 200 KB
    settings = Settings(data_dir=tmp_path / "penny")  # the default limits
    report = ingest(settings, IngestRequest(paths=[bomb.parent]))
    kind, reason = _refused(report)["bomb.docx"]
    assert kind == "decompression_bomb" and "word/document.xml" in reason and "PENNY_MAX_COMPRESSION_RATIO" in reason

    limits = UnpackLimits(settings.max_unpacked_bytes, settings.max_compression_ratio)
    _, peak = _refused_as_bomb(bomb, bomb.read_bytes(), unpack=limits)
    assert peak < 2 * bomb.stat().st_size + 1_000_000  # the part was never unpacked


def test_a_docx_over_the_unpacked_size_limit_is_refused(tmp_path):
    big = _docx(tmp_path / "docs" / "big.docx", padding=3 * 1024 * 1024)
    settings = Settings(data_dir=tmp_path / "penny", max_unpacked_bytes=1024 * 1024, max_compression_ratio=1e6)
    kind, reason = _refused(ingest(settings, IngestRequest(paths=[big])))["big.docx"]
    assert kind == "too_large" and reason.startswith("it unpacks to 3,9") and "PENNY_MAX_UNPACKED_BYTES" in reason


def test_a_small_docx_that_would_make_too_many_chunks_is_refused(tmp_path):
    many = _docx(tmp_path / "docs" / "many.docx", headings=400)
    assert many.stat().st_size < 50_000
    settings = Settings(data_dir=tmp_path / "penny", max_chunks_per_document=100)
    report = ingest(settings, IngestRequest(paths=[many]))
    assert _refused(report) == {
        "many.docx": (
            "too_many_chunks",
            "it makes more than 100 chunks, over the limit (PENNY_MAX_CHUNKS_PER_DOCUMENT)",
        )
    }
    assert report.chunks_added == 0


# ---------------------------------------------------------------- item 7: parsing outside the serving process


def test_server_jobs_parse_in_a_process_of_their_own(tmp_path, monkeypatch):
    parsed_here: list[str] = []
    parse_file = parallel.parse_file
    monkeypatch.setattr(parallel, "parse_file", lambda job: parsed_here.append(job.path) or parse_file(job))
    settings = Settings(data_dir=tmp_path / "penny", rate_limit_per_minute=10_000)
    admin = key(settings, "root", ["everyone"], admin=True)
    with TestClient(create_app(settings)) as client:
        upload = [("files", ("leave.md", LEAVE_MD.encode(), "text/markdown"))]
        started = client.post("/v1/documents", files=upload, headers=admin)
        assert started.status_code == 202, started.text
        job = _wait_for_job(client, started.json()["url"], admin)
        assert (job["status"], job["counts"]["added"]) == ("succeeded", 1)
        hits = client.post("/v1/search", json={"query": "days of paid annual leave", "k": 1}, headers=admin).json()
        assert "25 days" in hits["passages"][0]["text"]
    assert parsed_here == []  # nothing was parsed in the serving process
    with open_catalogue(settings)() as session:
        job_pid = session.scalar(select(IngestionJob.pid).where(IngestionJob.id == job["id"]))
    assert job_pid not in (0, os.getpid())


# ---------------------------------------------------------------- item 8: jobs killed with kill -9


def _heavy_corpus(folder: Path, files: int = 24, paragraphs: int = 3000) -> Path:
    """Enough files for the parse pool, each taking its worker seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        body = "\n\n".join(
            f"Clause {i}-{j}: the allowance for item {i}-{j} is {i * 7 + j} units." for j in range(paragraphs)
        )
        (folder / f"policy-{i:03}.txt").write_text(f"POLICY {i}\n\n{body}")
    return folder


def _busy_parse_workers(job_pid: int, deadline_seconds: float = 240) -> list[psutil.Process]:
    """The job's parse workers, once they have started working."""
    deadline = time.monotonic() + deadline_seconds
    while time.monotonic() < deadline:
        workers = [p for p in psutil.Process(job_pid).children() if "spawn_main" in " ".join(p.cmdline())]
        if workers and all(p.cpu_times().user > 1.0 for p in workers):
            return workers
        time.sleep(0.5)
    raise AssertionError("the job's parse workers did not start")


def _assert_they_die(workers: list[psutil.Process], within_seconds: float = 15) -> None:
    _, alive = psutil.wait_procs(workers, timeout=within_seconds)
    for orphan in alive:
        orphan.kill()
    assert alive == [], f"{len(alive)} parse workers outlived their job by {within_seconds} s"


@pytest.mark.slow
def test_a_job_killed_with_sigkill_is_interrupted_and_its_parse_workers_die(tmp_path):
    settings = Settings(data_dir=tmp_path / "penny", parse_workers=2)
    corpus = _heavy_corpus(tmp_path / "docs")
    env = {**os.environ, "PENNY_DATA_DIR": str(settings.data_dir), "PENNY_PARSE_WORKERS": "2"}
    job = subprocess.Popen(
        [sys.executable, "-m", "api", "ingest", str(corpus)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        workers = _busy_parse_workers(job.pid)
    finally:
        job.send_signal(signal.SIGKILL)
        job.wait()
    _assert_they_die(workers)
    # `penny jobs` (and GET /v1/jobs) tell the truth without waiting for the next job to start
    assert [(j["status"], str(job.pid) in j["message"]) for j in list_jobs(settings)] == [("interrupted", True)]


@pytest.mark.slow
def test_a_server_job_killed_with_sigkill_is_interrupted_and_its_parse_workers_die(tmp_path):
    shared = _heavy_corpus(tmp_path / "shared")
    settings = Settings(
        data_dir=tmp_path / "penny", parse_workers=2, ingest_roots=[shared], rate_limit_per_minute=10_000
    )
    admin = key(settings, "root", ["everyone"], admin=True)
    with TestClient(create_app(settings)) as client:
        started = client.post("/v1/ingest", json={"paths": [str(shared)]}, headers=admin)
        assert started.status_code == 202, started.text
        with open_catalogue(settings)() as session:
            job_pid = session.scalar(select(IngestionJob.pid).where(IngestionJob.id == started.json()["job_id"]))
        assert job_pid != os.getpid()
        workers = _busy_parse_workers(job_pid)
        os.kill(job_pid, signal.SIGKILL)
        job = _wait_for_job(client, started.json()["url"], admin)
        assert job["status"] == "interrupted"
    _assert_they_die(workers)


def _refused_as_bomb(path: Path, content: bytes, unpack: UnpackLimits) -> tuple[ParseFailure, int]:
    """Parse `content`, which must be refused for unpacking past the compression ratio: the refusal, and the peak
    of memory traced until it came."""
    tracemalloc.start()
    try:
        with pytest.raises(ParseFailure, match="times its packed size") as refused:
            parse_bytes(path, content, unpack=unpack)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return refused.value, peak


def _pdf(
    path: Path,
    padding: int,
    filters: tuple[str, ...] = ("FlateDecode",),
    content: bytes = b"",
    params: str = "",
) -> Path:
    """A one-page PDF whose content stream shows one line of text followed by `padding` newlines (valid content
    that packs ~1000:1), coded with `filters` (outermost first, as PDF lists them); `content`, when given, is the
    stream's coded bytes, and `params` its DecodeParms."""
    if not content:
        content = PAGE_TEXT + b"\n" * padding
        for name in reversed(filters):
            content = _ENCODERS[name](content)
    filter_array = "[" + " ".join(f"/{name}" for name in filters) + "]"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} /Filter {filter_array} {params} >>\nstream\n".encode() + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(bytes(out))
    return path


PAGE_TEXT = b"BT /F1 12 Tf 72 720 Td (Allowance clause 7: 12 units.) Tj ET"


def _lzw_literals(data: bytes) -> bytes:
    """LZW-coded `data` (under 250 bytes) as PDF's LZWDecode reads it: a clear code, one 9-bit code per byte, the
    end code. Valid LZW that never uses the table it builds."""
    return _packed([(256, 9), *((byte, 9) for byte in data), (257, 9)])


def _lzw_run(byte: int, cycles: int) -> bytes:
    """LZW codes that each repeat the table's newest string plus one byte: one table's worth (4,095 entries, about
    5.5 KB of codes) decodes to 7.4 MB of `byte`; the table is cleared and the run starts again `cycles` times."""
    codes = []
    width = 9
    for _ in range(cycles):
        codes += [(256, width), (byte, 9)]
        width, table = 9, 258
        for code in range(258, 4095):
            codes.append((code, width))
            table += 1
            width += table in (511, 1023, 2047)  # the decoder widens its codes one entry early
    return _packed([*codes, (257, width)])


def _packed(codes: list[tuple[int, int]]) -> bytes:
    bits = "".join(format(code, f"0{width}b") for code, width in codes)
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big")


def _run_length(data: bytes) -> bytes:
    """RunLengthDecode's coding, a repeat run for every 128 equal bytes and a literal run otherwise."""
    out, at = bytearray(), 0
    while at < len(data):
        run = 1
        while run < 128 and at + run < len(data) and data[at + run] == data[at]:
            run += 1
        out += bytes([257 - run, data[at]]) if run > 1 else bytes([0, data[at]])
        at += run
    return bytes(out + b"\x80")


_ENCODERS = {
    "FlateDecode": lambda data: zlib.compress(data, 9),
    "ASCIIHexDecode": lambda data: data.hex().encode() + b">",
    "ASCII85Decode": lambda data: base64.a85encode(data) + b"~>",
    "LZWDecode": _lzw_literals,
    "RunLengthDecode": _run_length,
}


def _repeat_runs(runs: int) -> bytes:
    """`runs` RunLengthDecode runs of 128 bytes each, their bytes drawn from 16 values: too varied for deflate to
    pack them past ~2:1, so a Flate layer over them stays well under the ratio limit on its own."""
    values = [16 * (b % 16) for b in os.urandom(runs)]
    return bytes(b for value in values for b in (129, value)) + b"\x80"


def test_a_pdf_bomb_is_refused_while_its_streams_are_inflated_a_step_at_a_time(tmp_path):
    bomb = _pdf(tmp_path / "docs" / "bomb.pdf", padding=300 * 1024 * 1024, filters=("FlateDecode",) * 2)
    assert bomb.stat().st_size < 100_000  # 300 MiB of page content, twice deflated
    settings = Settings(data_dir=tmp_path / "penny")  # the default limits
    report = ingest(settings, IngestRequest(paths=[bomb.parent]))
    kind, reason = _refused(report)["bomb.pdf"]
    assert kind == "decompression_bomb" and "PENNY_MAX_COMPRESSION_RATIO" in reason

    limits = UnpackLimits(settings.max_unpacked_bytes, settings.max_compression_ratio)
    _, peak = _refused_as_bomb(bomb, bomb.read_bytes(), unpack=limits)
    assert peak < 20 * 1024 * 1024  # never the whole stream: pdfminer alone would hold all 300 MiB


CHAINS = [
    ("ASCIIHexDecode", "FlateDecode"),
    ("ASCII85Decode", "FlateDecode"),
    ("LZWDecode",),
    ("FlateDecode", "RunLengthDecode"),
]


@pytest.mark.parametrize("filters", CHAINS, ids="+".join)
def test_a_pdf_coded_with_any_chain_of_filters_pdfminer_decodes_still_parses(tmp_path, filters):
    fine = _pdf(tmp_path / "fine.pdf", padding=100, filters=filters)
    limits = UnpackLimits(max_bytes=200 * 1024 * 1024, max_ratio=100)
    assert "Allowance clause 7" in parse_bytes(fine, fine.read_bytes(), unpack=limits).blocks[0].text


def _bombs(tmp_path: Path) -> dict[str, Path]:
    """PDFs whose one page decodes to ~100 MiB through filters the Flate-only check let pass: Flate behind an ASCII
    coding, LZW, RunLength after a Flate layer that packs only ~2:1, and fax coding outside an image."""
    padding = 100 * 1024 * 1024
    runs = _repeat_runs(padding // 128)
    assert len(zlib.compress(runs, 9)) * 10 > len(runs)  # the Flate layer alone is far from the ratio limit
    return {
        "hex": _pdf(tmp_path / "hex.pdf", padding, filters=("ASCIIHexDecode", "FlateDecode")),
        "a85": _pdf(tmp_path / "a85.pdf", padding, filters=("ASCII85Decode", "FlateDecode")),
        "lzw": _pdf(tmp_path / "lzw.pdf", 0, filters=("LZWDecode",), content=_lzw_run(10, cycles=14)),
        "runs": _pdf(
            tmp_path / "runs.pdf", 0, filters=("FlateDecode", "RunLengthDecode"), content=zlib.compress(runs, 9)
        ),
        "fax": _pdf(
            tmp_path / "fax.pdf",
            0,
            filters=("CCITTFaxDecode",),
            content=b"\xff" * 20_000,  # every bit a row as white as the one above it
            params="/DecodeParms << /K -1 /Columns 40000 >>",
        ),
    }


def test_a_pdf_bomb_behind_any_filter_chain_is_refused_without_decoding_it(tmp_path):
    limits = UnpackLimits(max_bytes=200 * 1024 * 1024, max_ratio=100)
    for name, bomb in _bombs(tmp_path).items():
        content = bomb.read_bytes()
        assert len(content) < 1_000_000, name
        refused, peak = _refused_as_bomb(bomb, content, unpack=limits)
        assert refused.kind == "decompression_bomb", name
        assert peak < 20 * 1024 * 1024, (name, peak)  # pdfminer would have held every stage's output whole


def _encrypted(plain: Path, algorithm: str, broken_xref: bool) -> bytes:
    """`plain` encrypted with an empty user password (any reader opens it, pdfminer included), its streams then
    ciphertext; with `broken_xref` its startxref points nowhere, so pdfminer rebuilds the cross-reference by
    scanning the file before it has a key to decrypt with."""
    writer = PdfWriter(clone_from=PdfReader(plain))
    writer.encrypt(user_password="", owner_password="owner", algorithm=algorithm)
    out = io.BytesIO()
    writer.write(out)
    content = out.getvalue()
    return re.sub(rb"startxref\s+\d+", b"startxref\n999999", content) if broken_xref else content


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
@pytest.mark.parametrize("broken_xref", [False, True], ids=["xref", "broken-xref"])
def test_an_encrypted_pdf_is_checked_on_its_decrypted_streams(tmp_path, algorithm, broken_xref):
    limits = UnpackLimits(max_bytes=200 * 1024 * 1024, max_ratio=100)
    page = _encrypted(_pdf(tmp_path / "page.pdf", padding=0), algorithm, broken_xref)
    assert b"Allowance" not in page  # the text is only there once decrypted
    assert "Allowance clause 7" in parse_bytes(tmp_path / "page.pdf", page, unpack=limits).blocks[0].text
    bomb = _encrypted(_pdf(tmp_path / "bomb.pdf", padding=100 * 1024 * 1024), algorithm, broken_xref)
    assert len(bomb) < 1_000_000
    refused, peak = _refused_as_bomb(tmp_path / "bomb.pdf", bomb, unpack=limits)
    assert refused.kind == "decompression_bomb"
    assert peak < 20 * 1024 * 1024


def _pdf_with_xref_stream(path: Path, padding: int) -> Path:
    """`_pdf`'s one page, its cross-reference written as a compressed XRef stream (PDF 1.5) whose rows are followed
    by `padding` zero bytes: pdfminer inflates that stream whole as it opens the document, before any page."""
    plain = _pdf(path, padding=0).read_bytes()
    body = plain[: plain.index(b"xref\n")]
    offsets = [int(m.start()) for m in re.finditer(rb"(?m)^\d+ 0 obj", body)]
    xref_at = len(body)
    rows = b"\x00\x00\x00\x00\x00\xff\xff" + b"".join(
        b"\x01" + offset.to_bytes(4, "big") + b"\x00\x00" for offset in [*offsets, xref_at]
    )
    data = zlib.compress(rows + b"\x00" * padding, 9)
    size = len(offsets) + 2
    head = f"{size - 1} 0 obj\n<< /Type /XRef /Size {size} /W [1 4 2] /Root 1 0 R /Filter /FlateDecode "
    head += f"/Length {len(data)} >>\nstream\n"
    tail = f"\nendstream\nendobj\nstartxref\n{xref_at}\n%%EOF\n"
    path.write_bytes(body + head.encode() + data + tail.encode())
    return path


def test_a_pdf_whose_cross_reference_stream_is_a_bomb_is_refused_before_pdfminer_opens_it(tmp_path):
    fine = _pdf_with_xref_stream(tmp_path / "fine.pdf", padding=0)
    limits = UnpackLimits(max_bytes=200 * 1024 * 1024, max_ratio=100)
    assert "Allowance clause 7" in parse_bytes(fine, fine.read_bytes(), unpack=limits).blocks[0].text

    bomb = _pdf_with_xref_stream(tmp_path / "bomb.pdf", padding=300 * 1024 * 1024)
    assert bomb.stat().st_size < 400_000
    refused, peak = _refused_as_bomb(bomb, bomb.read_bytes(), unpack=limits)
    assert refused.kind == "decompression_bomb"
    assert peak < 20 * 1024 * 1024  # opening the document alone used to inflate all 300 MiB


def test_a_pdf_within_the_limits_still_parses_and_one_over_the_total_is_refused(tmp_path):
    fine = _pdf(tmp_path / "fine.pdf", padding=2 * 1024 * 1024)
    limits = UnpackLimits(max_bytes=200 * 1024 * 1024, max_ratio=1e6)
    parsed = parse_bytes(fine, fine.read_bytes(), unpack=limits)
    assert "Allowance clause 7" in parsed.blocks[0].text
    with pytest.raises(ParseFailure, match="PENNY_MAX_UNPACKED_BYTES") as refused:
        parse_bytes(fine, fine.read_bytes(), unpack=UnpackLimits(max_bytes=1024 * 1024, max_ratio=1e6))
    assert refused.value.kind == "too_large"
