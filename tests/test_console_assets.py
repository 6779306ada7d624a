"""`phigate console fetch-assets`: pinned GraphiQL assets, checked before anything is
unpacked, written whole or not at all.

Offline but for one test: a registry served from 127.0.0.1 with tarballs built here,
and packages pinned to their integrities. The last test fetches the real pinned
packages from registry.npmjs.org, so a wrong pin fails CI instead of a deployment.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import secrets
import socket
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from graph.cli.main import main
from graph.http.console.assets import (
    MANIFEST,
    PINNED,
    AssetError,
    AssetIntegrityError,
    Package,
    RegistryUnreachable,
    TarballRefused,
    asset_paths,
    fetch,
    missing,
)

SCRIPT = b"window.fake = 1;\n"
STYLE = b".fake { color: red }\n"


def tarball(files: dict[str, bytes], *, links: dict[str, str] | None = None) -> bytes:
    """A gzipped tarball as npm packs one: every name under ``package/``."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
        for name, target in (links or {}).items():
            member = tarfile.TarInfo(name)
            member.type = tarfile.SYMTYPE
            member.linkname = target
            tar.addfile(member)
    return buffer.getvalue()


def integrity(body: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(body).digest()).decode()


@dataclass
class Registry:
    url: str
    tarballs: dict[str, bytes] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    without_length: bool = False

    def publish(self, name: str, version: str, body: bytes, files: tuple[str, ...]) -> Package:
        package = Package(name, version, integrity(body), files)
        self.tarballs[f"/{package.tarball}"] = body
        return package


@pytest.fixture
def registry() -> Iterator[Registry]:
    state = Registry(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.requests.append(self.path)
            body = state.tarballs.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            if not state.without_length:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def two_packages(registry: Registry) -> tuple[Package, ...]:
    return (
        registry.publish(
            "fake-react",
            "1.0.0",
            tarball({"package/umd/fake.min.js": SCRIPT, "package/README.md": b"unused"}),
            ("umd/fake.min.js",),
        ),
        registry.publish(
            "@fake/plugin",
            "2.1.0",
            tarball({"package/dist/index.umd.js": SCRIPT, "package/dist/style.css": STYLE}),
            ("dist/index.umd.js", "dist/style.css"),
        ),
    )


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def snapshot(directory: Path) -> dict[str, bytes]:
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file()
    }


def test_the_pinned_layout_is_name_at_version_then_the_file() -> None:
    assert asset_paths() == [
        "react@18.2.0/umd/react.production.min.js",
        "react-dom@18.2.0/umd/react-dom.production.min.js",
        "graphiql@3.8.3/graphiql.min.js",
        "graphiql@3.8.3/graphiql.min.css",
        "@graphiql/plugin-explorer@1.0.2/dist/index.umd.js",
        "@graphiql/plugin-explorer@1.0.2/dist/style.css",
    ]
    assert PINNED[3].tarball == "@graphiql/plugin-explorer/-/plugin-explorer-1.0.2.tgz"


def test_verified_packages_are_written_in_the_layout(tmp_path: Path, registry: Registry) -> None:
    packages = two_packages(registry)
    target = tmp_path / "assets"
    assert missing(target, packages=packages) == asset_paths(packages)

    report = fetch(target, registry=registry.url, packages=packages)

    assert report.downloaded
    assert report.versions == ["fake-react@1.0.0", "@fake/plugin@2.1.0"]
    assert missing(target, packages=packages) == []
    assert snapshot(target) == {
        "@fake/plugin@2.1.0/dist/index.umd.js": SCRIPT,
        "@fake/plugin@2.1.0/dist/style.css": STYLE,
        "fake-react@1.0.0/umd/fake.min.js": SCRIPT,
        MANIFEST: snapshot(target)[MANIFEST],
    }
    assert json.loads((target / MANIFEST).read_text())["fake-react@1.0.0"].startswith("sha512-")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assets"]  # no staging left behind
    assert (target.stat().st_mode & 0o777) == 0o755  # readable by the image's non-root user

    asked = len(registry.requests)
    again = fetch(target, registry=registry.url, packages=packages)
    assert not again.downloaded
    assert len(registry.requests) == asked  # complete: nothing downloaded
    assert fetch(target, registry=registry.url, packages=packages, force=True).downloaded


