"""Checklist C6, "Secrets never in code": search the repository and its CI/CD
configuration for hard-coded secrets, and check that every secret phigate reads can come
from a file (``NAME_FILE``, Docker and Kubernetes secrets) instead of the environment.

The search is detect-secrets (Yelp) over every file git tracks, with all of its
detectors and without the filters that drop findings unseen (in-line escapes, lines with
a call on them, skips by file name): the only exceptions are the ones listed here, each with its reason, and each must
still match a finding. Failures name the file, line and kind of secret, never its value.
"""

from __future__ import annotations

import ast
import base64
import json
import os
import re
import secrets
import string
import subprocess
import traceback
from dataclasses import dataclass
from pathlib import Path

import pytest
from detect_secrets import SecretsCollection
from detect_secrets.settings import default_settings

from db.crypto import BlindIndex
from graph.keys import blind_index, development_key_file, key_provider
from graph.settings import Settings, SettingsError

REPO = Path(__file__).resolve().parents[2]
THIS_FILE = Path(__file__).resolve().relative_to(REPO).as_posix()

# detect-secrets filters that would drop something without saying so: in-line allowlist
# comments (they would bypass the list below), every line with a call or subscript on it
# (`engine = create_engine("postgresql://app:<password>@…")` would go unseen), and skips
# by file name (lock files, swagger files, extensions taken for binary: every tracked
# file must be text instead). The canaries below check that each stays off.
DISABLED_FILTERS = (
    "detect_secrets.filters.allowlist.is_line_allowlisted",
    "detect_secrets.filters.heuristic.is_indirect_reference",
    "detect_secrets.filters.heuristic.is_non_text_file",
    "detect_secrets.filters.heuristic.is_lock_file",
    "detect_secrets.filters.heuristic.is_swagger_file",
)


@dataclass(frozen=True)
class Allowed:
    """A finding that is deliberate and not a secret: ``line`` is a regular expression
    searched in the flagged line (it names the line, not the value)."""

    path: str
    kind: str
    line: str
    reason: str


