"""AWS KMS as the key hierarchy's root, against a stub that behaves like KMS (no KMS is
reachable here): KEKs exist only as KMS ciphertexts, bound to their version, decrypted
once at start-up."""

from __future__ import annotations

import importlib.util
import json
import os
import uuid

import pytest
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from db.crypto import Envelope, KeyConfigurationError
from db.kms import kms_client, new_wrapped_kek, provider_from_kms
from graph.keys import key_provider
from graph.settings import Settings, SettingsError
from tests.conftest import MASTER_KEY


class InvalidCiphertextException(Exception):
    pass


class StubKms:
    """KMS's decrypt and generate_data_key, with encryption-context binding."""

    def __init__(self) -> None:
        self._root = AESGCM(os.urandom(32))
        self.decrypts = 0

    def _aad(self, context: dict[str, str]) -> bytes:
        return json.dumps(context, sort_keys=True).encode()

    def generate_data_key(self, *, KeyId: str, KeySpec: str, EncryptionContext: dict) -> dict:
        assert KeySpec == "AES_256" and KeyId.startswith("arn:aws:kms:")
        key, nonce = os.urandom(32), os.urandom(12)
        sealed = self._root.encrypt(nonce, key, self._aad(EncryptionContext))
        return {"Plaintext": key, "CiphertextBlob": nonce + sealed}

    def decrypt(self, *, CiphertextBlob: bytes, EncryptionContext: dict) -> dict:
        self.decrypts += 1
        try:
            plaintext = self._root.decrypt(
                CiphertextBlob[:12], CiphertextBlob[12:], self._aad(EncryptionContext)
            )
        except InvalidTag:
            raise InvalidCiphertextException from None
        return {"Plaintext": plaintext}


KEY_ID = "arn:aws:kms:us-east-1:000000000000:key/synthetic"


def test_keks_are_kms_ciphertexts_decrypted_once_at_start_up() -> None:
    kms = StubKms()
    wrapped = f"1:{new_wrapped_kek(kms, KEY_ID, 1)},2:{new_wrapped_kek(kms, KEY_ID, 2)}"
    provider = key_provider(Settings(kms_wrapped_keks=wrapped), kms=kms)
    assert provider.current_version == 2 and kms.decrypts == 2
    envelope = Envelope(provider)
    aad = f"patients.ssn:{uuid.uuid4()}".encode()
    sealed = [envelope.encrypt(b"900-00-0000", aad=aad) for _ in range(100)]
    assert all(envelope.decrypt(blob, aad=aad) == b"900-00-0000" for blob in sealed)
    assert kms.decrypts == 2  # per value: no KMS call


def test_a_wrapped_kek_is_bound_to_its_version() -> None:
    kms = StubKms()
    blob = new_wrapped_kek(kms, KEY_ID, 1)
    with pytest.raises(SettingsError, match=r"version 2 .*InvalidCiphertextException"):
        key_provider(Settings(kms_wrapped_keks=f"2:{blob}"), kms=kms)


def test_kms_configuration_mistakes_are_named() -> None:
    kms = StubKms()
    with pytest.raises(SettingsError, match="not both"):
        key_provider(Settings(kms_wrapped_keks="1:AAAA", master_key=MASTER_KEY), kms=kms)
    with pytest.raises(SettingsError, match="must look like"):
        key_provider(Settings(kms_wrapped_keks="1:not base64!"), kms=kms)
    with pytest.raises(KeyConfigurationError):
        provider_from_kms(kms, {})  # no versions: LocalKeyProvider refuses an empty set


@pytest.mark.skipif(importlib.util.find_spec("boto3") is not None, reason="boto3 installed")
def test_without_boto3_the_fix_is_named() -> None:
    with pytest.raises(KeyConfigurationError, match=r"phigate\[kms\]"):
        kms_client("us-east-1")
