"""Document and chunk ids are never reused.

Access to a stored answer is decided by the ids of the documents it cites: were a deleted document's id given to
a new document, an answer that cited the old one would become readable to the new one's groups, and old citation
links would show the new document. SQLite reuses the highest rowid after a delete unless the table is declared
AUTOINCREMENT, which only CREATE TABLE can do, so both tables are rebuilt (rows and ids kept). PostgreSQL's
sequences never hand out an id twice: there the tables stay as they are.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_TABLES = ("documents", "chunks")  # documents first: chunks refer to it


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in _TABLES:
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": True}):
                pass


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in reversed(_TABLES):
            with op.batch_alter_table(table, recreate="always", table_kwargs={"sqlite_autoincrement": False}):
                pass
