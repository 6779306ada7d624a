"""Console sessions: bound to the console, and idle-limited whoever vouched for them.

* ``sessions.console``: true for a session the analyst console opened (its browser holds
  the session's id and secret in an HttpOnly cookie, and no token names it). The
  database's session check, ``phigate.begin_request``, now takes which kind of
  credential is presented and refuses the other kind: an access token carries its
  session's secret in a claim anyone holding the token can read, which must not work
  as a console cookie (that would outlive the token's expiry), and a console session
  must not be usable as a token's.
* The idle limit now holds for sessions an external identity provider vouched for, as
  for local users' (until now those lived as long as the API token that opened them,
  at most five minutes; the console signs people in there for a working day). OAuth2
  clients' sessions (machines) still have no idle limit: they live as long as their
  token.

Revision ID: 0023
Revises: 0022
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None

OLD_SIGNATURE = "uuid, text, text[], double precision, double precision"
NEW_SIGNATURE = "uuid, text, text[], double precision, double precision, boolean"

UPGRADED = """
    CREATE FUNCTION phigate.begin_request(
        p_session uuid, p_secret text, p_scopes text[],
        p_idle_seconds double precision, p_touch_seconds double precision,
        p_console boolean DEFAULT false
    ) RETURNS TABLE (
        subject_kind text, actor text, role text, granted_scopes text[], row_scope text,
        episode_ids uuid[], episode_patients uuid[]
    )
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
    DECLARE
        s phigate.sessions%ROWTYPE;
        presented bytea := sha256(convert_to(coalesce(p_secret, ''), 'UTF8'));
        scope text := 'NONE';
        user_role text;
        client_scopes text[];
        rank constant text[] := ARRAY['NONE', 'CARE_TEAM', 'ALL'];
    BEGIN
        SELECT * INTO s FROM phigate.sessions WHERE id = p_session;
        -- NULL-safe throughout: a comparison with a missing hash must refuse, not pass.
        IF NOT FOUND OR s.revoked_at IS NOT NULL OR s.expires_at <= now()
           OR NOT coalesce(
               s.secret_hash = presented
               OR (s.previous_secret_hash = presented AND s.previous_secret_until > now()),
               false) THEN
            RETURN;
        END IF;
        -- A session answers only the kind of credential it was opened for: an access
        -- token's claims (readable by whoever holds the token) are no console cookie,
        -- and a console cookie is no token.
        IF s.console IS DISTINCT FROM p_console THEN
            RETURN;
        END IF;
        -- People's sessions end after the idle limit, whoever vouched for them: a local
        -- login, or an external identity provider's (the console's sign-in there lasts
        -- hours, not the five minutes of an API token's session).
        IF s.client_id IS NULL
           AND NOT coalesce(s.last_seen_at > now() - make_interval(secs => p_idle_seconds), false)
        THEN
            RETURN;
        END IF;
        IF s.user_id IS NOT NULL THEN
            SELECT u.role INTO user_role FROM phigate.users u
            WHERE u.id = s.user_id AND u.status = 'ACTIVE';
            IF NOT FOUND THEN
                RETURN;
            END IF;
            SELECT c.row_scope INTO scope FROM phigate.row_scope_ceilings c
            WHERE c.grantee = 'role:' || user_role;
            subject_kind := 'USER';
            actor := s.user_id::text;
            role := user_role;
        ELSIF s.client_id IS NOT NULL THEN
            SELECT c.scopes INTO client_scopes FROM phigate.oauth_clients c
            WHERE c.client_id = s.client_id AND c.status = 'ACTIVE';
            IF NOT FOUND THEN
                RETURN;
            END IF;
            granted_scopes := ARRAY(
                SELECT unnest(client_scopes) INTERSECT SELECT unnest(coalesce(p_scopes, '{}'))
            );
            SELECT coalesce(rank[max(array_position(rank, c.row_scope))], 'NONE') INTO scope
            FROM phigate.row_scope_ceilings c
            WHERE c.grantee = ANY (ARRAY(SELECT 'scope:' || g FROM unnest(granted_scopes) g));
            subject_kind := 'SERVICE';
            actor := s.client_id;
        ELSE
            SELECT c.row_scope INTO scope FROM phigate.row_scope_ceilings c
            WHERE c.grantee = 'role:' || s.external_role;
            subject_kind := 'EXTERNAL';
            actor := s.external_subject;
            role := s.external_role;
        END IF;
        row_scope := coalesce(scope, 'NONE');
        IF s.last_seen_at < now() - make_interval(secs => p_touch_seconds) THEN
            UPDATE phigate.sessions SET last_seen_at = now() WHERE id = s.id;
        END IF;
        PERFORM set_config(
            'phigate.row_context',
            row_scope || '|' || phigate.row_context_mac(row_scope, actor) || '|' || actor,
            true
        );
        IF row_scope = 'CARE_TEAM' AND s.user_id IS NOT NULL THEN
            SELECT coalesce(array_agg(b.id ORDER BY b.opened_at), '{}'),
                   coalesce(array_agg(b.patient_id ORDER BY b.opened_at), '{}')
            INTO episode_ids, episode_patients
            FROM phigate.break_glass_episodes b
            WHERE b.user_id = s.user_id AND b.expires_at > now() AND b.patient_id IS NOT NULL
              AND NOT EXISTS (
                  SELECT 1 FROM phigate.care_team_members m
                  WHERE m.patient_id = b.patient_id AND m.user_id = b.user_id
                    AND (m.ends_at IS NULL OR m.ends_at > now())
              );
        ELSE
            episode_ids := '{}';
            episode_patients := '{}';
        END IF;
        RETURN NEXT;
    END
    $$
