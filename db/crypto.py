"""Field-level envelope encryption, AES-256-GCM.

Each value gets its own random 256-bit data key; the data key is wrapped by a
key-encryption key (KEK) from a key provider. Associated data binds a ciphertext to
its table, column and row: moved to another row it no longer decrypts.

Blob layout (all integers big-endian)::

    version(1)=1 | kek_version(2) | wrapped_len(2) | wrapped_data_key | nonce(12) | ciphertext+tag
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

FORMAT_VERSION = 1
KEY_BYTES = 32
NONCE_BYTES = 12
_HEADER = struct.Struct(">BHH")


class DecryptionError(Exception):
    """A ciphertext could not be opened. Never carries the data or a key."""


class KeyConfigurationError(ValueError):
    pass


class KeyProvider(Protocol):
    """Wraps and unwraps data keys. Local keys today; a KMS behind the same interface."""

    @property
    def current_version(self) -> int: ...

    def wrap(self, data_key: bytes, *, aad: bytes) -> tuple[int, bytes]: ...

    def unwrap(self, version: int, wrapped: bytes, *, aad: bytes) -> bytes: ...


@dataclass(frozen=True)
class LocalKeyProvider:
    """KEKs held in process memory, from configuration (env var or key file)."""

    keys: Mapping[int, bytes]
    _aead: dict[int, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyConfigurationError("no key-encryption key is configured")
        for version, key in self.keys.items():
            if len(key) != KEY_BYTES:
                raise KeyConfigurationError(
                    f"key-encryption key version {version} must be 256 bits"
                )
            if len(set(key)) < 16:
                raise KeyConfigurationError(f"key-encryption key version {version} is not random")
        # One AEAD object per KEK version, built once: unwrapping is on every read.
        object.__setattr__(self, "_aead", {v: AESGCM(k) for v, k in self.keys.items()})

    @property
    def current_version(self) -> int:
        return max(self.keys)

    def wrap(self, data_key: bytes, *, aad: bytes) -> tuple[int, bytes]:
        version = self.current_version
        nonce = os.urandom(NONCE_BYTES)
        return version, nonce + self._aead[version].encrypt(nonce, data_key, b"kek|" + aad)

    def unwrap(self, version: int, wrapped: bytes, *, aad: bytes) -> bytes:
        aead = self._aead.get(version)
        if aead is None:
            raise DecryptionError(f"key-encryption key version {version} is not configured")
        try:
            return aead.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], b"kek|" + aad)
        except InvalidTag:
            raise DecryptionError(
                "a data key failed authentication (tampered or wrong row)"
            ) from None

    @classmethod
    def from_base64(cls, encoded: str) -> LocalKeyProvider:
        """``"<key>"`` (version 1) or ``"1:<key>,2:<key>"``; each key is 32 bytes, base64."""
        keys: dict[int, bytes] = {}
        for index, item in enumerate(part.strip() for part in encoded.split(",") if part.strip()):
            version_text, _, material = item.rpartition(":")
            if version_text and not version_text.isdigit():
                # Never quote the text: it may be a key, or a secret pasted by mistake.
                raise KeyConfigurationError("a key version must be a number (`1:<key>,2:<key>`)")
            version = int(version_text) if version_text else index + 1
            try:
                keys[version] = base64.b64decode(material, validate=True)
            except ValueError:
                raise KeyConfigurationError("key-encryption keys must be base64") from None
        return cls(keys)


def generate_key() -> str:
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


def associated_data(table: str, column: str, row_id: object) -> bytes:
    return f"{table}.{column}:{row_id}".encode()


class ReloadingKeyProvider:
    """Key versions that can grow while the process runs: the development key file, to
    which `phigate keys rotate` adds a version. A version this process does not hold is
    looked for once in the file before a value is declared unreadable, and a heartbeat
    reloads it too (graph/http/app.py), so a running gateway learns a new version without a
    restart. Keys from the environment or KMS cannot change in a running process: for
    them `keys rotate` waits until every live gateway reports the version."""

    def __init__(self, load: Callable[[], LocalKeyProvider]) -> None:
        self._load = load
        self._current = load()

    @property
    def keys(self) -> Mapping[int, bytes]:
        return self._current.keys

    @property
    def current_version(self) -> int:
        return self._current.current_version

    def reload(self) -> None:
        with contextlib.suppress(OSError, KeyConfigurationError, ValueError):
            self._current = self._load()

    def wrap(self, data_key: bytes, *, aad: bytes) -> tuple[int, bytes]:
        return self._current.wrap(data_key, aad=aad)

    def unwrap(self, version: int, wrapped: bytes, *, aad: bytes) -> bytes:
        if version not in self._current.keys:
            self.reload()
        return self._current.unwrap(version, wrapped, aad=aad)


class Envelope:
    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider

    def encrypt(self, plaintext: bytes, *, aad: bytes) -> bytes:
        data_key = AESGCM.generate_key(bit_length=256)
        kek_version, wrapped = self.provider.wrap(data_key, aad=aad)
        nonce = os.urandom(NONCE_BYTES)
        sealed = AESGCM(data_key).encrypt(nonce, plaintext, aad)
        return _HEADER.pack(FORMAT_VERSION, kek_version, len(wrapped)) + wrapped + nonce + sealed

    def decrypt(self, blob: bytes, *, aad: bytes) -> bytes:
        try:
            version, kek_version, wrapped_len = _HEADER.unpack_from(blob)
        except struct.error:
            raise DecryptionError("ciphertext is truncated") from None
        if version != FORMAT_VERSION:
            raise DecryptionError("ciphertext has an unknown format version")
        start = _HEADER.size
        wrapped = blob[start : start + wrapped_len]
        nonce = blob[start + wrapped_len : start + wrapped_len + NONCE_BYTES]
        sealed = blob[start + wrapped_len + NONCE_BYTES :]
        data_key = self.provider.unwrap(kek_version, wrapped, aad=aad)
        try:
            return AESGCM(data_key).decrypt(nonce, sealed, aad)
        except InvalidTag:
            raise DecryptionError(
                "ciphertext failed authentication (tampered or wrong row)"
            ) from None

    def encrypt_text(self, plaintext: str, *, aad: bytes) -> bytes:
        return self.encrypt(plaintext.encode(), aad=aad)

    def decrypt_text(self, blob: bytes, *, aad: bytes) -> str:
        return self.decrypt(blob, aad=aad).decode()

    def key_version(self, blob: bytes) -> int:
        """The KEK version a ciphertext's data key is wrapped under."""
        try:
            return int(_HEADER.unpack_from(blob)[1])
        except struct.error:
            raise DecryptionError("ciphertext is truncated") from None

    def rewrap(self, blob: bytes, *, aad: bytes) -> bytes:
        """The same ciphertext with its data key wrapped under the current KEK: the value
        itself is never decrypted, only its 32-byte data key is unwrapped and wrapped."""
        version, kek_version, wrapped_len = _HEADER.unpack_from(blob)
        if version != FORMAT_VERSION:
            raise DecryptionError("ciphertext has an unknown format version")
        start = _HEADER.size
        data_key = self.provider.unwrap(kek_version, blob[start : start + wrapped_len], aad=aad)
        new_version, wrapped = self.provider.wrap(data_key, aad=aad)
        rest = blob[start + wrapped_len :]
        return _HEADER.pack(FORMAT_VERSION, new_version, len(wrapped)) + wrapped + rest


