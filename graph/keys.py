"""Where the key-encryption key comes from."""

from __future__ import annotations

import os
from pathlib import Path

from db.crypto import KeyConfigurationError, LocalKeyProvider, generate_key
from graph.settings import Settings, SettingsError


def development_key_file(settings: Settings) -> Path:
    return settings.data_dir.expanduser().resolve().parent / "keys" / "master.key"


def key_provider(settings: Settings) -> LocalKeyProvider:
    """PHIGATE_MASTER_KEY (or _FILE). In development only, a key generated on first use
    and kept next to the embedded database, readable by this user alone."""
    if settings.master_key:
        try:
            return LocalKeyProvider.from_base64(settings.master_key)
        except (KeyConfigurationError, ValueError) as exc:
            raise SettingsError(f"PHIGATE_MASTER_KEY is unusable: {exc}") from None
    if settings.is_production:
        raise SettingsError(
            "PHIGATE_MASTER_KEY (or PHIGATE_MASTER_KEY_FILE) is required in production"
        )
    path = development_key_file(settings)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(generate_key() + "\n")
    return LocalKeyProvider.from_base64(path.read_text(encoding="utf-8").strip())
