"""Ingestion under attack (issue 13): ids that are never reused, paths outside the ingestion roots, links, FIFOs
and devices, decompression bombs, parsing outside the serving process, and jobs killed with kill -9."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from api_support import key
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select, text

from api.app import create_app
from api.conversations import HIDDEN
from ingest.pipeline import IngestRequest, ingest, remove_documents
from penny import Settings
from retrieval.catalogue import ChunkRow, Document, open_catalogue

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
        asked = client.post("/v1/chat", json={"message": "What is the budget of Project Bluefin?"},
                            headers=finance_key).json()  # fmt: skip
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
                text("INSERT INTO documents (id, path, source, sha256, size, mtime, title, doc_type, groups_json, "
                     "status, chunk_count, created_at, updated_at) VALUES (:id, :path, 'default', '', 1, 0, 't', "
                     "'md', '[\"finance\"]', 'indexed', 1, '2026-01-01', '2026-01-01')"),
                {"id": doc_id, "path": f"/old/{doc_id}.md"},
            )  # fmt: skip
            connection.execute(
                text("INSERT INTO chunks (document_id, ordinal, text, text_sha256, title, section, char_start, "
                     "char_end, token_count) VALUES (:id, 0, 'old text', '', 't', '', 0, 8, 2)"),
                {"id": doc_id},
            )  # fmt: skip
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
