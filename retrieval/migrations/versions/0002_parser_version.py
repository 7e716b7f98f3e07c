"""Documents remember which parser version read them, so an upgrade that parses differently re-reads them.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # every document indexed before this revision was read by the first parser
    op.add_column("documents", sa.Column("parser_version", sa.Integer, nullable=False, server_default="1"))


def downgrade() -> None:
    op.drop_column("documents", "parser_version")