ALLOWED_FINDINGS = (
    Allowed(
        "db/demo.py",
        "Secret Keyword",
        r"^DEMO_PASSWORD = ",
        "the demo accounts' passphrase, published on purpose; demo data is refused in "
        "production and reported by `phigate check`",
    ),
    Allowed(
        "README.md",
        "Secret Keyword",
        r"synthetic demo passphrase",
        "the README's worked example logs in with the published demo passphrase",
    ),
    Allowed(
        "tests/identity.py",
        "Secret Keyword",
        r"^PASSWORD = \"synthetic test passphrase",
        "the passphrase of the users the tests create",
    ),
    Allowed(
        "tests/e2e/test_no_phi_leaks.py",
        "Secret Keyword",
        r"\"username\": \"canary\.username\"",
        "a canary password the leak test then looks for in the logs",
    ),
    Allowed(
        "tests/e2e/test_checklist_rate_limits.py",
        "Secret Keyword",
        r"\"password\": \"not the passphrase\"",
        "a wrong password the rate-limit test logs in with",
    ),
    Allowed(
        "tests/db/test_engine.py",
        "Basic Auth Credentials",
        r"@db\.example\.test:5432/phigate\?sslmode=verify-full",
        "a synthetic URL (reserved .test domain) for parsing TLS options",
    ),
    Allowed(
        "tests/e2e/test_cli.py",
        "Basic Auth Credentials",
        r"^\s*\(\"DATABASE_URL\", \"mysql",
        "a synthetic non-PostgreSQL URL the CLI must refuse",
    ),
    Allowed(
        "tests/e2e/test_cli.py",
        "Basic Auth Credentials",
        r"@127\.0\.0\.1:1/phigate\"\)$",
        "a synthetic URL to a closed local port",
    ),
    Allowed(
        "tests/domain/test_audit_digest.py",
        "Hex High Entropy String",
        r"^\s+== \"[0-9a-f]{64}\"$",
        "golden SHA-256 digests of synthetic audit entries: the bytes the chain's format"
        " must keep producing",
    ),
    Allowed(
        "tests/e2e/test_checklist_secrets.py",
        "Secret Keyword",
        r"^    .PHIGATE_OIDC_CONSOLE_CLIENT_SECRET.: .oidc_console_client_secret.,$",
        "a variable's name and the setting it fills: this test's own table of secrets",
    ),
    Allowed(
        "tests/graph/test_demo_population.py",
        "Hex High Entropy String",
        r'^NAMED_FINGERPRINT = "[0-9a-f]{64}"$',
        "SHA-256 of the first 50 synthetic demo patients' rows, pinning that they stay the same",
    ),
    Allowed(
        "tests/domain/test_lifecycles.py",
        "Hex High Entropy String",
        r"document_sha256\(b\"\"\) == ",
        "SHA-256 of the empty input, a published constant",
    ),
    Allowed(
        "graph/http/console/assets.py",
        "Base64 High Entropy String",
        r'^\s*"sha512-[A-Za-z0-9+/]{86}==",$',
        "the npm registry's published sha512 integrity of a pinned public tarball: a"
        " checksum the console's assets are verified against, not a secret",
    ),
    # Not secrets at all: names next to a keyword detect-secrets looks for.
    Allowed(
        "db/embedded.py",
        "Secret Keyword",
        r"^\s*\"password_encryption\": \"scram-sha-256\",$",
        "a PostgreSQL setting whose value is an algorithm's name",
    ),
    Allowed(
        "db/sessions.py",
        "Secret Keyword",
        r"^SECRET_CLAIM = \"\w+\"",
        "the name of a JWT claim",
    ),
    Allowed(
        "domain/security_events.py",
        "Secret Keyword",
        r"^\s*CLIENT_SECRET_ROTATED = \"CLIENT_SECRET_ROTATED\"$",
        "the name of a security event",
    ),
    Allowed(
        "domain/passwords.py",
        "Base64 High Entropy String",
        r"^\s*\"(qwerty|qwertz|azerty)uiop[a-z]{16}\",$",
        "keyboard rows the password policy refuses as sequences",
    ),
)

# Tracked files named like keys or environment files that are deliberate test fixtures:
# (path, reason). There are none; the keys the tests use are generated at run time.
ALLOWED_KEY_FILES: tuple[tuple[str, str], ...] = ()

KEY_FILE_NAMES = re.compile(
    r"(\.pem|\.key|\.p12|\.pfx|\.jks|\.keystore)$"
    r"|^\.env"
    r"|^id_(rsa|dsa|ecdsa|ed25519)"
    r"|^\.(netrc|pypirc)$"
)


@dataclass(frozen=True, order=True)
class Finding:
    """Where a secret was found and of what kind; deliberately without the value."""

    path: str
    line_number: int
    kind: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line_number}: {self.kind}"


def _tracked_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.decode()
    return sorted({name for name in listed.split("\0") if name})


