"""The job store's alembic migrations (run by `jointml.orchestration.store.JobStore` on start).

No party data: the schema holds specs, states, public metrics and logs only.
"""
