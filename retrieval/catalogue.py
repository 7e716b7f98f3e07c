"""The SQL catalogue: documents, chunks, embeddings, jobs and index versions, and the one `Base` for every table.

SQLite by default, any SQLAlchemy URL otherwise. Layers above keep their own tables on this `Base` (the answer
cache in `answer/cache.py`, keys, conversations and feedback in `api/tables.py`); the one Alembic migration chain
beside this file creates them all, and `open_catalogue` brings a database up to the newest revision before
anything touches it.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    create_engine,
    event,
    inspect,
)
from sqlalchemy import text as sql_text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from penny import Chunk, Settings


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Document(Base):
    __tablename__ = "documents"
    # ids are never reused (migration 0003): stored answers decide who may read them by the ids they cite
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(2048), unique=True)
    source: Mapped[str] = mapped_column(String(200), default="default")
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size: Mapped[int] = mapped_column(Integer)
    mtime: Mapped[float] = mapped_column(Float)
    title: Mapped[str] = mapped_column(String(500), default="")
    doc_type: Mapped[str] = mapped_column(String(20))
    groups: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["everyone"])  # sorted
    status: Mapped[str] = mapped_column(String(20))  # indexed | failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    parser_version: Mapped[int] = mapped_column(Integer, default=1)  # ingest.parse.PARSER_VERSION that read it
    # the chunking settings it was cut with (retrieval.build.chunking_key); "" before they were recorded
    chunking: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    chunks: Mapped[list[ChunkRow]] = relationship(
        back_populates="document", cascade="all, delete-orphan", passive_deletes=True
    )


class ChunkRow(Base):
    __tablename__ = "chunks"
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(500), default="")
    section: Mapped[str] = mapped_column(String(1000), default="")
    page: Mapped[int | None] = mapped_column(Integer, nullable=True)
    char_start: Mapped[int] = mapped_column(Integer, default=0)
    char_end: Mapped[int] = mapped_column(Integer, default=0)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    document: Mapped[Document] = relationship(back_populates="chunks")

    def to_chunk(self, source_path: str) -> Chunk:
        return Chunk(
            id=self.id,
            document_id=self.document_id,
            text=self.text,
            title=self.title,
            section=self.section,
            source_path=source_path,
            page=self.page,
            char_start=self.char_start,
            char_end=self.char_end,
            ordinal=self.ordinal,
        )


class EmbeddingRow(Base):
    """Embeddings by text hash: unchanged, moved and duplicated text is never embedded twice, and the work of a
    job that was killed is still here for the next run."""

    __tablename__ = "embeddings"
    text_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class IngestionJob(Base):
    __tablename__ = "ingestion_jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # running | succeeded | failed | interrupted
    pid: Mapped[int] = mapped_column(Integer, default=0)
    paths: Mapped[list[str]] = mapped_column(JSON, default=list)
    counts: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    index_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    errors: Mapped[list[JobError]] = relationship(cascade="all, delete-orphan", passive_deletes=True)


class JobError(Base):
    __tablename__ = "job_errors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("ingestion_jobs.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(2048))
    kind: Mapped[str] = mapped_column(String(40))  # unreadable | corrupt | encrypted | empty | binary | ...
    reason: Mapped[str] = mapped_column(Text)


class IndexVersion(Base):
    """One on-disk index generation. Exactly one row is live; switching is one committed transaction."""

    __tablename__ = "index_versions"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))  # building | live | retired
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


# ---------------------------------------------------------------- opening


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # WAL lets searches read while an ingestion job writes; foreign keys make deletes cascade. With WAL,
    # synchronous=NORMAL cannot corrupt the database; a power cut may lose the last commits, a killed process none.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _head_revision() -> str:
    """The newest migration's revision: migrations are files named after their revision (0003_....py)."""
    return max(path.name.split("_", 1)[0] for path in (Path(__file__).parent / "migrations" / "versions").glob("0*.py"))


def migrate(engine: Engine) -> None:
    # a catalogue already at the head is the common case: checking it costs one query, importing alembic ~0.3 s
    with engine.connect() as connection:
        if inspect(connection).has_table("alembic_version"):
            current = connection.execute(sql_text("SELECT version_num FROM alembic_version")).scalars().all()
            if current == [_head_revision()]:
                return
    from alembic import command
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # a migration that rebuilds a table (Alembic's batch mode) drops the old one, and with foreign keys
            # on, dropping documents would delete every chunk; the switch only works outside a transaction
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                    raise RuntimeError("a migration left rows that refer to missing rows; nothing was changed")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()


_engines: dict[str, Engine] = {}


def _create_privately(settings: Settings) -> None:
    """A new data directory (0700) and catalogue (0600) are readable by Penny's user alone: they hold every
    document's text and the key hashes. SQLite gives the -wal and -shm files the database file's mode."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not settings.database_url:
        os.close(os.open(settings.data_dir / "catalogue.db", os.O_CREAT | os.O_WRONLY, 0o600))


def open_catalogue(settings: Settings) -> sessionmaker[Session]:
    """The session factory for the catalogue, migrated to the newest schema (once per URL and process)."""
    url = settings.db_url
    engine = _engines.get(url)
    if engine is None:
        if url.startswith("sqlite"):
            _create_privately(settings)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(url, pool_pre_ping=True)
        migrate(engine)
        _engines[url] = engine
    return sessionmaker(engine, expire_on_commit=False)


def live_version(session: Session) -> int | None:
    row = session.query(IndexVersion).filter_by(status="live").one_or_none()
    return row.version if row else None