def test_a_mismatched_tarball_is_refused_and_the_previous_directory_kept(
    tmp_path: Path, registry: Registry
) -> None:
    packages = two_packages(registry)
    target = tmp_path / "assets"
    fetch(target, registry=registry.url, packages=packages)
    before = snapshot(target)
    registry.tarballs[f"/{packages[1].tarball}"] = tarball(
        {"package/dist/index.umd.js": b"window.evil = 1;", "package/dist/style.css": STYLE}
    )

    with pytest.raises(AssetIntegrityError) as refused:
        fetch(target, registry=registry.url, packages=packages, force=True)

    assert "@fake/plugin@2.1.0" in str(refused.value)
    assert "does not match the pinned integrity" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert snapshot(target) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assets"]


@pytest.mark.parametrize(
    ("files", "links"),
    [
        ({"package/dist/index.umd.js": SCRIPT}, {"package/dist/style.css": "/etc/passwd"}),
        ({"package/dist/index.umd.js": SCRIPT, "package/dist/style.css": STYLE}, {"x": "../y"}),
        ({"package/dist/index.umd.js": SCRIPT, "package/../../escape.css": STYLE}, None),
        ({"package/dist/index.umd.js": SCRIPT, "/abs/style.css": STYLE}, None),
    ],
    ids=["listed-symlink", "unlisted-symlink", "dot-dot", "absolute"],
)
def test_links_and_escaping_names_are_refused(
    tmp_path: Path, registry: Registry, files: dict[str, bytes], links: dict[str, str] | None
) -> None:
    package = registry.publish(
        "@fake/plugin", "2.1.0", tarball(files, links=links), ("dist/index.umd.js",)
    )
    target = tmp_path / "assets"
    with pytest.raises(TarballRefused, match="refused"):
        fetch(target, registry=registry.url, packages=(package,))
    assert list(tmp_path.iterdir()) == []
    assert not (tmp_path.parent / "escape.css").exists()


def test_a_listed_file_missing_from_the_tarball_is_refused(
    tmp_path: Path, registry: Registry
) -> None:
    package = registry.publish(
        "fake-react", "1.0.0", tarball({"package/other.js": SCRIPT}), ("umd/fake.min.js",)
    )
    with pytest.raises(TarballRefused, match=r"no umd/fake\.min\.js"):
        fetch(tmp_path / "assets", registry=registry.url, packages=(package,))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("without_length", [False, True], ids=["declared", "streamed"])
def test_an_oversize_tarball_is_refused(
    tmp_path: Path, registry: Registry, without_length: bool
) -> None:
    registry.without_length = without_length
    big = tarball({"package/umd/fake.min.js": secrets.token_bytes(64 * 1024)})
    package = registry.publish("fake-react", "1.0.0", big, ("umd/fake.min.js",))
    with pytest.raises(TarballRefused, match="larger than 4096 bytes"):
        fetch(
            tmp_path / "assets",
            registry=registry.url,
            packages=(package,),
            max_tarball_bytes=4096,
        )
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_registry_is_its_own_error(tmp_path: Path) -> None:
    with pytest.raises(RegistryUnreachable) as refused:
        fetch(tmp_path / "assets", registry=f"http://127.0.0.1:{closed_port()}", timeout=5)
    assert "could not be reached" in str(refused.value)
    assert list(tmp_path.iterdir()) == []


def test_a_missing_package_is_not_called_unreachable(tmp_path: Path, registry: Registry) -> None:
    with pytest.raises(AssetError, match="answered 404") as refused:
        fetch(tmp_path / "assets", registry=registry.url)
    assert not isinstance(refused.value, RegistryUnreachable)


