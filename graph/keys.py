"""Where the keys come from: the key-encryption key(s) and the blind-index key."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from db.crypto import (
    BlindIndex,
    Envelope,
    FieldCipher,
    KeyConfigurationError,
    LocalKeyProvider,
    ReloadingKeyProvider,
    generate_key,
)
from db.kms import kms_client, parse_wrapped, provider_from_kms
from graph.settings import Settings, SettingsError


def development_key_file(settings: Settings, name: str = "master.key") -> Path:
    return settings.data_dir.expanduser().resolve().parent / "keys" / name


def _development_key(settings: Settings, name: str) -> str:
    """Generated on first use and kept next to the embedded database, readable by this
    user alone. Development only."""
    path = development_key_file(settings, name)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(generate_key() + "\n")
    return path.read_text(encoding="utf-8").strip()


def key_provider(settings: Settings, *, kms: Any = None) -> LocalKeyProvider | ReloadingKeyProvider:
    """PHIGATE_KMS_WRAPPED_KEKS (decrypted by AWS KMS at start-up), PHIGATE_MASTER_KEY
    (or _FILE); in development, a generated key file. ``kms`` replaces the boto3 client
    (tests)."""
    if settings.kms_wrapped_keks:
        if settings.master_key:
            raise SettingsError("set PHIGATE_KMS_WRAPPED_KEKS or PHIGATE_MASTER_KEY, not both")
        try:
            client = kms if kms is not None else kms_client(settings.kms_region)
            return provider_from_kms(client, parse_wrapped(settings.kms_wrapped_keks))
        except KeyConfigurationError as exc:
            raise SettingsError(str(exc)) from None
    if settings.master_key:
        try:
            return LocalKeyProvider.from_base64(settings.master_key)
        except KeyConfigurationError as exc:
            raise SettingsError(f"PHIGATE_MASTER_KEY is unusable: {exc}") from None
        except ValueError:
            # Never the error's own text: it may quote the value.
            raise SettingsError(
                "PHIGATE_MASTER_KEY is unusable: give `<key>` or `1:<key>,2:<key>`,"
                " each 32 random bytes in base64"
            ) from None
    if settings.is_production:
        raise SettingsError(
            "PHIGATE_MASTER_KEY (or PHIGATE_MASTER_KEY_FILE) is required in production"
        )
    # The development key file grows when `phigate keys rotate` adds a version: a
    # running gateway picks it up (on a miss, and at each heartbeat).
    return ReloadingKeyProvider(
        lambda: LocalKeyProvider.from_base64(_development_key(settings, "master.key"))
    )


def blind_index(settings: Settings) -> BlindIndex:
    """PHIGATE_BLIND_INDEX_KEY (or _FILE), a key of its own: rotating the KEK must not
    change the index, and the index key never wraps anything."""
    if settings.blind_index_key:
        try:
            return BlindIndex.from_base64(settings.blind_index_key)
        except KeyConfigurationError as exc:
            raise SettingsError(f"PHIGATE_BLIND_INDEX_KEY is unusable: {exc}") from None
    if settings.is_production:
        raise SettingsError(
            "PHIGATE_BLIND_INDEX_KEY (or PHIGATE_BLIND_INDEX_KEY_FILE) is required in production"
        )
    return BlindIndex.from_base64(_development_key(settings, "blind-index.key"))


def field_cipher(settings: Settings) -> FieldCipher:
    return FieldCipher(Envelope(key_provider(settings)), blind_index(settings))


def configured_field_cipher(settings: Settings) -> FieldCipher | None:
    """The field cipher if its keys are configured or already on disk; never creates
    key files."""
    present = all(
        value or development_key_file(settings, name).exists()
        for value, name in (
            (settings.master_key, "master.key"),
            (settings.blind_index_key, "blind-index.key"),
        )
    )
    return field_cipher(settings) if present else None


def add_development_key_version(settings: Settings) -> int:
    """`phigate keys rotate` in development: a new KEK version in the key file (old
    versions stay, so old ciphertexts keep opening). Returns the new version."""
    if settings.master_key or settings.kms_wrapped_keks:
        raise SettingsError(
            "keys come from the environment: add the new version there (`1:<old>,2:<new>`)"
            " and run `phigate keys rotate` again"
        )
    provider = key_provider(settings)
    version = provider.current_version + 1
    keys = {**provider.keys, version: base64.b64decode(generate_key())}
    encoded = ",".join(f"{v}:{base64.b64encode(k).decode()}" for v, k in sorted(keys.items()))
    path = development_key_file(settings, "master.key")
    temporary = path.with_suffix(".new")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(encoded + "\n")
    temporary.replace(path)
    return version
