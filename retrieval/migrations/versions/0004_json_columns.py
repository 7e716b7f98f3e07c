"""JSON-typed columns instead of text columns holding JSON: documents' and keys' groups, jobs' paths and counts,
cached and recorded answers. The stored text already is JSON, so it carries over as it is (PostgreSQL parses it).

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# table -> (old text column, new JSON column, nullable)
COLUMNS = {
    "documents": [("groups_json", "groups", False)],
    "api_keys": [("groups_json", "groups", False)],
    "ingestion_jobs": [("paths_json", "paths", False), ("counts_json", "counts", False)],
    "answer_cache": [("answer_json", "answer", False)],
    "messages": [("answer_json", "answer", True)],
}


# SQLite rebuilds each table; the rebuilt documents table must stay AUTOINCREMENT (revision 0003)
TABLE_OPTIONS = {"documents": {"sqlite_autoincrement": True}}


def _convert(old_type, new_type, direction: int) -> None:
    for table, columns in COLUMNS.items():
        with op.batch_alter_table(table, table_kwargs=TABLE_OPTIONS.get(table, {})) as batch:
            for old, new, nullable in columns:
                source, target = (old, new) if direction > 0 else (new, old)
                # PostgreSQL needs the cast spelled out; SQLite's batch mode copies the rows into the new table
                batch.alter_column(
                    source,
                    type_=new_type,
                    existing_type=old_type,
                    existing_nullable=nullable,
                    postgresql_using=f"{source}::{'json' if direction > 0 else 'text'}",
                )
                batch.alter_column(source, new_column_name=target, existing_type=new_type)


def upgrade() -> None:
    _convert(sa.Text(), sa.JSON(), +1)


def downgrade() -> None:
    _convert(sa.JSON(), sa.Text(), -1)