def test_credentials_in_the_registry_url_are_refused_without_echoing_them(
    tmp_path: Path, registry: Registry
) -> None:
    token = secrets.token_hex(8)
    mirror = registry.url.replace("http://", f"http://mirror-user:{token}@")
    with pytest.raises(AssetError, match="credentials in the registry URL") as refused:
        fetch(tmp_path / "assets", registry=mirror)
    assert token not in str(refused.value)
    assert registry.requests == []  # nothing was asked
    assert list(tmp_path.iterdir()) == []


def test_a_directory_phigate_did_not_write_is_not_replaced(
    tmp_path: Path, registry: Registry
) -> None:
    packages = two_packages(registry)
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(AssetError, match="not written by"):
        fetch(tmp_path, registry=registry.url, packages=packages)
    assert snapshot(tmp_path) == {"notes.txt": b"keep me"}


def test_missing_does_not_count_a_symlink_out_of_the_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside.js"
    outside.write_bytes(SCRIPT)
    target = tmp_path / "assets"
    first = target / asset_paths()[0]
    first.parent.mkdir(parents=True)
    first.symlink_to(outside)
    assert asset_paths()[0] in missing(target)


def test_cli_if_reachable_exits_0_when_the_registry_cannot_be_reached(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "assets"
    registry = f"http://127.0.0.1:{closed_port()}"
    argv = ["console", "fetch-assets", "--directory", str(target), "--registry", registry]

    assert main([*argv, "--if-reachable"]) == 0
    said = capsys.readouterr().err.strip()
    assert "could not be reached" in said and "phigate console fetch-assets" in said
    assert len(said.splitlines()) == 1

    assert main(argv) == 2
    said = capsys.readouterr().err.strip()
    assert said.startswith("phigate: the npm registry could not be reached")
    assert "Traceback" not in said and len(said.splitlines()) == 1
    assert not target.exists()


def test_cli_fails_on_a_mismatch_even_if_reachable(
    tmp_path: Path, registry: Registry, capsys: pytest.CaptureFixture[str]
) -> None:
    for package in PINNED:
        registry.tarballs[f"/{package.tarball}"] = tarball({"package/x.js": SCRIPT})
    target = tmp_path / "assets"
    argv = ["console", "fetch-assets", "--directory", str(target), "--registry", registry.url]

    assert main([*argv, "--if-reachable"]) == 2
    said = capsys.readouterr().err.strip()
    assert said == (
        "phigate: react@18.2.0: the downloaded tarball does not match the pinned integrity"
        " (a changed or tampered package, or a mirror serving something else): nothing was"
        " written"
    )
    assert not target.exists()


def test_cli_reads_the_directory_and_registry_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PHIGATE_CONSOLE_ASSETS", str(tmp_path / "from-env"))
    monkeypatch.setenv("PHIGATE_NPM_REGISTRY", f"http://127.0.0.1:{closed_port()}")
    assert main(["console", "fetch-assets", "--if-reachable"]) == 0
    assert "127.0.0.1" in capsys.readouterr().err
    assert not (tmp_path / "from-env").exists()


@pytest.mark.parametrize("url", ["file:///srv/npm", "ftp://npm.example.org", "http://npm:port"])
def test_a_registry_that_is_not_an_http_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(AssetError, match="must be an http"):
        fetch(tmp_path / "assets", registry=url)


def test_the_pinned_packages_from_the_npm_registry_match_their_integrity(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The real thing, through the CLI: every pin's integrity and file list is right."""
    target = tmp_path / "console-assets"
    argv = ["console", "fetch-assets", "--directory", str(target)]
    assert main([*argv, "--registry", "https://registry.npmjs.org"]) == 0, capsys.readouterr().err
    printed = json.loads(capsys.readouterr().out)
    assert printed["packages"] == [package.pinned for package in PINNED]
    assert printed["downloaded"] is True
    assert missing(target) == []
    assert (target / "graphiql@3.8.3/graphiql.min.js").stat().st_size > 1_000_000
