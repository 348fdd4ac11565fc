"""Job store schema, revision 2: staged artifacts (name, SHA-256 and size of the stored,
encrypted object, per job, party and step), checked by the node on every read; and each
job's data-plane `slot` (which of the cluster's port sets its links use, so a node runs
several jobs at once)."""

import sqlalchemy as sa
from alembic import op

revision = "v0002"
down_revision = "v0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the `artifacts` table, add `jobs.slot`."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("slot", sa.Integer, nullable=True))
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False, index=True),
        sa.Column("party", sa.String(64), nullable=False),
        sa.Column("step_index", sa.Integer, nullable=True),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("name", sa.String(500), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    """Drop the `artifacts` table and `jobs.slot`."""
    op.drop_table("artifacts")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("slot")
