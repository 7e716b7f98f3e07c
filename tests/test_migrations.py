"""The migration chain: it builds the very schema the models declare, and on a catalogue that holds data revision
0004 turns JSON text columns into JSON columns without losing a value (or the AUTOINCREMENT of revision 0003), and
back."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text

import answer.cache  # noqa: F401  (puts the answer cache's table on Base)
import retrieval.catalogue
from api.tables import ApiKey
from penny import Settings
from retrieval.catalogue import Base, Document, IngestionJob, migrate, open_catalogue

MIGRATIONS = str(Path(retrieval.catalogue.__file__).parent / "migrations")


def _upgrade(engine, revision: str, downgrade: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if downgrade else command.upgrade)(config, revision)


def schema_differences(engine) -> list:
    """What Alembic's autogenerate would change to make the migrated database match the models: every table of
    every layer, its columns, their types, indexes and keys."""
    migrate(engine)
    with engine.connect() as connection:
        return compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)


def test_the_migrations_build_exactly_the_schema_the_models_declare(tmp_path):
    # a model changed without a migration, or a migration the models do not match, shows up as a difference
    assert {table.name for table in Base.metadata.sorted_tables} >= {"chunks", "api_keys", "answer_cache"}
    assert schema_differences(create_engine(f"sqlite:///{tmp_path / 'catalogue.db'}")) == []


def test_json_columns_keep_existing_rows(tmp_path):
    url = f"sqlite:///{tmp_path / 'catalogue.db'}"
    engine = create_engine(url)
    _upgrade(engine, "0002")
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO documents (id, path, source, sha256, size, mtime, title, doc_type, groups_json, status,"
                " chunk_count, parser_version, created_at, updated_at) VALUES (7, '/d.md', 'default', 'ab', 1, 1.0,"
                " 'D', 'md', '[\"everyone\", \"hr\"]', 'indexed', 0, 1, '2025-01-01', '2025-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO ingestion_jobs (id, status, pid, paths_json, counts_json, started_at)"
                " VALUES (3, 'succeeded', 1, '[\"/d.md\"]', '{\"indexed\": 1}', '2025-01-01')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO api_keys (id, user, prefix, key_hash, groups_json, is_admin, created_at)"
                " VALUES (1, 'alice', 'penny_x', 'h', '[\"hr\"]', 0, '2025-01-01')"
            )
        )
    engine.dispose()

    with open_catalogue(Settings(data_dir=tmp_path, database_url=url))() as session:
        schema = session.execute(text("SELECT sql FROM sqlite_master WHERE name = 'documents'")).scalar_one()
        assert "AUTOINCREMENT" in schema
        assert session.get(Document, 7).groups == ["everyone", "hr"]
        job = session.get(IngestionJob, 3)
        assert (job.paths, job.counts) == (["/d.md"], {"indexed": 1})
        assert session.get(ApiKey, 1).groups == ["hr"]

    _upgrade(engine, "0003", downgrade=True)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT groups_json FROM documents")).scalar_one() == '["everyone", "hr"]'
