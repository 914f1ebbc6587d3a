"""Alembic's entry: core.store.engine runs the migrations on a connection it opened and passes in."""

from alembic import context

context.configure(connection=context.config.attributes["connection"])
with context.begin_transaction():
    context.run_migrations()
