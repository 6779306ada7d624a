"""The console's one HTML page.

Everything it runs comes from phigate itself: GraphiQL and React from the assets
directory (`phigate console fetch-assets`), the console's own script and styles from
this package. No inline script or style, so the Content-Security-Policy allows scripts
and styles from 'self' only, without 'unsafe-inline'; each file is also pinned by a
Subresource Integrity hash computed from the file served. When the assets are absent,
the page says in plain words what to run (never a blank page).
"""

from __future__ import annotations

import base64
import hashlib
from html import escape
from pathlib import Path

from starlette.responses import HTMLResponse

from graph.http.console import assets
from graph.http.middleware import HTML_CSP

STATIC_DIRECTORY = Path(__file__).parent / "static"
ASSETS_PATH = "/console/assets"
STATIC_PATH = "/console/static"


def _integrity(path: Path) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(path.read_bytes()).digest()).decode()


class ConsolePage:
    def __init__(self, assets_directory: Path, *, oidc: bool = False) -> None:
        self.assets_directory = assets_directory
        self.oidc = oidc
        self._html: str | None = None

    def _files(self) -> tuple[list[tuple[str, Path]], list[tuple[str, Path]]]:
        scripts, styles = [], []
        for relative in assets.asset_paths():
            entry = (f"{ASSETS_PATH}/{relative}", self.assets_directory / relative)
            (styles if relative.endswith(".css") else scripts).append(entry)
        scripts.append((f"{STATIC_PATH}/console.js", STATIC_DIRECTORY / "console.js"))
        styles.append((f"{STATIC_PATH}/console.css", STATIC_DIRECTORY / "console.css"))
        return scripts, styles

    def _render(self) -> str:
        scripts, styles = self._files()
        head = "\n".join(
            [
                f'<link rel="stylesheet" href="{escape(url)}" integrity="{_integrity(path)}">'
                for url, path in styles
            ]
            + [
                f'<script src="{escape(url)}" integrity="{_integrity(path)}" defer></script>'
                for url, path in scripts
            ]
        )
        # With an identity provider configured the console signs in there, instead of
        # with a local password (the provider owns the accounts and their MFA).
        return (
            SHELL.replace("{head}", head)
            .replace("{oidc}", ' data-oidc="1"' if self.oidc else "")
            .replace("{password_hidden}", " hidden" if self.oidc else "")
            .replace("{oidc_hidden}", "" if self.oidc else " hidden")
        )

    def response(self) -> HTMLResponse:
        absent = assets.missing(self.assets_directory)
        if absent:
            self._html = None
            return HTMLResponse(
                ABSENT,
                status_code=503,
                headers={"Content-Security-Policy": HTML_CSP},
            )
        if self._html is None:
            self._html = self._render()
        return HTMLResponse(self._html, headers={"Content-Security-Policy": HTML_CSP})


ABSENT = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>phigate console: assets not installed</title></head>
<body>
<h1>The phigate console is not installed yet</h1>
<p>The console runs GraphiQL, whose scripts phigate serves itself (it loads nothing from
the internet). They are not installed on this gateway.</p>
<p>On a machine that can reach the npm registry (or your organisation's npm mirror,
named by <code>PHIGATE_NPM_REGISTRY</code>), run:</p>
<pre>phigate console fetch-assets</pre>
<p>It downloads pinned versions of GraphiQL and React, checks each against its published
integrity hash, and installs them there (or where <code>PHIGATE_CONSOLE_ASSETS</code>
points). Then reload this page. The gateway's API works without them.</p>
</body>
</html>
"""

SHELL = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>phigate console</title>
{head}
</head>
<body>
<noscript>The phigate console needs JavaScript.</noscript>
<main id="signin" class="signin" hidden{oidc}>
  <form id="signin-form" class="signin-card" autocomplete="off" novalidate>
    <h1>phigate console</h1>
    <p id="signin-message" class="message" role="alert" hidden></p>
    <div id="password-signin" class="signin-fields"{password_hidden}>
      <p class="signin-lead">Sign in with your phigate account and authenticator code.</p>
      <label>Username <input id="username" name="username" autocomplete="username"
        required maxlength="64"></label>
      <label>Password <input id="password" name="password" type="password"
        autocomplete="current-password" required maxlength="256"></label>
      <label>Authenticator code <input id="totp" name="totp" inputmode="numeric"
        autocomplete="one-time-code" required maxlength="10" pattern="[0-9]*"></label>
      <button id="signin-button" type="submit">Sign in</button>
    </div>
    <a id="oidc-signin" class="oidc button" href="/console/oidc/start"{oidc_hidden}>Sign in
      with your organisation's identity provider</a>
    <p class="fineprint">Every request is recorded: who, what, when and the purpose
      declared.</p>
  </form>
</main>
<div id="console" class="console" hidden>
  <header class="bar">
    <strong class="brand">phigate</strong>
    <span>Signed in as <strong id="who"></strong> (<span id="role"></span>)</span>
    <label class="purpose">Purpose of use
      <select id="purpose"></select>
    </label>
    <span id="purpose-shown" class="purpose-shown"></span>
    <span class="idle">Idle sign-out in <strong id="idle-left"></strong></span>
    <button id="signout" type="button">Sign out</button>
  </header>
  <div class="body">
    <aside class="library">
      <h2>Operations</h2>
      <p class="hint">Registered operations your role may run.</p>
      <ul id="operations"></ul>
    </aside>
    <section id="graphiql" class="graphiql">
      <p id="choose-purpose" class="choose">Choose the purpose of use for this session.</p>
    </section>
  </div>
</div>
</body>
</html>
"""
