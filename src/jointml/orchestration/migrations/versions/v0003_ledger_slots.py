"""Job store schema, revision 3: the privacy-budget ledger of every party's data sources
(`dp_ledger`, append-only in the database itself: a trigger refuses UPDATE and DELETE on
SQLite and PostgreSQL), and `slot_locks`, one row per party that the task flow manager locks
(`SELECT ... FOR UPDATE`) while it chooses a job's data-plane slot, so that two coordinator
workers never give the same slot of a node to two jobs."""

import sqlalchemy as sa
from alembic import op

revision = "v0003"
down_revision = "v0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create `dp_ledger` (with its append-only trigger) and `slot_locks`."""
    op.create_table(
        "dp_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("party", sa.String(64), nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("release", sa.String(200), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=True, index=True),
        sa.Column("epsilon", sa.Float, nullable=False),
        sa.Column("delta", sa.Float, nullable=False),
        sa.Column("mechanism", sa.String(200), nullable=True),
        sa.Column("detail", sa.JSON, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('declare', 'charge')", name="ck_dp_ledger_kind"),
        sa.UniqueConstraint("party", "source", "kind", "release", name="uq_dp_ledger_release"),
    )
    op.create_table("slot_locks", sa.Column("party", sa.String(64), primary_key=True))
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for event in ("UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER dp_ledger_no_{event.lower()} BEFORE {event} ON dp_ledger "
                       "BEGIN SELECT RAISE(ABORT, 'the privacy ledger is append-only'); END")
    elif dialect == "postgresql":
        op.execute("CREATE FUNCTION dp_ledger_append_only() RETURNS trigger AS $$ "
                   "BEGIN RAISE EXCEPTION 'the privacy ledger is append-only'; END $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER dp_ledger_append_only BEFORE UPDATE OR DELETE ON dp_ledger "
                   "FOR EACH ROW EXECUTE FUNCTION dp_ledger_append_only()")
        # TRUNCATE is not a row event: refuse it too
        op.execute("CREATE TRIGGER dp_ledger_no_truncate BEFORE TRUNCATE ON dp_ledger "
                   "FOR EACH STATEMENT EXECUTE FUNCTION dp_ledger_append_only()")


def downgrade() -> None:
    """Drop what revision 3 made."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS dp_ledger_no_truncate ON dp_ledger")
        op.execute("DROP TRIGGER IF EXISTS dp_ledger_append_only ON dp_ledger")
        op.execute("DROP FUNCTION IF EXISTS dp_ledger_append_only()")
    op.drop_table("slot_locks")
    op.drop_table("dp_ledger")
