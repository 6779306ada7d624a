from __future__ import annotations

import base64
import os

import pytest

from db.crypto import (
    DecryptionError,
    Envelope,
    KeyConfigurationError,
    LocalKeyProvider,
    associated_data,
    generate_key,
)

AAD = associated_data("users", "totp_secret", "row-1")


def envelope(*versions: int) -> Envelope:
    return Envelope(LocalKeyProvider({version: os.urandom(32) for version in versions}))


def test_round_trip_and_fresh_ciphertext_each_time() -> None:
    box = envelope(1)
    first, second = (
        box.encrypt(b"JBSWY3DPEHPK3PXP", aad=AAD),
        box.encrypt(b"JBSWY3DPEHPK3PXP", aad=AAD),
    )
    assert first != second
    assert box.decrypt(first, aad=AAD) == box.decrypt(second, aad=AAD) == b"JBSWY3DPEHPK3PXP"
    assert b"JBSWY3DPEHPK3PXP" not in first


def test_ciphertext_moved_to_another_row_does_not_open() -> None:
    box = envelope(1)
    sealed = box.encrypt(b"secret", aad=AAD)
    with pytest.raises(DecryptionError, match="wrong row"):
        box.decrypt(sealed, aad=associated_data("users", "totp_secret", "row-2"))


@pytest.mark.parametrize("position", [0, 10, -1])
def test_tampering_is_detected_never_garbage(position: int) -> None:
    box = envelope(1)
    sealed = bytearray(box.encrypt(b"secret", aad=AAD))
    sealed[position] ^= 0x01
    with pytest.raises(DecryptionError):
        box.decrypt(bytes(sealed), aad=AAD)


def test_missing_key_version_is_a_clear_error() -> None:
    old = Envelope(LocalKeyProvider({1: os.urandom(32)}))
    sealed = old.encrypt(b"secret", aad=AAD)
    with pytest.raises(DecryptionError, match="version 1 is not configured"):
        envelope(2).decrypt(sealed, aad=AAD)


def test_new_key_version_encrypts_and_old_still_decrypts() -> None:
    v1 = os.urandom(32)
    old = Envelope(LocalKeyProvider({1: v1}))
    sealed_old = old.encrypt(b"before rotation", aad=AAD)
    rotated = Envelope(LocalKeyProvider({1: v1, 2: os.urandom(32)}))
    assert rotated.decrypt(sealed_old, aad=AAD) == b"before rotation"
    assert int.from_bytes(rotated.encrypt(b"after", aad=AAD)[1:3], "big") == 2


@pytest.mark.parametrize(
    "material",
    [
        base64.b64encode(b"short").decode(),
        base64.b64encode(b"a" * 32).decode(),
        "not base64 !!",
        "",
    ],
)
def test_weak_or_malformed_keys_are_refused(material: str) -> None:
    with pytest.raises(KeyConfigurationError):
        LocalKeyProvider.from_base64(material)


def test_versioned_key_list() -> None:
    provider = LocalKeyProvider.from_base64(f"1:{generate_key()},2:{generate_key()}")
    assert provider.current_version == 2
