"""Ingestion on real components: unstructured parsing, the real embedder, SQLite, FAISS and BM25 on disk."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from ingest.chunk import chunk_document
from ingest.job import JobAlreadyRunning, job_lock
from ingest.parse import PARSER_VERSION, Block, ParsedDocument, ParseFailure, parse_bytes
from ingest.pipeline import IngestRequest, ingest
from ingest.records import Record, ingest_records
from ingest.scan import FileChange, examine, files_to_examine, known_documents, removed
from penny import BadInput, Settings
from retrieval.catalogue import ChunkRow, Document, EmbeddingRow, IngestionJob, live_version, open_catalogue
from retrieval.embedder import embedding_key, get_embedder
from retrieval.search import Searcher

LEAVE_MD = """# Annual leave

Full-time employees receive 25 days of annual leave each year.

## Carry-over

Up to five unused days may be carried into the next year, and must be used by 31 March.

| Years of service | Days |
|---|---|
| 0-2 | 25 |
| 3-5 | 26 |
| 5+ | 28 |
"""

EXPENSES_HTML = """<html><body><h1>Expenses</h1>
<h2>Meals</h2><p>Client dinners are reimbursed up to 60 GBP per person with itemised receipts.</p>
<h2>Mileage</h2><p>Private car mileage is paid at 45 pence per mile for the first 10,000 miles.</p>
</body></html>"""

SECURITY_TXT = """PASSWORD POLICY

Passwords must be at least 14 characters long and are never reused.

Multi-factor authentication

