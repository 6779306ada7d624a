"""The console's endpoints: its page, sign-in and sign-out, what the session is, and the
library of registered operations the caller's role may run.

Sign-in follows exactly the rules of /auth/login (the same rate limits, lockout,
single-use codes and security events); what it hands the browser is a cookie, never a
token. The session endpoints behind the cookie are authenticated by
graph/http/authentication.py like any other request.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from cachetools import LRUCache
from graphql import GraphQLSchema
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from db import operations as operation_store
from db import sessions, users
from db.unit_of_work import RequestDatabase
from domain.policy import Policy
from domain.principals import Human
from domain.purposes import Purpose
from graph.enforcement.explain import explain
from graph.http.authentication import PRINCIPAL, REQUEST_DATABASE
from graph.http.console.cookie import (
    CookieSession,
    CookieSigner,
    clear_cookie_header,
    forgery_problem,
    secure_transport,
    set_cookie_header,
)
from graph.http.console.oidc import OidcConsole
from graph.http.console.page import ASSETS_PATH, STATIC_DIRECTORY, STATIC_PATH, ConsolePage
from graph.http.responses import NO_STORE, oauth_error
from graph.http.routes.auth import fail_closed, request_meta, sign_in_with_password
from graph.identity import Identity
from resolvers import auth

# Never offered in the console: an emergency is declared through the API, with a reason.
NOT_IN_CONSOLE = frozenset({Purpose.EMERGENCY})
_COMMENT = re.compile(r"^\s*#\s?(.*)$")


def _forbidden(reason: str, message: str) -> JSONResponse:
    return JSONResponse(
        {"error": "forbidden", "error_description": message, "reason": reason},
        status_code=403,
        headers=NO_STORE,
    )


def description_of(document: str) -> str:
    """The comment lines a document opens with: how registered operations describe
    themselves (GraphQL has no description for an operation)."""
    lines = []
    for line in document.splitlines():
        match = _COMMENT.match(line)
        if match is None:
            if line.strip():
                break
            continue
        lines.append(match.group(1).strip())
    return " ".join(line for line in lines if line)


class ConsoleEndpoints:
    def __init__(
        self,
        identity: Identity,
        *,
        policy: Policy,
        schema: GraphQLSchema,
        page: ConsolePage,
        assets_directory: Any,
        signer: CookieSigner,
        oidc: OidcConsole | None = None,
    ) -> None:
        self.identity = identity
        self.policy = policy
        self.schema = schema
        self.page = page
        self.assets_directory = assets_directory
        self.oidc = oidc
        self.signer = signer
        # Who may run a registered document, by its hash: a pure function of the
        # document and the policy, both fixed for the process's life.
        self._explained: LRUCache[str, list[Any]] = LRUCache(maxsize=1024)

    async def show(self, _: Request) -> Response:
        return self.page.response()

    @fail_closed
    async def sign_in(self, request: Request) -> Response:
        ctx = self.identity.context(request_meta(request))
        problem = forgery_problem(request.scope)
        if problem is not None:
            return _forbidden(problem, "Sign in from the console's own page.")
        if self.oidc is not None:
            return _forbidden(
                "SIGN_IN_AT_PROVIDER",
                "This gateway signs in to the console at your organisation's identity"
                " provider: use its button on the console's page.",
            )
        if not secure_transport(request.scope):
            return oauth_error(
                400,
                "invalid_request",
                "The console signs in over HTTPS only (or on this machine's loopback"
                " address): its session cookie must not cross a network in the clear.",
            )
        session = await sign_in_with_password(self.identity, ctx, request, auth.console_login)
        if isinstance(session, Response):
            return session
        value = self.signer.value(CookieSession(session.session_id, session.secret, session.actor))
        max_age = int(self.identity.config.session.absolute.total_seconds())
        return JSONResponse(
            {"signedIn": True},
            headers={**NO_STORE, "Set-Cookie": set_cookie_header(value, max_age=max_age)},
        )

    @fail_closed
    async def describe(self, request: Request) -> Response:
        """Who is signed in, in what role, the purposes the role may declare, and how long
        the session has left (idle and absolute). Asking is not activity."""
        principal = request.scope["state"][PRINCIPAL]
        if not isinstance(principal, Human) or principal.session_id is None:
            return oauth_error(400, "invalid_request", "Only a console session is described.")
        db: RequestDatabase = request.scope["state"][REQUEST_DATABASE]
        row = await sessions.get_session(db, uuid.UUID(principal.session_id))
        if row is None:
            return oauth_error(401, "session_ended", "The console session has ended.")
        username = principal.user_id  # an identity provider's subject ("oidc:…")
        if row.user_id is not None:
            user = await users.by_id(db, row.user_id)
            if user is None:
                return oauth_error(401, "session_ended", "The console session has ended.")
            username = user.username
        now = datetime.now(UTC)
        policy = self.identity.config.session
        idle_left = (row.last_seen_at + policy.idle - now).total_seconds()
        absolute_left = (row.expires_at - now).total_seconds()
        purposes = sorted(
            purpose.value
            for purpose in self.policy.grant(principal).purposes
            if purpose not in NOT_IN_CONSOLE
        )
        return JSONResponse(
            {
                "username": username,
                "role": principal.role.value,
                "purposes": purposes,
                "idleSeconds": int(policy.idle.total_seconds()),
                "idleRemainingSeconds": max(0, int(min(idle_left, absolute_left))),
                "absoluteRemainingSeconds": max(0, int(absolute_left)),
            },
            headers=NO_STORE,
        )

    @fail_closed
    async def sign_out(self, request: Request) -> Response:
        principal = request.scope["state"][PRINCIPAL]
        if isinstance(principal, Human):
            await auth.logout(self.identity.context(request_meta(request)), principal)
        return Response(status_code=204, headers={**NO_STORE, "Set-Cookie": clear_cookie_header()})

    @fail_closed
    async def operations(self, request: Request) -> Response:
        """The registered operations the caller's role may run, by the policy in force:
        their names, descriptions and documents. Documents clients registered
        automatically (by hash) are not listed: they are other callers' queries."""
        principal = request.scope["state"][PRINCIPAL]
        if not isinstance(principal, Human):
            return oauth_error(400, "invalid_request", "The library is for console users.")
        who = f"role {principal.role.value}"
        listed = []
        for entry in await operation_store.registered(self.identity.engine):
            explained = self._explained.get(entry["sha256"])
            if explained is None:
                explained = explain(self.schema, self.policy, entry["document"])
                self._explained[entry["sha256"]] = explained
            for operation in explained:
                purposes = sorted(
                    {
                        verdict.purpose
                        for verdict in operation.verdicts
                        if verdict.who == who and verdict.allowed and verdict.purpose
                    }
                    - {purpose.value for purpose in NOT_IN_CONSOLE}
                )
                if purposes:
                    listed.append(
                        {
                            "name": operation.operation or "(anonymous)",
                            "description": description_of(entry["document"]),
                            "purposes": purposes,
                            "document": entry["document"],
                        }
                    )
        listed.sort(key=lambda item: item["name"])
        return JSONResponse({"operations": listed}, headers=NO_STORE)

    def routes(self) -> list[BaseRoute]:
        def method(name: str) -> Callable[[Request], Any]:
            return getattr(self, name)  # type: ignore[no-any-return]

        return [
            Route("/console", method("show"), methods=["GET"]),
            Route("/console/session", method("sign_in"), methods=["POST"]),
            Route("/console/session", method("describe"), methods=["GET"]),
            Route("/console/session", method("sign_out"), methods=["DELETE"]),
            Route("/console/operations", method("operations"), methods=["GET"]),
            *(
                [
                    Route("/console/oidc/start", self.oidc.start, methods=["GET"]),
                    Route("/console/oidc/callback", self.oidc.callback, methods=["GET"]),
                ]
                if self.oidc is not None
                else []
            ),
            Mount(STATIC_PATH, app=StaticFiles(directory=STATIC_DIRECTORY), name="console-static"),
            Mount(
                ASSETS_PATH,
                app=StaticFiles(directory=self.assets_directory, check_dir=False),
                name="console-assets",
            ),
        ]