class BlindIndex:
    """A keyed hash (HMAC-SHA256, its own 256-bit key) of a normalised identifier, for
    exact-match lookup without decrypting anything. Without the key the index reveals
    nothing; with it, only equality."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES or len(set(key)) < 16:
            raise KeyConfigurationError("the blind-index key must be 256 random bits")
        self._key = key

    def __call__(self, purpose: str, value: str) -> bytes:
        return hmac.digest(self._key, f"{purpose}\x00{value}".encode(), "sha256")

    def derived_key(self, label: bytes) -> bytes:
        """A key of its own for another keyed hash (HKDF-SHA-256 under ``label``): what it
        signs can never collide with an index, and the index key never leaves."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(self._key)

    @classmethod
    def from_base64(cls, encoded: str) -> BlindIndex:
        try:
            material = base64.b64decode(encoded.strip(), validate=True)
        except ValueError:
            raise KeyConfigurationError("the blind-index key must be base64") from None
        return cls(material)


@dataclass(frozen=True)
class FieldCipher:
    """Encrypts and decrypts one column of one row (the AAD names table, column and
    row), and computes blind indexes."""

    envelope: Envelope
    index: BlindIndex

    def seal(self, table: str, column: str, row_id: object, value: str | None) -> bytes | None:
        if value is None:
            return None
        return self.envelope.encrypt_text(value, aad=associated_data(table, column, row_id))

    def open(self, table: str, column: str, row_id: object, blob: bytes | None) -> str | None:
        if blob is None:
            return None
        return self.envelope.decrypt(
            blob if type(blob) is bytes else bytes(blob), aad=f"{table}.{column}:{row_id}".encode()
        ).decode()
