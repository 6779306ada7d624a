"""AWS KMS as the root of the key hierarchy.

KMS never sees PHI and is not called per value: each key-encryption key (KEK) version is
kept only as a KMS ciphertext (``PHIGATE_KMS_WRAPPED_KEKS``), which KMS decrypts once,
at start-up, into process memory. From there the local envelope does the per-value work
(microseconds, not a network round trip). Rotating means asking KMS for a new data key
(``phigate keys kms-new``), adding its ciphertext as the next version, and running
``phigate keys rotate``. boto3 is an optional extra: ``pip install 'phigate[kms]'``.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from db.crypto import KEY_BYTES, KeyConfigurationError, LocalKeyProvider


def _context(version: int) -> dict[str, str]:
    # Binds each wrapped KEK to its purpose and version: a blob for version 1 does not
    # decrypt as version 2, nor as anything another application wrapped.
    return {"purpose": "phigate-kek", "version": str(version)}


def kms_client(region: str | None) -> Any:
    try:
        import boto3  # type: ignore[import-not-found]
    except ImportError:
        raise KeyConfigurationError(
            "PHIGATE_KMS_WRAPPED_KEKS needs boto3: pip install 'phigate[kms]'"
        ) from None
    return boto3.client("kms", region_name=region)


def parse_wrapped(spec: str) -> dict[int, bytes]:
    """``"1:<base64 blob>,2:<base64 blob>"``."""
    wrapped: dict[int, bytes] = {}
    for item in (part.strip() for part in spec.split(",") if part.strip()):
        version, _, blob = item.partition(":")
        try:
            wrapped[int(version)] = base64.b64decode(blob, validate=True)
        except ValueError:
            raise KeyConfigurationError(
                "PHIGATE_KMS_WRAPPED_KEKS must look like 1:<base64>,2:<base64>"
            ) from None
    if not wrapped:
        raise KeyConfigurationError("PHIGATE_KMS_WRAPPED_KEKS names no key")
    return wrapped


def provider_from_kms(client: Any, wrapped: Mapping[int, bytes]) -> LocalKeyProvider:
    """Decrypt every KEK version with KMS, once; refuse to start on any failure."""
    keys: dict[int, bytes] = {}
    for version, blob in wrapped.items():
        try:
            plaintext = client.decrypt(CiphertextBlob=blob, EncryptionContext=_context(version))[
                "Plaintext"
            ]
        except Exception as exc:  # botocore raises many kinds; none may carry key material
            raise KeyConfigurationError(
                f"KMS could not decrypt key-encryption key version {version} ({type(exc).__name__})"
            ) from None
        if len(plaintext) != KEY_BYTES:
            raise KeyConfigurationError(f"key-encryption key version {version} is not 256 bits")
        keys[version] = plaintext
    return LocalKeyProvider(keys)


def new_wrapped_kek(client: Any, key_id: str, version: int) -> str:
    """A fresh 256-bit KEK from KMS, returned only as its KMS ciphertext (base64)."""
    generated = client.generate_data_key(
        KeyId=key_id, KeySpec="AES_256", EncryptionContext=_context(version)
    )
    return base64.b64encode(generated["CiphertextBlob"]).decode()