Every account uses an authenticator app; SMS codes are not accepted for administrators.
"""


def make_docx(path: Path) -> Path:
    from docx import Document as DocxDocument

    doc = DocxDocument()
    doc.add_heading("Travel booking", level=1)
    doc.add_paragraph("All flights are booked through the travel desk at least 14 days before departure.")
    doc.add_heading("Hotel caps", level=2)
    table = doc.add_table(rows=3, cols=2)
    for row, (city, cap) in zip(
        table.rows, [("City", "Nightly cap"), ("London", "180 GBP"), ("Lisbon", "130 EUR")], strict=True
    ):
        row.cells[0].text, row.cells[1].text = city, cap
    doc.save(path)
    return path


def make_pdf(path: Path, encrypt: str | None = None) -> Path:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4, encrypt=encrypt)
    pdf.drawString(72, 760, "Onboarding")
    pdf.drawString(72, 740, "New starters collect their laptop from the IT desk on their first morning.")
    pdf.showPage()
    pdf.drawString(72, 760, "Badges")
    pdf.drawString(72, 740, "Building badges are issued by reception after the safety briefing on day two.")
    pdf.showPage()
    pdf.save()
    return path


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "penny")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text(LEAVE_MD)
    (folder / "expenses.html").write_text(EXPENSES_HTML)
    (folder / "security.txt").write_text(SECURITY_TXT)
    make_docx(folder / "travel.docx")
    make_pdf(folder / "onboarding.pdf")
    return folder


def top_path(settings: Settings, query: str) -> str:
    return Searcher(settings).search(query, k=3).passages[0].chunk.source_path


# ---------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    ("name", "expected_title", "expected_text", "expected_section"),
    [
        ("leave.md", "Annual leave", "25 days of annual leave", "Annual leave"),
        ("expenses.html", "Expenses", "45 pence per mile", "Expenses > Mileage"),
        ("security.txt", "PASSWORD POLICY", "at least 14 characters", "PASSWORD POLICY"),
        ("travel.docx", "Travel booking", "14 days before departure", "Travel booking"),
        ("onboarding.pdf", "Onboarding", "laptop from the IT desk", "Onboarding"),
    ],
)
def test_every_supported_type_parses_with_sections(corpus, name, expected_title, expected_text, expected_section):
    path = corpus / name
    parsed = parse_bytes(path, path.read_bytes())
    assert parsed.title == expected_title
    holding = [b for b in parsed.blocks if expected_text in b.text]
    assert holding, [b.text for b in parsed.blocks]
    assert " > ".join(holding[0].section) == expected_section


def test_markdown_saved_as_txt_keeps_its_headings_and_code_blocks(tmp_path):
    path = tmp_path / "restore.txt"
    path.write_text(
        "# Restoring etcd\n\n\nRestore the snapshot before you restart the control plane.\n\n"
        "```terminal\n$ oc get pods -n openshift-etcd\n```\n\n"
        "# Verifying the restore\n\nCheck that every etcd member reports healthy within 10 minutes.\n"
    )
    parsed = parse_bytes(path, path.read_bytes())
    assert parsed.title == "Restoring etcd"
    verified = next(b for b in parsed.blocks if "every etcd member" in b.text)
    assert verified.section == ("Verifying the restore",)
    assert not any(b.text.startswith("```") or b.section[-1].startswith(("```", "#")) for b in parsed.blocks)
    assert any("oc get pods -n openshift-etcd" in b.text for b in parsed.blocks)


def test_tables_keep_rows_and_columns(corpus):
    parsed = parse_bytes(corpus / "leave.md", (corpus / "leave.md").read_bytes())
    tables = [b for b in parsed.blocks if b.is_table]
    assert len(tables) == 1
    assert tables[0].text.splitlines() == ["Years of service | Days", "0-2 | 25", "3-5 | 26", "5+ | 28"]
    docx = parse_bytes(corpus / "travel.docx", (corpus / "travel.docx").read_bytes())
    assert any(b.is_table and "London | 180 GBP" in b.text for b in docx.blocks)


def test_pdf_pages_are_known(corpus):
    parsed = parse_bytes(corpus / "onboarding.pdf", (corpus / "onboarding.pdf").read_bytes())
    pages = {b.page for b in parsed.blocks if "badges are issued" in b.text.lower()}
    assert pages == {2}


# ---------------------------------------------------------------- chunking


def _words(n: int, start: int = 0) -> str:
    return " ".join(f"word{i}." for i in range(start, start + n))


def test_chunks_never_cross_sections_and_fit_the_token_budget():
    embedder = get_embedder(Settings())
    blocks = [Block(_words(8), ("Guide", "Part A"), None), Block(_words(300, 1000), ("Guide", "Part B"), None)]
    drafts = chunk_document(ParsedDocument("Guide", "md", blocks), embedder.count_tokens, 64, 8)
    sections = [d.section for d in drafts]
    assert sections[0] == "Guide > Part A" and set(sections[1:]) == {"Guide > Part B"}
    assert len(drafts) > 3
    label_tokens = embedder.count_tokens(["Guide > Part B"])[0] + 2
    for draft in drafts:
        assert embedder.count_tokens([draft.text])[0] <= 64 - label_tokens + 2  # sentence joins may add a token
    text = "\n\n".join(b.text for b in blocks)
    for draft in drafts:  # offsets point at the chunk's text in the document
        assert text[draft.char_start : draft.char_end] == draft.text


def test_split_sections_overlap_a_little_and_lose_nothing():
    embedder = get_embedder(Settings())
    body = _words(200)
    drafts = chunk_document(ParsedDocument("T", "txt", [Block(body, ("T",), None)]), embedder.count_tokens, 64, 12)
    assert drafts[1].char_start < drafts[0].char_end  # overlap
    covered = set()
    for draft in drafts:
        covered.update(range(draft.char_start, draft.char_end))
    assert covered >= set(range(len(body))) - {i for i, c in enumerate(body) if c == " "}


def test_a_table_that_fits_stays_whole():
    embedder = get_embedder(Settings())
    table = "City | Rate\n" + "\n".join(f"City{i} | {i * 10} GBP" for i in range(8))
    blocks = [Block(_words(50), ("Rates",), None), Block(table, ("Rates",), None, is_table=True)]
    drafts = chunk_document(ParsedDocument("Rates", "md", blocks), embedder.count_tokens, 120, 8)
    assert any(d.text.endswith(table) and table in d.text for d in drafts)
    assert sum(table in d.text for d in drafts) == 1


# ---------------------------------------------------------------- the job, incremental


def test_ingest_indexes_every_type_and_search_finds_them(settings, corpus):
    report = ingest(settings, IngestRequest(paths=[corpus]))
    assert (report.status, report.added, report.failed, report.skipped) == ("succeeded", 5, 0, 0)
    assert report.index_version == 1 and report.chunks_added >= 5
    assert top_path(settings, "how many pence per mile for driving my own car").endswith("expenses.html")
    assert top_path(settings, "hotel nightly cap in Lisbon").endswith("travel.docx")
    assert top_path(settings, "when are building badges issued").endswith("onboarding.pdf")
    with open_catalogue(settings)() as session:
        pdf_chunk = session.scalars(select(ChunkRow).where(ChunkRow.text.contains("badges"))).first()
        assert pdf_chunk.page == 2
        assert session.scalar(select(IngestionJob.status).where(IngestionJob.id == report.job_id)) == "succeeded"


def test_rerun_unchanged_changed_deleted_and_duplicate(settings, corpus):
    first = ingest(settings, IngestRequest(paths=[corpus]))
    unchanged = ingest(settings, IngestRequest(paths=[corpus]))
    assert (unchanged.unchanged, unchanged.added, unchanged.updated, unchanged.chunks_embedded) == (5, 0, 0, 0)
    assert unchanged.index_version is None  # nothing changed: no new version is written

    (corpus / "leave.md").write_text(LEAVE_MD.replace("25 days of annual leave", "27 days of annual leave"))
    (corpus / "security.txt").unlink()
    (corpus / "copy-of-expenses.html").write_text(EXPENSES_HTML)
    changed = ingest(settings, IngestRequest(paths=[corpus], prune=True))
    assert (changed.updated, changed.added, changed.removed, changed.unchanged) == (1, 1, 1, 3)
    # only the edited chunk is new text: the duplicate document and the unchanged chunks reuse embeddings
    assert changed.chunks_embedded == 1
    assert changed.index_version == first.index_version + 1

    with open_catalogue(settings)() as session:
        paths = set(session.scalars(select(Document.path)))
        assert not any(p.endswith("security.txt") for p in paths)
        leave_text = " ".join(
            session.scalars(select(ChunkRow.text).join(Document).where(Document.path.like("%leave.md")))
        )
        assert "27 days" in leave_text and "25 days of annual" not in leave_text
        embeddings = session.scalar(
            select(func.count()).select_from(EmbeddingRow).where(EmbeddingRow.model == embedding_key(settings))
        )
        duplicate_hashes = session.scalars(
            select(ChunkRow.text_sha256).join(Document).where(Document.path.like("%expenses.html"))
        ).all()
        assert len(duplicate_hashes) == 2 * len(set(duplicate_hashes))  # both copies indexed, embedded once
    assert embeddings == first.chunks_embedded + 1
    # the duplicate passage is returned once
    passages = Searcher(settings).search("pence per mile private car", k=5).passages
    assert sum("45 pence per mile" in p.chunk.text for p in passages) == 1


def test_touched_but_identical_file_is_unchanged(settings, corpus):
    ingest(settings, IngestRequest(paths=[corpus]))
    os.utime(corpus / "leave.md", (time.time() + 60, time.time() + 60))
    report = ingest(settings, IngestRequest(paths=[corpus]))
    assert report.unchanged == 5 and report.index_version is None


def test_documents_read_by_an_older_parser_are_read_again(settings, corpus):
    ingest(settings, IngestRequest(paths=[corpus]))
    with open_catalogue(settings).begin() as session:  # as an older Penny would have left it
        session.execute(update(Document).where(Document.path.like("%leave.md")).values(parser_version=1))
    report = ingest(settings, IngestRequest(paths=[corpus]))
    assert (report.updated, report.unchanged, report.chunks_embedded) == (1, 4, 0)  # same text: no new embedding
    with open_catalogue(settings)() as session:
        assert set(session.scalars(select(Document.parser_version))) == {PARSER_VERSION}
    assert ingest(settings, IngestRequest(paths=[corpus])).unchanged == 5


def test_new_groups_relabel_without_reembedding(settings, corpus):
    ingest(settings, IngestRequest(paths=[corpus]))
    report = ingest(settings, IngestRequest(paths=[corpus / "leave.md"], groups=["hr"]))
    assert report.updated == 1 and report.chunks_embedded == 0 and report.index_version == 2
    with open_catalogue(settings)() as session:
        doc = session.scalars(select(Document).where(Document.path.like("%leave.md"))).one()
        assert doc.groups == ["hr"]


def test_records_mirror_their_source(settings):
    ingest_records(
        settings, [Record("a", "Cats", "Cats purr when content."), Record("b", "Dogs", "Dogs bark.")], "pets"
    )
    report = ingest_records(settings, [Record("a", "Cats", "Cats purr when content.")], "pets")
    assert (report.unchanged, report.removed) == (1, 1)
    assert top_path(settings, "why do cats purr") == "record://pets/a"


# ---------------------------------------------------------------- change detection


def _changes(settings: Settings, folder: Path, groups: list[str]) -> dict[str, FileChange]:
    """What each file under `folder` is to the catalogue, by file name, as the next job would find it."""
    known = known_documents(open_catalogue(settings))
    files = files_to_examine([folder], None)
    return {
        Path(path).name: examine(Path(path), within, known.get(path), settings, groups, "default")
        for path, within in files.items()
    }


def test_each_file_is_classified_against_the_catalogue(settings, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "leave.md").write_text(LEAVE_MD)
    (folder / "expenses.html").write_text(EXPENSES_HTML)
    (folder / "security.txt").write_text(SECURITY_TXT)
    (folder / "retired.txt").write_text("RETIRED\n\nThis policy no longer applies.")
    (folder / "empty.md").write_text("")
    ingest(settings, IngestRequest(paths=[folder]))

    edited = LEAVE_MD.replace("25 days of annual leave", "27 days of annual leave")  # same size: only the hash tells
    (folder / "leave.md").write_text(edited)
    later = time.time() + 60
    os.utime(folder / "leave.md", (later, later))
    os.utime(folder / "security.txt", (later, later))
    (folder / "new.md").write_text("# Parking\n\nStaff park in the east car park.")
    (folder / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (folder / "broken.md").symlink_to(folder / "nowhere.md")
    (folder / "retired.txt").unlink()

    changes = _changes(settings, folder, ["everyone"])
    assert {name: change.kind for name, change in changes.items()} == {
        "broken.md": "refused",
        "empty.md": "changed",  # its last attempt failed: every job tries it again
        "expenses.html": "unchanged",
        "leave.md": "changed",
        "new.md": "new",
        "picture.png": "refused",
        "security.txt": "touched",
    }
    assert changes["leave.md"].sha256 == hashlib.sha256(edited.encode()).hexdigest()
    assert changes["security.txt"].mtime == os.stat(folder / "security.txt").st_mtime
    assert changes["new.md"].sha256 == ""  # not read yet: parsing hashes what it reads
    assert (changes["picture.png"].failure_kind, changes["broken.md"].failure_kind) == ("unsupported", "unreadable")
    known = known_documents(open_catalogue(settings))
    assert removed(known, files_to_examine([folder], None), [folder]) == [
        FileChange(str(folder / "retired.txt"), "removed")
    ]

    relabelled = _changes(settings, folder, ["hr"])
    assert (relabelled["expenses.html"].kind, relabelled["security.txt"].kind) == ("relabelled", "relabelled")
    with open_catalogue(settings).begin() as session:  # as an older parser would have left it
        session.execute(update(Document).where(Document.path.like("%expenses.html")).values(parser_version=1))
    assert _changes(settings, folder, ["everyone"])["expenses.html"].kind == "changed"


# ---------------------------------------------------------------- bad input


def test_bad_files_are_recorded_with_reasons_and_never_abort(settings, corpus, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.md").write_text("")
    (bad / "binary.txt").write_bytes(b"\x00\x01\x02PK\x00" * 100)
    (bad / "corrupt.docx").write_bytes(b"this is not a zip file at all")
    (bad / "corrupt.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ngarbage without xref")
    make_pdf(bad / "encrypted.pdf", encrypt="s3cret")
    (bad / "huge.txt").write_text("big " * 30000)
    (bad / "broken-link.md").symlink_to(bad / "does-not-exist.md")
    (bad / "picture.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    small_limit = settings.model_copy(update={"max_file_bytes": 100_000})
    report = ingest(small_limit, IngestRequest(paths=[corpus, bad]))
    kinds = {Path(e["path"]).name: e["kind"] for e in report.errors}
    assert kinds == {
        "empty.md": "empty",
        "binary.txt": "binary",
        "corrupt.docx": "corrupt",
        "corrupt.pdf": "corrupt",
        "encrypted.pdf": "encrypted",
        "huge.txt": "too_large",
        "broken-link.md": "unreadable",
        "picture.png": "unsupported",
    }
    assert (report.status, report.added, report.failed, report.skipped) == ("succeeded", 5, 7, 1)
    assert all(e["reason"] for e in report.errors)
    with open_catalogue(settings)() as session:
        job = session.get(IngestionJob, report.job_id)
        assert job.counts["failed"] == 7 and len(job.errors) == 8
        failed = {Path(p).name for p in session.scalars(select(Document.path).where(Document.status == "failed"))}
    # what parsing refused is a failed document saying why; what examining refused (never read) only a job error
    assert failed == {"empty.md", "binary.txt", "corrupt.docx", "corrupt.pdf", "encrypted.pdf"}


def test_a_file_that_turns_corrupt_keeps_its_last_good_content(settings, corpus):
    ingest(settings, IngestRequest(paths=[corpus]))
    (corpus / "travel.docx").write_bytes(b"garbage")
    report = ingest(settings, IngestRequest(paths=[corpus]))
    assert report.failed == 1
    assert top_path(settings, "hotel nightly cap in Lisbon").endswith("travel.docx")
    with open_catalogue(settings)() as session:
        doc = session.scalars(select(Document).where(Document.path.like("%travel.docx"))).one()
        assert doc.status == "indexed" and doc.error.startswith("corrupt")


def test_bad_requests_fail_clearly(settings, tmp_path):
    with pytest.raises(BadInput, match="no such file"):
        ingest(settings, IngestRequest(paths=[tmp_path / "missing"]))
    with pytest.raises(BadInput, match="at least one"):
        ingest(settings, IngestRequest(paths=[]))
    with pytest.raises(ParseFailure, match="unsupported"):
        parse_bytes(Path("x.xyz"), b"data")


def test_one_job_at_a_time(settings, corpus):
    with job_lock(settings), pytest.raises(JobAlreadyRunning):
        ingest(settings, IngestRequest(paths=[corpus]))


# ---------------------------------------------------------------- crash safety


def _big_corpus(folder: Path, files: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        paragraphs = [f"Policy {i} clause {j}: the allowance for item {i}-{j} is {i * 7 + j} units." for j in range(40)]
        (folder / f"policy-{i:03}.txt").write_text(f"POLICY {i}\n\n" + "\n\n".join(paragraphs))


def _job_state(settings: Settings) -> tuple[str | None, int]:
    with open_catalogue(settings)() as session:
        status = session.scalar(select(IngestionJob.status).order_by(IngestionJob.id.desc()).limit(1))
        return status, session.scalar(select(func.count()).select_from(EmbeddingRow))


@pytest.mark.slow
@pytest.mark.parametrize("kill_when", ["parsing", "embedding"])
def test_a_job_killed_midway_leaves_the_old_index_live_and_the_next_run_finishes(settings, corpus, tmp_path, kill_when):
    first = ingest(settings, IngestRequest(paths=[corpus]))
    _big_corpus(corpus / "more", 60)
    env = {**os.environ, "PENNY_DATA_DIR": str(settings.data_dir), "PENNY_EMBED_BATCH_SIZE": "8"}
    job = subprocess.Popen(
        [str(Path(sys.executable).with_name("penny")), "ingest", str(corpus)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    baseline = _job_state(settings)[1]
    deadline = time.time() + 300
    while time.time() < deadline and job.poll() is None:
        status, embeddings = _job_state(settings)
        if (kill_when == "parsing" and status == "running") or (kill_when == "embedding" and embeddings > baseline):
            break
        time.sleep(0.05)
    assert job.poll() is None, "the job finished before it could be killed; make the corpus bigger"
    job.send_signal(signal.SIGKILL)
    job.wait()

    with open_catalogue(settings)() as session:
        assert live_version(session) == first.index_version
    assert top_path(settings, "how many pence per mile for driving my own car").endswith("expenses.html")
    assert "policy-" not in top_path(settings, "allowance for item 12-3")

    report = ingest(settings, IngestRequest(paths=[corpus]))
    assert (report.status, report.added, report.unchanged) == ("succeeded", 60, 5)
    if kill_when == "embedding":
        assert report.chunks_embedded < report.chunks_added  # the killed job's embeddings were kept
    assert top_path(settings, "allowance for item 12-3 policy 12").endswith("policy-012.txt")
    with open_catalogue(settings)() as session:
        statuses = list(session.scalars(select(IngestionJob.status).order_by(IngestionJob.id)))
    assert statuses == ["succeeded", "interrupted", "succeeded"]
    leftovers = [p.name for p in settings.index_dir.iterdir() if p.name.startswith(".v")]
    assert leftovers == []


@pytest.mark.slow
def test_the_worker_pool_parses_exactly_as_the_serial_path(tmp_path, corpus):
    from ingest.parallel import MIN_FILES_FOR_POOL, parse_files

    _big_corpus(corpus / "more", MIN_FILES_FOR_POOL)
    (corpus / "more" / "broken.docx").write_bytes(b"not a zip")
    paths = sorted(str(p) for p in corpus.rglob("*") if p.is_file())
    serial = list(parse_files(paths, Settings(data_dir=tmp_path, parse_workers=1)))
    pooled = list(parse_files(paths, Settings(data_dir=tmp_path, parse_workers=2)))
    assert [r.path for r in pooled] == paths
    assert pooled == serial
    assert [r.failure_kind for r in pooled if r.failure_kind] == ["corrupt"]
