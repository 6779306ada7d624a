"""Signing out a person an identity provider vouches for holds against their tokens.

`phigate user sign-out oidc:<sub>` revoked the subject's sessions, but the provider's
token stays valid until it expires (often an hour), and a gateway process that had not
seen it opened a new session for it: the person was served again. The moment of the
sign-out is now kept (``external_sign_outs``), and a token the provider issued before it
opens no session. Sessions are also found by subject through an index (the sign-out
scanned every session).

Revision ID: 0024
Revises: 0023
"""

from __future__ import annotations

from alembic import op

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.execute(
        """
        CREATE TABLE phigate.external_sign_outs (
            subject varchar(100) PRIMARY KEY,
            signed_out_at timestamptz NOT NULL
        )
        """
    )
    op.execute("CREATE INDEX ix_sessions_external_subject ON phigate.sessions (external_subject)")
    op.execute("RESET ROLE")
    op.execute("GRANT SELECT, INSERT, UPDATE ON phigate.external_sign_outs TO phigate_app")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.execute("DROP INDEX phigate.ix_sessions_external_subject")
    op.execute("DROP TABLE phigate.external_sign_outs")
    op.execute("RESET ROLE")
