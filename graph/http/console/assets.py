"""GraphiQL's scripts and styles for the analyst console, fetched once from an npm
registry into a directory the gateway serves, so the console works with no route to a CDN.

These scripts run in an analyst's browser next to PHI, so they must be exactly the ones
that were reviewed: every package is pinned by version *and* by the registry's own
``dist.integrity`` (sha512 of the tarball), checked before anything is unpacked. Only the
listed files are read out of a tarball (never ``extractall``: a link or a ``../`` name
could write outside the directory), and the directory is replaced only once every
package has been verified, so a failure leaves the previous one as it was.

On disk: ``<directory>/<name>@<version>/<file>``, the contract the console page relies on.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import io
import json
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

DEFAULT_REGISTRY = "https://registry.npmjs.org"
DEFAULT_DIRECTORY = "var/console-assets"
# The largest pinned tarball (graphiql) is about 3.6 MB.
MAX_TARBALL_BYTES = 20 * 1024 * 1024
# A listed file larger than this is refused: gzip can hide a lot in 20 MB.
MAX_FILE_BYTES = 50 * 1024 * 1024
# Written into the directory; an existing non-empty directory without it is not ours to replace.
MANIFEST = "phigate-console-assets.json"
# A proxy's answer when it has no route to the registry: as good as unreachable.
GATEWAY_ERRORS = frozenset({502, 503, 504})


@dataclass(frozen=True)
class Package:
    name: str  # e.g. "graphiql", "@graphiql/plugin-explorer"
    version: str  # exact pin
    integrity: str  # the registry's dist.integrity for that tarball ("sha512-<base64>")
    files: tuple[str, ...]  # paths inside the package, without the tarball's "package/"

    def __post_init__(self) -> None:
        if not self.integrity.startswith("sha512-"):
            raise ValueError(f"{self.pinned}: integrity must be npm's sha512-<base64>")
        for file in self.files:
            path = PurePosixPath(file)
            if path.is_absolute() or ".." in path.parts or "\\" in file:
                raise ValueError(f"{self.pinned}: {file!r} is not a path inside the package")

    @property
    def pinned(self) -> str:
        """``name@version``: the directory this package's files live in."""
        return f"{self.name}@{self.version}"

    @property
    def tarball(self) -> str:
        """Where the tarball lives under a registry's URL (a scope is not in the file name)."""
        basename = self.name.rpartition("/")[2]
        return f"{self.name}/-/{basename}-{self.version}.tgz"


PINNED: tuple[Package, ...] = (
    Package(
        "react",
        "18.2.0",
        "sha512-/3IjMdb2L9QbBdWiW5e3P2/npwMBaU9mHCSCUzNln0ZCYbcfTsGbTJrU/kGemdH2IWmB2ioZ+zkxtmq6g09fGQ==",
        ("umd/react.production.min.js",),
    ),
    Package(
        "react-dom",
        "18.2.0",
        "sha512-6IMTriUmvsjHUjNtEDudZfuDQUoWXVxKHhlEGSk81n4YFS+r/Kl99wXiwlVXtPBtJenozv2P+hxDsw9eA7Xo6g==",
        ("umd/react-dom.production.min.js",),
    ),
    Package(
        "graphiql",
        "3.8.3",
        "sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==",
        ("graphiql.min.js", "graphiql.min.css"),
    ),
    Package(
        "@graphiql/plugin-explorer",
        "1.0.2",
        "sha512-9j+kg2UjtLZD5EBmGjeWHkoVVxtbShYg2DzbUVebibnZYZM/iMBEF4vaccXJIAm5KaomIPLx0aoNs4LbODyc3Q==",
        ("dist/index.umd.js", "dist/style.css"),
    ),
)


class AssetError(Exception):
    """A refusal with a one-line message for the operator."""


class AssetIntegrityError(AssetError):
    """A downloaded tarball is not the one pinned."""


class RegistryUnreachable(AssetError):
    """The registry could not be reached at all (nothing was decided about the assets)."""


class TarballRefused(AssetError):
    """A tarball too large, holding a link or an escaping name, or lacking a listed file."""


@dataclass(frozen=True)
class FetchReport:
    directory: Path
    packages: tuple[Package, ...]
    downloaded: bool  # False: the directory was already complete

    @property
    def versions(self) -> list[str]:
        return [package.pinned for package in self.packages]


def default_directory(environ: Mapping[str, str] = os.environ) -> Path:
    """PHIGATE_CONSOLE_ASSETS, else ./var/console-assets (beside ./var/pgdata)."""
    return Path(environ.get("PHIGATE_CONSOLE_ASSETS") or DEFAULT_DIRECTORY)


def asset_paths(packages: tuple[Package, ...] = PINNED) -> list[str]:
    """Every file's path relative to the directory, in the packages' order."""
    return [f"{package.pinned}/{file}" for package in packages for file in package.files]


def missing(directory: Path, *, packages: tuple[Package, ...] = PINNED) -> list[str]:
    """The relative paths that are not a regular file inside ``directory`` (a symlink
    pointing out of it counts as missing: it is not ours)."""
    root = directory.resolve()
    absent = []
    for relative in asset_paths(packages):
        resolved = (directory / relative).resolve()
        if not (resolved.is_relative_to(root) and resolved.is_file()):
            absent.append(relative)
    return absent


