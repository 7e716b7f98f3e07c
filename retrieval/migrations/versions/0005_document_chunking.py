"""Documents remember the chunking settings they were cut with, so a change re-chunks exactly those documents.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # unknown for documents indexed before this revision: the next ingestion of their folder re-chunks them
    op.add_column("documents", sa.Column("chunking", sa.String(500), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("documents", "chunking")
