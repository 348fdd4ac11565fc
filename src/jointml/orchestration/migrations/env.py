"""Alembic environment of the job store: runs the migrations on the connection that
`jointml.orchestration.store.upgrade` passes in (`config.attributes["connection"]`).

No party data: the schema holds specs, states, public metrics and logs only.
"""

from alembic import context

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=None, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