def fetch(
    directory: Path,
    *,
    registry: str = DEFAULT_REGISTRY,
    timeout: float = 30,
    packages: tuple[Package, ...] = PINNED,
    force: bool = False,
    max_tarball_bytes: int = MAX_TARBALL_BYTES,
) -> FetchReport:
    """Download, verify and unpack every package, then put the directory in place.

    A complete directory is left alone unless ``force``. Raises RegistryUnreachable,
    AssetIntegrityError, TarballRefused or AssetError; on any of them nothing was written.
    """
    directory = Path(directory)
    if not force and directory.is_dir() and not missing(directory, packages=packages):
        return FetchReport(directory, packages, downloaded=False)
    _refuse_foreign(directory)
    url = _registry(registry)
    unpacked: dict[str, bytes] = {}
    for package in packages:
        body = _download(f"{url}/{package.tarball}", timeout, max_tarball_bytes)
        _verify(package, body)
        for file, content in _read_listed(package, body).items():
            unpacked[f"{package.pinned}/{file}"] = content
    _replace(directory, unpacked, packages)
    return FetchReport(directory, packages, downloaded=True)


def _refuse_foreign(directory: Path) -> None:
    """The directory is replaced whole: refuse one that holds something else."""
    if directory.is_symlink() or (directory.exists() and not directory.is_dir()):
        raise AssetError(f"{directory} is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / MANIFEST).is_file():
        raise AssetError(
            f"{directory} is not empty and was not written by `phigate console fetch-assets`:"
            " choose a new or empty directory"
        )


def _registry(registry: str) -> str:
    """The registry's base URL. Credentials in it are refused: they would be a secret in
    the environment with no ``_FILE`` form, and they would end up in shell history."""
    parts = urllib.parse.urlsplit(registry.rstrip("/"))
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        parts = parts._replace(scheme="")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AssetError(f"the registry must be an http(s) URL, not {_shown(registry)!r}")
    if "@" in parts.netloc:
        raise AssetError(
            "credentials in the registry URL are not supported: use a mirror that serves"
            " these packages without them, or run fetch-assets where one does"
        )
    return urllib.parse.urlunsplit(parts)


def _shown(url: str) -> str:
    """A URL fit for a message: never credentials someone put in it."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _download(url: str, timeout: float, limit: int) -> bytes:
    request = urllib.request.Request(url, headers={"Accept": "application/octet-stream"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            declared = response.headers.get("Content-Length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _too_large(url, limit)
            body = response.read(limit + 1)
    except urllib.error.HTTPError as exc:
        if exc.code in GATEWAY_ERRORS:
            raise RegistryUnreachable(
                f"the npm registry could not be reached: {_shown(url)} answered {exc.code}"
            ) from None
        raise AssetError(f"the npm registry answered {exc.code} for {_shown(url)}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise RegistryUnreachable(
            f"the npm registry could not be reached at {_shown(url)}"
            f" ({str(reason) or type(reason).__name__})"
        ) from None
    if len(body) > limit:
        raise _too_large(url, limit)
    return body


def _too_large(url: str, limit: int) -> TarballRefused:
    return TarballRefused(f"{_shown(url)} is larger than {limit} bytes: refused")


def _verify(package: Package, body: bytes) -> None:
    digest = "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()
    if digest != package.integrity:
        raise AssetIntegrityError(
            f"{package.pinned}: the downloaded tarball does not match the pinned integrity"
            " (a changed or tampered package, or a mirror serving something else): nothing"
            " was written"
        )


def _read_listed(package: Package, body: bytes) -> dict[str, bytes]:
    """The listed files, read by name. Every member is checked first, as npm unpacks a
    tarball: the first path component (``package/``) dropped, nothing but regular files
    and directories, no name outside the package."""
    found: dict[str, tarfile.TarInfo] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name)
                if name.is_absolute() or ".." in name.parts or "\\" in member.name:
                    raise TarballRefused(
                        f"{package.pinned}: the tarball holds a name outside the package"
                        f" ({member.name!r}): refused"
                    )
                if not (member.isfile() or member.isdir()):
                    raise TarballRefused(
                        f"{package.pinned}: the tarball holds a link or special file"
                        f" ({member.name!r}): refused"
                    )
                inside = PurePosixPath(*name.parts[1:]).as_posix()
                if member.isfile() and inside in package.files:
                    if member.size > MAX_FILE_BYTES:
                        raise TarballRefused(f"{package.pinned}: {inside} is too large: refused")
                    found[inside] = member
            absent = [file for file in package.files if file not in found]
            if absent:
                raise TarballRefused(f"{package.pinned}: the tarball has no {', '.join(absent)}")
            contents = {}
            for file, member in found.items():
                extracted = tar.extractfile(member)
                if extracted is None:  # not a regular file after all
                    raise TarballRefused(f"{package.pinned}: {file} cannot be read: refused")
                contents[file] = extracted.read()
            return contents
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise TarballRefused(
            f"{package.pinned}: the tarball cannot be read ({type(exc).__name__})"
        ) from None


def _replace(directory: Path, unpacked: dict[str, bytes], packages: tuple[Package, ...]) -> None:
    """Write everything beside the target, then swap it in. The previous directory is
    moved aside first and restored if the swap fails; readable by every user (the image
    serves as a non-root user)."""
    parent = directory.absolute().parent
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}-new-", dir=parent))
    try:
        for relative, content in unpacked.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            path.chmod(0o644)
        manifest = {package.pinned: package.integrity for package in packages}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        (staging / MANIFEST).chmod(0o644)
        for folder in (staging, *(p for p in staging.rglob("*") if p.is_dir())):
            folder.chmod(0o755)
        previous = None
        if directory.exists():
            previous = Path(tempfile.mkdtemp(prefix=f".{directory.name}-old-", dir=parent))
            previous.rmdir()
            directory.rename(previous)
        try:
            staging.rename(directory)
        except OSError:
            if previous is not None:
                previous.rename(directory)
            raise
        if previous is not None:
            shutil.rmtree(previous, ignore_errors=True)
    except OSError as exc:
        raise AssetError(
            f"{directory} could not be written ({type(exc).__name__}: {exc.strerror or exc})"
        ) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
