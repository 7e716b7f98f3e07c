"""Alembic environment: runs on the connection that `retrieval.catalogue.migrate` hands over."""

from alembic import context

from retrieval.catalogue import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
