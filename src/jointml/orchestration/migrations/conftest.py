"""pytest: `env.py` runs only inside alembic (it reads alembic's migration context)."""

collect_ignore = ["env.py"]
