from __future__ import annotations

import ssl

import pytest

from db.engine import DatabaseUrlError, parse_database_url


def test_verify_full_builds_a_verifying_tls_context() -> None:
    target = parse_database_url(
        "postgresql://app:secret@db.example.test:5432/phigate?sslmode=verify-full"
    )
    assert isinstance(target.tls, ssl.SSLContext)
    assert target.tls.check_hostname is True
    assert target.tls.verify_mode == ssl.CERT_REQUIRED
    assert target.tls.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert target.verifies_server
    assert target.url.drivername == "postgresql+asyncpg"
    assert "sslmode" not in target.url.query
    assert not target.is_local


def test_require_encrypts_without_verifying() -> None:
    target = parse_database_url("postgresql://app@db.example.test/phigate?sslmode=require")
    assert target.tls == "require"
    assert not target.verifies_server


def test_local_socket_is_local_and_needs_no_tls() -> None:
    target = parse_database_url("postgresql://phigate_app@/phigate?host=/run/postgresql")
    assert target.tls is None
    assert target.is_local


@pytest.mark.parametrize(
    "url",
    [
        "mysql://app:secret@db.example.test/phigate",
        "postgresql://app:secret@db.example.test/phigate?sslmode=sometimes",
        "not a url at all",
    ],
)
def test_bad_urls_are_refused_without_echoing_them(url: str) -> None:
    with pytest.raises(DatabaseUrlError) as raised:
        parse_database_url(url)
    assert "secret" not in str(raised.value)
    assert "DATABASE_URL" in str(raised.value) or "sslmode" in str(raised.value)


def test_redacted_form_hides_the_password() -> None:
    target = parse_database_url("postgresql://app:secret@db.example.test/phigate")
    assert "secret" not in target.redacted()