"""

PREVIOUS = """
    CREATE FUNCTION phigate.begin_request(
        p_session uuid, p_secret text, p_scopes text[],
        p_idle_seconds double precision, p_touch_seconds double precision
    ) RETURNS TABLE (
        subject_kind text, actor text, role text, granted_scopes text[], row_scope text,
        episode_ids uuid[], episode_patients uuid[]
    )
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
    DECLARE
        s phigate.sessions%ROWTYPE;
        presented bytea := sha256(convert_to(coalesce(p_secret, ''), 'UTF8'));
        scope text := 'NONE';
        user_role text;
        client_scopes text[];
        rank constant text[] := ARRAY['NONE', 'CARE_TEAM', 'ALL'];
    BEGIN
        SELECT * INTO s FROM phigate.sessions WHERE id = p_session;
        -- NULL-safe throughout: a comparison with a missing hash must refuse, not pass.
        IF NOT FOUND OR s.revoked_at IS NOT NULL OR s.expires_at <= now()
           OR NOT coalesce(
               s.secret_hash = presented
               OR (s.previous_secret_hash = presented AND s.previous_secret_until > now()),
               false) THEN
            RETURN;
        END IF;
        IF s.user_id IS NOT NULL THEN
            IF NOT coalesce(s.last_seen_at > now() - make_interval(secs => p_idle_seconds), false) THEN
                RETURN;
            END IF;
            SELECT u.role INTO user_role FROM phigate.users u
            WHERE u.id = s.user_id AND u.status = 'ACTIVE';
            IF NOT FOUND THEN
                RETURN;
            END IF;
            SELECT c.row_scope INTO scope FROM phigate.row_scope_ceilings c
            WHERE c.grantee = 'role:' || user_role;
            subject_kind := 'USER';
            actor := s.user_id::text;
            role := user_role;
        ELSIF s.client_id IS NOT NULL THEN
            SELECT c.scopes INTO client_scopes FROM phigate.oauth_clients c
            WHERE c.client_id = s.client_id AND c.status = 'ACTIVE';
            IF NOT FOUND THEN
                RETURN;
            END IF;
            granted_scopes := ARRAY(
                SELECT unnest(client_scopes) INTERSECT SELECT unnest(coalesce(p_scopes, '{}'))
            );
            SELECT coalesce(rank[max(array_position(rank, c.row_scope))], 'NONE') INTO scope
            FROM phigate.row_scope_ceilings c
            WHERE c.grantee = ANY (ARRAY(SELECT 'scope:' || g FROM unnest(granted_scopes) g));
            subject_kind := 'SERVICE';
            actor := s.client_id;
        ELSE
            SELECT c.row_scope INTO scope FROM phigate.row_scope_ceilings c
            WHERE c.grantee = 'role:' || s.external_role;
            subject_kind := 'EXTERNAL';
            actor := s.external_subject;
            role := s.external_role;
        END IF;
        row_scope := coalesce(scope, 'NONE');
        IF s.last_seen_at < now() - make_interval(secs => p_touch_seconds) THEN
            UPDATE phigate.sessions SET last_seen_at = now() WHERE id = s.id;
        END IF;
        PERFORM set_config(
            'phigate.row_context',
            row_scope || '|' || phigate.row_context_mac(row_scope, actor) || '|' || actor,
            true
        );
        IF row_scope = 'CARE_TEAM' AND s.user_id IS NOT NULL THEN
            SELECT coalesce(array_agg(b.id ORDER BY b.opened_at), '{}'),
                   coalesce(array_agg(b.patient_id ORDER BY b.opened_at), '{}')
            INTO episode_ids, episode_patients
            FROM phigate.break_glass_episodes b
            WHERE b.user_id = s.user_id AND b.expires_at > now() AND b.patient_id IS NOT NULL
              AND NOT EXISTS (
                  SELECT 1 FROM phigate.care_team_members m
                  WHERE m.patient_id = b.patient_id AND m.user_id = b.user_id
                    AND (m.ends_at IS NULL OR m.ends_at > now())
              );
        ELSE
            episode_ids := '{}';
            episode_patients := '{}';
        END IF;
        RETURN NEXT;
    END
    $$
"""


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.add_column(
        "sessions",
        sa.Column("console", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        schema="phigate",
    )
    op.execute(f"DROP FUNCTION phigate.begin_request({OLD_SIGNATURE})")
    op.execute(UPGRADED)
    op.execute(f"REVOKE ALL ON FUNCTION phigate.begin_request({NEW_SIGNATURE}) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION phigate.begin_request({NEW_SIGNATURE}) TO phigate_app")
    op.execute("RESET ROLE")


def downgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    op.execute(f"DROP FUNCTION phigate.begin_request({NEW_SIGNATURE})")
    op.execute(PREVIOUS)
    op.execute(f"REVOKE ALL ON FUNCTION phigate.begin_request({OLD_SIGNATURE}) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION phigate.begin_request({OLD_SIGNATURE}) TO phigate_app")
    # Without the column a console session would pass for a token's: end them first.
    op.execute(
        "UPDATE phigate.sessions SET revoked_at = now(), revoked_reason = 'DOWNGRADE'"
        " WHERE console AND revoked_at IS NULL"
    )
    op.drop_column("sessions", "console", schema="phigate")
    op.execute("RESET ROLE")
