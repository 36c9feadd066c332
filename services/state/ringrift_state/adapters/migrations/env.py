"""Alembic environment: migrations run on the connection handed over by
ringrift_runtime.db.migrate (config.attributes["connection"])."""

from alembic import context

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through ringrift_runtime.db.migrate (the state service does at start)")
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
