"""`phigate user ...`, `phigate client ...`, `phigate keys ...`, `phigate demo-code`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import pyotp

from db.engine import DatabaseTarget, create_engine
from domain.roles import Role, ServiceScope
from graph.identity import identity_config
from graph.settings import Settings
from resolvers import accounts
from resolvers.auth import AuthContext
from resolvers.context import RequestMeta
from resolvers.tokens import TokenService


def operator() -> str:
    """Who is running the command, for the audit trail."""
    try:
        return f"cli:{getpass.getuser()}"[:100]
    except (KeyError, OSError):
        return "cli:unknown"


def run_with_context(
    settings: Settings, target: DatabaseTarget, work: Callable[[AuthContext], Awaitable[Any]]
) -> Any:
    async def main() -> Any:
        engine = create_engine(target, pool_size=1, max_overflow=0, application_name="phigate-cli")
        config = identity_config(settings)
        tokens = TokenService(
            engine,
            envelope=config.envelope,
            issuer=config.issuer,
            audience=config.audience,
            access_ttl=config.access_ttl,
        )
        now = datetime.now(UTC)
        ctx = AuthContext(
            engine=engine,
            config=config,
            tokens=tokens,
            meta=RequestMeta(request_id=f"cli-{now:%Y%m%dT%H%M%S}"),
            now=now,
        )
        try:
            return await work(ctx)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def read_password() -> str:
    if sys.stdin.isatty():
        first = getpass.getpass("Password: ")
        if first != getpass.getpass("Again: "):
            raise ValueError("the two passwords differ")
        return first
    return sys.stdin.readline().rstrip("\n")


def user_add(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    password = read_password()

    def create(ctx: AuthContext) -> Awaitable[accounts.EnrolledUser]:
        return accounts.create_user(
            ctx, actor=operator(), username=args.username, role=Role(args.role), password=password
        )

    enrolled = run_with_context(settings, target, create)
    return {
        "user_id": enrolled.user_id,
        "username": enrolled.username,
        "role": enrolled.role,
        "otpauth_uri": enrolled.provisioning_uri,
    }


def user_unlock(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    run_with_context(
        settings,
        target,
        lambda ctx: accounts.unlock_user(ctx, actor=operator(), username=args.username),
    )
    return {"unlocked": args.username}


def user_disable(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    run_with_context(
        settings,
        target,
        lambda ctx: accounts.disable_user(ctx, actor=operator(), username=args.username),
    )
    return {"disabled": args.username, "sessions": "revoked"}


def user_sign_out(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    run_with_context(
        settings,
        target,
        lambda ctx: accounts.sign_out_user(ctx, actor=operator(), username=args.username),
    )
    return {"signed_out": args.username, "sessions": "revoked"}


def user_reset_mfa(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    enrolled = run_with_context(
        settings,
        target,
        lambda ctx: accounts.reset_mfa(ctx, actor=operator(), username=args.username),
    )
    return {
        "username": enrolled.username,
        "otpauth_uri": enrolled.provisioning_uri,
        "sessions": "revoked",
    }


def client_add(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    def register(ctx: AuthContext) -> Awaitable[accounts.RegisteredClient]:
        return accounts.create_client(
            ctx, actor=operator(), name=args.name, scopes=args.scopes, allow_ip=args.allow_ip
        )

    registered = run_with_context(settings, target, register)
    return {
        "client_id": registered.client_id,
        "client_secret": registered.client_secret,
        "scopes": registered.scopes,
        "note": "the secret is shown once; store it in your secret manager",
    }


def user_list_action(
    settings: Settings, target: DatabaseTarget, _args: argparse.Namespace
) -> dict[str, Any]:
    return {"users": run_with_context(settings, target, accounts.list_users)}


def client_list(
    settings: Settings, target: DatabaseTarget, _args: argparse.Namespace
) -> dict[str, Any]:
    return {"clients": run_with_context(settings, target, accounts.list_clients)}


def client_disable(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    run_with_context(
        settings,
        target,
        lambda ctx: accounts.disable_client(ctx, actor=operator(), client_id=args.client_id),
    )
    return {"disabled": args.client_id, "tokens": "no longer accepted"}


def client_enable(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    run_with_context(
        settings,
        target,
        lambda ctx: accounts.enable_client(ctx, actor=operator(), client_id=args.client_id),
    )
    return {"enabled": args.client_id}


def client_rotate_secret(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    secret = run_with_context(
        settings,
        target,
        lambda ctx: accounts.rotate_client_secret(
            ctx,
            actor=operator(),
            client_id=args.client_id,
            overlap_minutes=args.overlap_minutes,
        ),
    )
    return {
        "client_id": args.client_id,
        "client_secret": secret,
        "previous_secret_works_for_minutes": args.overlap_minutes,
        "note": "the secret is shown once; store it in your secret manager",
    }


def keys_rotate_signing(
    settings: Settings, target: DatabaseTarget, _: argparse.Namespace
) -> dict[str, Any]:
    async def rotate(ctx: AuthContext) -> str:
        from domain.security_events import Outcome, SecurityEvent
        from resolvers.auth import flush_events

        kid = await ctx.tokens.rotate(now=ctx.now)
        ctx.record(
            SecurityEvent.SIGNING_KEY_ROTATED,
            Outcome.ALLOWED,
            actor_id=operator(),
            actor_kind="SYSTEM",
            reason=f"KID:{kid}"[:60],
        )
        await flush_events(ctx)
        return kid

    kid = run_with_context(settings, target, rotate)
    return {"signing_kid": kid, "previous_keys": "verify until their tokens expire"}


def keys_rotate(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    """A new key-encryption key version (development key file), or the one the operator
    added to PHIGATE_MASTER_KEY; then every data key re-wrapped under it, online."""
    from db.key_rotation import rewrap_all, stale_counts
    from domain.security_events import Outcome, SecurityEvent
    from graph.keys import add_development_key_version, key_provider
    from resolvers.auth import flush_events

    from_environment = bool(settings.master_key or settings.kms_wrapped_keks)
    if not args.resume and not from_environment:
        add_development_key_version(settings)
    version = key_provider(settings).current_version

    def report(name: str, done: int) -> None:
        print(json.dumps({"rewrapping": name, "done": done}), file=sys.stderr, flush=True)

    async def rotate(ctx: AuthContext) -> dict[str, Any]:
        if from_environment and not any((await stale_counts(ctx.engine, version)).values()):
            raise ValueError(
                f"every value is already under key version {version}: add a new version"
                " to PHIGATE_MASTER_KEY (`1:<old>,2:<new>`) or PHIGATE_KMS_WRAPPED_KEKS first"
            )
        try:
            await _every_gateway_holds(
                ctx, version, wait=args.wait_seconds, from_environment=from_environment
            )
        except ValueError:
            # A refused rotation is on the record too, with why.
            ctx.record(
                SecurityEvent.DATA_KEYS_REWRAPPED,
                Outcome.DENIED,
                actor_id=operator(),
                actor_kind="SYSTEM",
                reason=f"GATEWAYS_LACK_KEK:{version}",
            )
            await flush_events(ctx)
            raise
        done = await rewrap_all(ctx.engine, ctx.config.envelope, batch=args.batch, progress=report)
        ctx.record(
            SecurityEvent.DATA_KEYS_REWRAPPED,
            Outcome.ALLOWED,
            actor_id=operator(),
            actor_kind="SYSTEM",
            reason=f"KEK:{version}",
        )
        await flush_events(ctx)
        remaining = await stale_counts(ctx.engine, version)
        return {"key_version": version, "rewrapped": done, "remaining": remaining}

    return run_with_context(settings, target, rotate)


async def _every_gateway_holds(
    ctx: AuthContext, version: int, *, wait: float, from_environment: bool
) -> None:
    """Re-wrapping to a version a running gateway does not hold would take it offline for
    every encrypted value and every sign-in until it restarted. A gateway reading the
    development key file picks a new version up within a heartbeat; one configured from
    the environment must be restarted with it. So: wait for every live gateway to report
    the version, or refuse and change nothing."""
    from db import gateways

    deadline = asyncio.get_running_loop().time() + wait
    while True:
        live = await gateways.live(ctx.engine, now=datetime.now(UTC))
        lacking = [row for row in live if version not in row.kek_versions]
        if not lacking:
            return
        if asyncio.get_running_loop().time() >= deadline:
            where = ", ".join(sorted({f"{row.host}:{row.pid}" for row in lacking})[:10])
            how = (
                f"restart them with key version {version} in PHIGATE_MASTER_KEY"
                " (or PHIGATE_KMS_WRAPPED_KEKS)"
                if from_environment
                else "they reload the key file every few seconds: check they are healthy"
            )
            raise ValueError(
                f"{len(lacking)} running gateway(s) do not hold key version {version} yet"
                f" ({where}); nothing was re-wrapped: {how}, then run `phigate keys rotate"
                f"{'' if from_environment else ' --resume'}` again"
            )
        await asyncio.sleep(1)


def keys_kms_new(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    """A new KEK generated by KMS, shown only as its KMS ciphertext."""
    from db.kms import kms_client, new_wrapped_kek

    blob = new_wrapped_kek(kms_client(settings.kms_region), args.key_id, args.version)
    return {
        "version": args.version,
        "wrapped_kek": blob,
        "next": f"append {args.version}:<wrapped_kek> to PHIGATE_KMS_WRAPPED_KEKS, restart,"
        " then run `phigate keys rotate`",
    }


def demo_code(
    settings: Settings, target: DatabaseTarget, args: argparse.Namespace
) -> dict[str, Any]:
    from db.demo import demo_totp_secret, demo_username

    roles = {demo_username(role.value): role for role in Role}
    if settings.is_production or args.username not in roles:
        raise ValueError("demo-code works only for the demo accounts, and never in production")
    return {
        "username": args.username,
        "totp": pyotp.TOTP(demo_totp_secret(roles[args.username].value)).now(),
    }


def seed_demo_users(settings: Settings, target: DatabaseTarget) -> list[dict[str, str]]:
    from db.demo import DEMO_PASSWORD, demo_totp_secret, demo_username
    from domain.errors import Conflict

    async def seed(ctx: AuthContext) -> list[dict[str, str]]:
        created = []
        for role in Role:
            username = demo_username(role.value)
            with contextlib.suppress(Conflict):  # already seeded
                await accounts.create_user(
                    ctx,
                    actor=operator(),
                    username=username,
                    role=role,
                    password=DEMO_PASSWORD,
                    demo=True,
                    totp_secret=demo_totp_secret(role.value),  # deterministic: demo only
                )
            ctx.events.clear()
            secret = demo_totp_secret(role.value)
            created.append({"username": username, "role": role.value, "totp_secret": secret})
        await _demo_care_teams(ctx)
        return created

    return run_with_context(settings, target, seed)


# Demo clinicians and nurses look after some demo patients (care teams scope their rows).
DEMO_CARE_TEAMS = {Role.CLINICIAN: range(1, 11), Role.NURSE: range(1, 6)}


async def _demo_care_teams(ctx: AuthContext) -> None:
    from db import users
    from db.demo import demo_username, seed_care_team
    from db.unit_of_work import RequestDatabase

    db = RequestDatabase(ctx.engine)
    try:
        found = {
            role: await users.by_username(db, demo_username(role.value)) for role in DEMO_CARE_TEAMS
        }
    finally:
        await db.close()
    async with ctx.engine.begin() as connection:
        for role, patients in DEMO_CARE_TEAMS.items():
            user = found[role]
            if user is not None:
                await seed_care_team(connection, user_id=user.id, patients=patients)


def add_parsers(commands: Any, handler: Callable[..., int]) -> None:
    user = commands.add_parser("user", help="manage workforce accounts (TOTP is mandatory)")
    user_commands = user.add_subparsers(dest="user_command", required=True, metavar="ACTION")
    add = user_commands.add_parser(
        "add", help="create a user; the password is read from stdin; prints the otpauth:// URI"
    )
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[role.value for role in Role])
    add.set_defaults(handler=handler, action=user_add)
    user_list = user_commands.add_parser("list", help="every account: role, status, last login")
    user_list.set_defaults(handler=handler, action=user_list_action)
    for name, action, text in (
        ("unlock", user_unlock, "clear a lockout after failed logins"),
        ("reset-mfa", user_reset_mfa, "issue a new TOTP secret and end the user's sessions"),
        ("disable", user_disable, "disable the account and end its sessions"),
        ("sign-out", user_sign_out, "end every session of the user (tokens and console)"),
    ):
        sub = user_commands.add_parser(name, help=text)
        sub.add_argument("username")
        sub.set_defaults(handler=handler, action=action)

    client = commands.add_parser("client", help="manage OAuth2 clients (other services)")
    client_commands = client.add_subparsers(dest="client_command", required=True, metavar="ACTION")
    add_client = client_commands.add_parser(
        "add", help="register a client; prints its id and secret once"
    )
    add_client.add_argument("name")
    add_client.add_argument(
        "--scopes", nargs="+", required=True, choices=[scope.value for scope in ServiceScope]
    )
    add_client.add_argument(
        "--allow-ip", nargs="*", default=[], metavar="CIDR", help="only these addresses may use it"
    )
    add_client.set_defaults(handler=handler, action=client_add)
    listing = client_commands.add_parser("list", help="every client: id, name, scopes, status")
    listing.set_defaults(handler=handler, action=client_list)
    for name, action, text in (
        ("disable", client_disable, "disable a client; its tokens stop working at once"),
        ("enable", client_enable, "enable a disabled client (it requests new tokens)"),
    ):
        sub = client_commands.add_parser(name, help=text)
        sub.add_argument("client_id")
        sub.set_defaults(handler=handler, action=action)
    rotate_secret = client_commands.add_parser(
        "rotate-secret", help="a new secret, printed once; the old one works for --overlap-minutes"
    )
    rotate_secret.add_argument("client_id")
    rotate_secret.add_argument(
        "--overlap-minutes",
        type=int,
        default=60,
        help="how long the previous secret keeps working (default 60; 0: not at all)",
    )
    rotate_secret.set_defaults(handler=handler, action=client_rotate_secret)

    keys = commands.add_parser("keys", help="manage token-signing and encryption keys")
    key_commands = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    rotate = key_commands.add_parser(
        "rotate-signing",
        help="start signing with a new key; old tokens stay valid until they expire",
    )
    rotate.set_defaults(handler=handler, action=keys_rotate_signing)
    rotate_kek = key_commands.add_parser(
        "rotate",
        help="new key-encryption key version; re-wrap every data key under it, online",
    )
    rotate_kek.add_argument("--batch", type=int, default=500, help="rows per transaction")
    rotate_kek.add_argument(
        "--wait-seconds",
        type=float,
        default=30,
        help="how long to wait for every running gateway to hold the new version (default 30)",
    )
    rotate_kek.add_argument(
        "--resume", action="store_true", help="finish an interrupted run without a new version"
    )
    rotate_kek.set_defaults(handler=handler, action=keys_rotate, needs_owner=True)
    kms_new = key_commands.add_parser(
        "kms-new", help="have AWS KMS generate a new KEK version; prints its ciphertext only"
    )
    kms_new.add_argument("--key-id", required=True, help="the KMS key (ARN or alias)")
    kms_new.add_argument("--version", type=int, required=True, help="the KEK version it becomes")
    kms_new.set_defaults(handler=handler, action=keys_kms_new)

    code = commands.add_parser(
        "demo-code", help="print the current TOTP code of a demo account (development only)"
    )
    code.add_argument("username")
    code.set_defaults(handler=handler, action=demo_code)


def emit(payload: dict[str, Any]) -> None:
    print(json.dumps(payload, indent=2))
