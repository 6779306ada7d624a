"""Row-level security stops taking the application role's word for who is asking.

Until now the gateway set ``phigate.actor_id`` and ``phigate.row_scope`` itself, so
anyone holding its connection (a stolen DATABASE_URL, an injection) could read any care
team by setting them. Now:

* every session holds the SHA-256 of a secret that only its access tokens carry (the
  previous secret stays good for one access-token lifetime after a refresh); sessions
  also exist for OAuth2 clients' tokens and for tokens of an external identity provider;
* ``phigate.begin_request(session, secret, scopes, idle, touch)``, SECURITY DEFINER,
  checks that the session is live (and its user or client active), refreshes its idle
  clock, and records the row context of the current transaction (scope and actor) as a
  setting bound by an HMAC-SHA-256 to this backend and this transaction, under a key the
  application role cannot read;
* the scope comes from ``phigate.row_scope_ceilings`` (role or OAuth2 scope -> ALL,
  CARE_TEAM or NONE), which only the schema owner writes;
* ``phigate.row_context()`` verifies that setting; the policies read it once per
  statement (as an InitPlan) and decide rows with the rule written out (ALL: every row;
  CARE_TEAM: the caller's care teams and open break-glass episodes; otherwise none).
  ``phigate.patient_visible(id, context)`` states the same rule for other SQL to use.

A value the application role writes into the setting itself fails verification: no rows.

Audit entries gain ``break_glass_episode_id``: a read allowed only through an open
emergency episode names it, whatever purpose the request declared.

Revision ID: 0016
Revises: 0015
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# The bundled policy's row scopes (domain/policy.toml) when this revision was written.
CEILINGS = {
    "role:CLINICIAN": "CARE_TEAM",
    "role:NURSE": "CARE_TEAM",
    "role:BILLING": "ALL",
    "role:COMPLIANCE_OFFICER": "ALL",
    "role:AUDITOR": "ALL",
    "role:ANALYST": "NONE",
    "role:ADMIN": "NONE",
    "scope:patients:read": "ALL",
    "scope:patients:write": "ALL",
    "scope:baas:read": "NONE",
    "scope:baas:write": "NONE",
    "scope:breaches:read": "NONE",
    "scope:breaches:write": "NONE",
    "scope:audit:read": "NONE",
    "scope:analytics:read": "NONE",
}

SESSIONS = (
    "ALTER TABLE phigate.sessions ALTER COLUMN user_id DROP NOT NULL",
    "ALTER TABLE phigate.sessions ADD COLUMN client_id varchar(64)"
    " CONSTRAINT fk_sessions_client_id_oauth_clients"
    " REFERENCES phigate.oauth_clients (client_id) ON DELETE CASCADE",
    "ALTER TABLE phigate.sessions ADD COLUMN external_subject varchar(100)",
    "ALTER TABLE phigate.sessions ADD COLUMN external_role varchar(30)",
    "ALTER TABLE phigate.sessions ADD COLUMN secret_hash bytea",
    "ALTER TABLE phigate.sessions ADD COLUMN previous_secret_hash bytea",
    "ALTER TABLE phigate.sessions ADD COLUMN previous_secret_until timestamptz",
    "ALTER TABLE phigate.sessions ADD CONSTRAINT ck_sessions_one_subject CHECK ("
    " num_nonnulls(user_id, client_id, external_subject) = 1)",
    "CREATE INDEX ix_sessions_client_id ON phigate.sessions (client_id)",
)

TABLES = (
    """
    CREATE TABLE phigate.row_scope_ceilings (
        grantee varchar(60) CONSTRAINT pk_row_scope_ceilings PRIMARY KEY,
        row_scope varchar(10) NOT NULL
            CONSTRAINT ck_row_scope_ceilings_row_scope CHECK (row_scope IN ('ALL', 'CARE_TEAM', 'NONE'))
    )
    """,
    """
    CREATE TABLE phigate.row_context_key (
        id integer CONSTRAINT pk_row_context_key PRIMARY KEY
            CONSTRAINT ck_row_context_key_one_row CHECK (id = 1),
        inner_pad bytea NOT NULL,
        outer_pad bytea NOT NULL
    )
    """,
    # 64 random bytes from the server's strong random source (gen_random_uuid), padded
    # once into HMAC's inner and outer keys (RFC 2104).
    """
    DO $$
    DECLARE
        key bytea := sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid())
                            || uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()))
                     || sha256(uuid_send(gen_random_uuid()) || uuid_send(gen_random_uuid()));
        ipad bytea := key;
        opad bytea := key;
    BEGIN
        FOR i IN 0 .. 63 LOOP
            ipad := set_byte(ipad, i, get_byte(key, i) # 54);
            opad := set_byte(opad, i, get_byte(key, i) # 92);
        END LOOP;
        INSERT INTO phigate.row_context_key VALUES (1, ipad, opad);
    END
    $$
    """,
)

FUNCTIONS = (
    # The MAC of a row context for this backend and this transaction. Private: nobody
    # but the owner's own functions may call it.
    """
    CREATE FUNCTION phigate.row_context_mac(scope text, actor text) RETURNS text
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
        SELECT encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(
                   scope || '|' || actor || '|' || pg_backend_pid()::text || '|'
                   || (extract(epoch FROM transaction_timestamp()) * 1000000)::bigint::text,
                   'UTF8'))), 'hex')
        FROM phigate.row_context_key k WHERE k.id = 1
    $$
    """,
    "REVOKE ALL ON FUNCTION phigate.row_context_mac(text, text) FROM PUBLIC",
    # 'SCOPE:actor' when the transaction's row context verifies, else NULL (no rows).
    """
    CREATE FUNCTION phigate.row_context() RETURNS text
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog AS $$
    DECLARE
        raw text := current_setting('phigate.row_context', true);
        scope text;
        mac text;
        actor text;
    BEGIN
        IF raw IS NULL OR raw = '' THEN
            RETURN NULL;
        END IF;
        scope := split_part(raw, '|', 1);
        mac := split_part(raw, '|', 2);
        actor := substr(raw, length(scope) + length(mac) + 3);
        IF scope NOT IN ('ALL', 'CARE_TEAM', 'NONE') OR length(mac) <> 64
           OR mac IS DISTINCT FROM phigate.row_context_mac(scope, actor) THEN
            RETURN NULL;
        END IF;
        RETURN scope || ':' || actor;
    END
    $$
    """,
    # Whether a patient's rows are visible under a verified context.
    """
    CREATE FUNCTION phigate.patient_visible(pid uuid, context text) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE AS $$
        SELECT CASE split_part(context, ':', 1)
            WHEN 'ALL' THEN true
            WHEN 'CARE_TEAM' THEN
                EXISTS (
                    SELECT 1 FROM phigate.care_team_members m
                    WHERE m.patient_id = pid
                      AND m.user_id::text = substr(context, 11)
                      AND (m.ends_at IS NULL OR m.ends_at > now())
                )
                OR EXISTS (
                    SELECT 1 FROM phigate.break_glass_episodes b
                    WHERE b.patient_id = pid
                      AND b.user_id::text = substr(context, 11)
                      AND b.expires_at > now()
                )
            ELSE false
        END
    $$
    """,
    # Verify a session, refresh its idle clock, and set the transaction's row context.
    # No row when the session is not live: the caller answers 401.
    """
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
    """,
    "REVOKE ALL ON FUNCTION phigate.begin_request(uuid, text, text[], double precision,"
    " double precision) FROM PUBLIC",
)

CONTEXT = "(SELECT phigate.row_context())"
# The rule written out in each policy (with the table's column qualified: inside the
# sub-selects an unqualified `id` would be the episode's own), not called as a function: a SQL function holding
# sub-selects is not inlined, so the planner would see an opaque call, estimate it blindly
# and call it for every row of a sequential scan (19 ms for a 100-row page of 2,000
# patients, against an index scan's fraction of a millisecond). Written out, the scope is
# a per-statement constant (an InitPlan), ALL costs a comparison, and CARE_TEAM's
# sub-selects run only for callers who have that scope, on their indexes.
VISIBLE = (
    f"CASE split_part({CONTEXT}, ':', 1)"
    " WHEN 'ALL' THEN true"
    " WHEN 'CARE_TEAM' THEN"
    " EXISTS (SELECT 1 FROM phigate.care_team_members m WHERE m.patient_id = %(id)s"
    f" AND m.user_id = substr({CONTEXT}, 11)::uuid AND (m.ends_at IS NULL OR m.ends_at > now()))"
    " OR EXISTS (SELECT 1 FROM phigate.break_glass_episodes b WHERE b.patient_id = %(id)s"
    f" AND b.user_id = substr({CONTEXT}, 11)::uuid AND b.expires_at > now())"
    " ELSE false END"
)
CAN_CREATE = f"split_part({CONTEXT}, ':', 1) IN ('ALL', 'CARE_TEAM')"
BY_PATIENT = ("diagnoses", "consents", "breach_affected_patients", "legal_hold_events")

POLICIES = (
    "DROP POLICY patients_read ON phigate.patients",
    "DROP POLICY patients_create ON phigate.patients",
    "DROP POLICY patients_update ON phigate.patients",
    "DROP POLICY patients_delete ON phigate.patients",
    *(f"DROP POLICY {table}_by_patient ON phigate.{table}" for table in BY_PATIENT),
    "DROP FUNCTION phigate.patient_visible(uuid)",
    f"CREATE POLICY patients_read ON phigate.patients FOR SELECT USING ({VISIBLE % {'id': 'patients.id'}})",
    f"CREATE POLICY patients_create ON phigate.patients FOR INSERT WITH CHECK ({CAN_CREATE})",
    f"CREATE POLICY patients_update ON phigate.patients FOR UPDATE USING ({VISIBLE % {'id': 'patients.id'}})"
    f" WITH CHECK ({VISIBLE % {'id': 'patients.id'}})",
    f"CREATE POLICY patients_delete ON phigate.patients FOR DELETE USING ({VISIBLE % {'id': 'patients.id'}})",
    *(
        f"CREATE POLICY {table}_by_patient ON phigate.{table}"
        f" USING ({VISIBLE % {'id': f'{table}.patient_id'}})"
        f" WITH CHECK ({VISIBLE % {'id': f'{table}.patient_id'}})"
        for table in BY_PATIENT
    ),
)

GRANTS = (
    "GRANT SELECT ON phigate.row_scope_ceilings TO phigate_app",
    "REVOKE ALL ON phigate.row_context_key FROM phigate_app",
    "GRANT EXECUTE ON FUNCTION phigate.row_context() TO phigate_app",
    "GRANT EXECUTE ON FUNCTION phigate.patient_visible(uuid, text) TO phigate_app",
    "GRANT EXECUTE ON FUNCTION phigate.begin_request(uuid, text, text[], double precision,"
    " double precision) TO phigate_app",
)


def upgrade() -> None:
    op.execute("SET LOCAL ROLE phigate_owner")
    for statement in (*SESSIONS, *TABLES):
        op.execute(statement)
    for grantee, scope in CEILINGS.items():
        op.execute(f"INSERT INTO phigate.row_scope_ceilings VALUES ('{grantee}', '{scope}')")
    for statement in (*FUNCTIONS, *POLICIES):
        op.execute(statement)
    op.execute("RESET ROLE")
    # ALL TABLES grants of 0001 reached tables created since only by default privileges,
    # if any: state both tables' rights explicitly.
    for statement in GRANTS:
        op.execute(statement)
    op.execute("SET LOCAL ROLE phigate_audit_owner")
    op.execute("ALTER TABLE audit.events ADD COLUMN break_glass_episode_id uuid")
    op.execute(
        "CREATE INDEX ix_events_break_glass_episode_id ON audit.events (break_glass_episode_id)"
        " WHERE break_glass_episode_id IS NOT NULL"
    )
    op.execute("RESET ROLE")


def downgrade() -> None:
    raise RuntimeError("row contexts verified by the database cannot be downgraded")