def _scan(root: Path, paths: list[str]) -> list[Finding]:
    """detect-secrets over ``paths`` (relative to ``root``), in this process."""
    unscannable = []
    for path in paths:
        try:
            (root / path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            unscannable.append(f"{path}: {type(exc).__name__}")
    assert not unscannable, (
        "tracked files the scanner cannot read as text (decide here how to check them): "
        f"{unscannable}"
    )
    found = SecretsCollection(root=str(root))
    with default_settings() as settings:
        settings.disable_filters(*DISABLED_FILTERS)
        for path in paths:
            found.scan_file(path)
    findings = sorted(
        Finding(Path(path).as_posix(), secret.line_number, secret.type) for path, secret in found
    )
    del found  # it holds the values; nothing below needs them
    return findings


@pytest.fixture(scope="module")
def repository_findings() -> list[Finding]:
    # This file too, so that it is checked before it is first committed.
    return _scan(REPO, sorted({*_tracked_files(), THIS_FILE}))


def _flagged_line(finding: Finding) -> str:
    lines = (REPO / finding.path).read_text(encoding="utf-8").splitlines()
    return lines[finding.line_number - 1]


def _allowance(finding: Finding) -> Allowed | None:
    for allowed in ALLOWED_FINDINGS:
        if (
            allowed.path == finding.path
            and allowed.kind == finding.kind
            and re.search(allowed.line, _flagged_line(finding))
        ):
            return allowed
    return None


def test_C6_no_secrets_in_tracked_files(repository_findings: list[Finding]) -> None:
    """Every finding in every tracked file (code, tests, docs, the CI script, the
    Dockerfile) is a listed, deliberate synthetic value; every listed exception still
    matches a finding."""
    unexpected = [str(f) for f in repository_findings if _allowance(f) is None]
    assert not unexpected, (
        "possible hard-coded secrets (rotate any real one, then remove it from the "
        f"history): {unexpected}"
    )
    used = {_allowance(f) for f in repository_findings}
    stale = [f"{a.path} ({a.kind}: {a.line})" for a in ALLOWED_FINDINGS if a not in used]
    assert not stale, f"allowlist entries that match nothing any more (remove them): {stale}"


def _canaries() -> list[tuple[str, str, str]]:
    """Made-up secrets of every kind the search must catch, as (file name, kind, text),
    including the shapes the disabled filters would have dropped."""

    def b64url(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    jwt = ".".join(
        (
            b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()),
            b64url(json.dumps({"sub": secrets.token_hex(8), "iat": 1700000000}).encode()),
            b64url(os.urandom(32)),
        )
    )
    alphabet = string.ascii_uppercase + string.digits
    aws = "AKIA" + "".join(secrets.choice(alphabet) for _ in range(16))
    github = "ghp_" + "".join(secrets.choice(string.ascii_letters) for _ in range(36))
    pem = "-----BEGIN " + "RSA PRIVATE KEY-----"
    url = "postgresql+asyncpg://phigate_app:" + secrets.token_urlsafe(18) + "@db.example.org/p"
    inline_escape = "# pragma: " + "allowlist secret"
    # Not starting with "-": detect-secrets' keyword pattern misses a value that does (one
    # canary in 64 did, and the test failed at random).
    keyword = "k" + secrets.token_urlsafe(12)
    return [
        ("key.md", "Private Key", f"{pem}\n{base64.b64encode(os.urandom(48)).decode()}\n"),
        ("aws.py", "AWS Access Key", f'aws_key_id = "{aws}"\n'),
        ("jwt.md", "JSON Web Token", f"Authorization: Bearer {jwt}\n"),
        ("b64.py", "Base64 High Entropy String", f'signing = "{b64url(os.urandom(32))}"\n'),
        ("hex.py", "Hex High Entropy String", f'digest = "{secrets.token_hex(24)}"\n'),
        ("url.md", "Basic Auth Credentials", f"DATABASE_URL={url}\n"),
        ("keyword.py", "Secret Keyword", f'db_password = "{keyword}"\n'),
        ("ci.sh", "GitHub Token", f"export GH_TOKEN={github}\n"),
        # A call on the line (the indirect-reference filter), an in-line escape, a file
        # named like a lock file, a file with a binary-looking extension.
        ("call.py", "Basic Auth Credentials", f'engine = create_engine("{url}")\n'),
        ("escaped.py", "AWS Access Key", f'aws_key_id = "{aws}"  {inline_escape}\n'),
        ("poetry.lock", "AWS Access Key", f'aws_key_id = "{aws}"\n'),
        ("picture.svg", "JSON Web Token", f"<!-- {jwt} -->\n"),
    ]


def test_C6_the_search_finds_each_kind_of_secret(tmp_path: Path) -> None:
    """The same search, on made-up secrets (in text with non-ASCII characters, as the
    docs have): each kind is found, so an empty result above means something."""
    canaries = _canaries()
    for name, kind, content in canaries:
        (tmp_path / name).write_text(f"# Canary … {kind}\n\n{content}", encoding="utf-8")
    found = {(f.path, f.kind) for f in _scan(tmp_path, [name for name, _, _ in canaries])}
    missed = [f"{name}: {kind}" for name, kind, _ in canaries if (name, kind) not in found]
    assert not missed, f"the search misses these: {missed}"


def test_C6_no_key_or_env_files_are_tracked() -> None:
    """No tracked file is named like a key, certificate bundle or environment file, and
    nothing under var/ (development keys and the embedded database) is tracked."""
    allowed = {path for path, _reason in ALLOWED_KEY_FILES}
    tracked = _tracked_files()
    suspicious = [
        path
        for path in tracked
        if (KEY_FILE_NAMES.search(path.rsplit("/", 1)[-1]) or path.startswith("var/"))
        and path not in allowed
    ]
    assert not suspicious, f"key or environment files are tracked: {suspicious}"
    stale = sorted(allowed - set(tracked))
    assert not stale, f"allowlisted key files that are not tracked any more: {stale}"


def test_C6_development_keys_are_ignored_by_git(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where development keys and the embedded database go by default (var/) is in
    .gitignore, so `git add .` cannot pick them up."""
    monkeypatch.chdir(REPO)
    settings = Settings.from_env({})
    generated = [
        development_key_file(settings, "master.key"),
        development_key_file(settings, "blind-index.key"),
        settings.data_dir.resolve() / "PG_VERSION",
    ]
    paths = [path.relative_to(REPO).as_posix() for path in generated]
    assert all(path.startswith("var/") for path in paths), paths
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *paths], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert sorted(ignored) == sorted(paths), f"not ignored by git: {set(paths) - set(ignored)}"


# Each secret phigate reads through `_secret` and the setting it fills.
SECRETS = {
    "DATABASE_URL": "database_url",
    "PHIGATE_MIGRATION_DATABASE_URL": "migration_database_url",
    "PHIGATE_AUDIT_READ_DATABASE_URL": "audit_read_database_url",
    "PHIGATE_MASTER_KEY": "master_key",
    "PHIGATE_BLIND_INDEX_KEY": "blind_index_key",
    "PHIGATE_OIDC_CONSOLE_CLIENT_SECRET": "oidc_console_client_secret",
}
KEYS = ("PHIGATE_MASTER_KEY", "PHIGATE_BLIND_INDEX_KEY")


def _secrets_read_by_the_code() -> set[str]:
    names = set()
    for path in _tracked_files():
        if not path.endswith(".py") or path.startswith("tests/"):
            continue
        tree = ast.parse((REPO / path).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "_secret"
            ):
                argument = node.args[1] if len(node.args) > 1 else None
                assert isinstance(argument, ast.Constant), f"{path}:{node.lineno}"
                names.add(argument.value)
    return names


def test_C6_every_secret_the_code_reads_is_covered_here() -> None:
    """The list below is the code's: a new secret variable must be added to it (and so
    get the checks that follow), and to docs/configuration.md with its _FILE form."""
    assert _secrets_read_by_the_code() == set(SECRETS)
    documented = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert [n for n in SECRETS if f"`{n}_FILE`" not in documented] == []


def _synthetic(name: str) -> str:
    if name in KEYS:
        return base64.b64encode(os.urandom(32)).decode()
    password = secrets.token_urlsafe(18)
    return f"postgresql://phigate_app:{password}@db.example.test:5432/phigate"


@pytest.mark.parametrize("ending", ["\n", "\r\n", ""])
@pytest.mark.parametrize("name", SECRETS)
def test_C6_a_secret_comes_from_its_FILE(name: str, ending: str, tmp_path: Path) -> None:
    """NAME_FILE's content is the value, without the line ending secret files usually
    have (the code strips surrounding whitespace); it stays out of repr and describe()."""
    value = _synthetic(name)
    secret_file = tmp_path / "secret"
    secret_file.write_bytes((value + ending).encode())
    settings = Settings.from_env({f"{name}_FILE": str(secret_file)})
    assert getattr(settings, SECRETS[name]) == value
    assert value not in repr(settings)
    assert value not in json.dumps(settings.describe())


@pytest.mark.parametrize("name", SECRETS)
def test_C6_a_secret_and_its_FILE_together_are_refused(name: str, tmp_path: Path) -> None:
    direct, in_file = _synthetic(name), _synthetic(name)
    secret_file = tmp_path / "secret"
    secret_file.write_text(in_file + "\n")
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({name: direct, f"{name}_FILE": str(secret_file)})
    message = str(raised.value)
    assert f"{name} " in message
    assert f"{name}_FILE" in message
    assert direct not in message
    assert in_file not in message


def _report(error: BaseException) -> str:
    """What a log or a terminal would show: the whole chain, as a traceback."""
    return "".join(traceback.format_exception(error))


@pytest.mark.parametrize("problem", ["missing", "a directory"])
@pytest.mark.parametrize("name", SECRETS)
def test_C6_an_unreadable_FILE_is_refused(name: str, problem: str, tmp_path: Path) -> None:
    target = tmp_path / "secret"
    if problem == "a directory":
        target.mkdir()
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({f"{name}_FILE": str(target)})
    assert f"{name}_FILE" in str(raised.value)


# Found by this test: a decoding error escaped, unnamed, carrying the file's bytes.
@pytest.mark.parametrize("name", SECRETS)
def test_C6_a_FILE_that_is_not_text_is_refused(name: str, tmp_path: Path) -> None:
    content = b"\xff\xfe" + os.urandom(30)
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(content)
    with pytest.raises(SettingsError) as raised:
        Settings.from_env({f"{name}_FILE": str(secret_file)})
    assert f"{name}_FILE" in str(raised.value)
    assert repr(content)[2:-1] not in _report(raised.value)


def _production(**files: Path) -> Settings:
    env = {"PHIGATE_ENV": "production"}  # never falls back to generating key files
    env.update({f"{name}_FILE": str(path) for name, path in files.items()})
    return Settings.from_env(env)


def test_C6_keys_load_from_their_FILEs(tmp_path: Path) -> None:
    """The key loaders use the keys from the files: two KEK versions and the
    blind-index key, each file ending in a newline."""
    old, new, index = os.urandom(32), os.urandom(32), os.urandom(32)
    master = tmp_path / "master"
    master.write_text(f"1:{base64.b64encode(old).decode()},2:{base64.b64encode(new).decode()}\n")
    blind = tmp_path / "blind"
    blind.write_text(base64.b64encode(index).decode() + "\n")
    settings = _production(PHIGATE_MASTER_KEY=master, PHIGATE_BLIND_INDEX_KEY=blind)
    provider = key_provider(settings)
    assert provider.keys == {1: old, 2: new}
    assert provider.current_version == 2
    assert blind_index(settings)("mrn", "synthetic") == BlindIndex(index)("mrn", "synthetic")


@pytest.mark.parametrize(("name", "load"), [(KEYS[0], key_provider), (KEYS[1], blind_index)])
def test_C6_keys_are_required_in_production(name: str, load) -> None:
    with pytest.raises(SettingsError) as raised:
        load(_production())
    assert f"{name} " in str(raised.value)
    assert f"{name}_FILE" in str(raised.value)


@pytest.mark.parametrize(
    ("name", "load"),
    [
        # Found by this test: the version's int() error quoted the key file's text.
        (KEYS[0], key_provider),
        (KEYS[1], blind_index),
    ],
)
def test_C6_an_unusable_key_FILE_is_refused_without_echoing_it(
    name: str, load, tmp_path: Path
) -> None:
    canary = f"synthetic-canary-{secrets.token_hex(8)}"
    key_file = tmp_path / "key"
    key_file.write_text(f"{canary}:{canary}\n")
    with pytest.raises(SettingsError) as raised:
        load(_production(**{name: key_file}))
    assert name in str(raised.value)
    assert canary not in _report(raised.value)
