"""The analyst console in a real browser: Debian's Chromium, headless, driven through
chromedriver, against `phigate serve` on a database of its own.

An analyst signs in with a TOTP code, picks a purpose, runs de-identified counts, is
refused a record-level query, lets a short idle limit expire and lands back on sign-in,
signs in again and signs out. A page on another origin cannot make a console request
with the analyst's cookie. localStorage, sessionStorage, the URL and document.cookie
hold no token. The page works with every host but the gateway unreachable, and raises
no Content-Security-Policy violation. A screenshot of the signed-in console is written
to the test output directory.

Without Chromium these tests are skipped with the reason, unless PHIGATE_REQUIRE_BROWSER
is set (`.ci/run` sets it, after installing the packages): then they fail.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pyotp
import pytest
from sqlalchemy import text

from db.demo import DEMO_PASSWORD, demo_totp_secret
from db.embedded import EmbeddedPostgres
from db.engine import create_engine
from graph.http.console import assets
from graph.settings import Settings
from tests.conftest import FAST_HASHING, TEST_KEYS
from tests.e2e.served import SUMMARY, Served, serve

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REQUIRED = bool(os.environ.get("PHIGATE_REQUIRE_BROWSER"))
IDLE_MINUTES = "0.3"  # 18 seconds: long enough for each step, short enough to wait out
COUNTS = "{ deidentifiedCounts(by: AGE_BAND) { minimumCellSize cells { key suppressed } } }"
RECORDS = "{ patients(first: 1) { edges { node { id } } } }"


def unavailable(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (PHIGATE_REQUIRE_BROWSER is set)")
    pytest.skip(reason)


def output_directory() -> Path:
    directory = Path(os.environ.get("PHIGATE_TEST_OUTPUT") or ROOT / "var" / "test-output")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def console_assets() -> Path:
    """The real GraphiQL and React files: where the README's command put them, or
    fetched once (from the npm registry, integrity-checked) into the same place."""
    directory = Path(os.environ.get("PHIGATE_CONSOLE_ASSETS") or ROOT / "var" / "console-assets")
    if assets.missing(directory):
        try:
            assets.fetch(directory)
        except assets.AssetError as exc:
            unavailable(f"the console's assets are absent and cannot be fetched: {exc}")
    return directory


@pytest.fixture(scope="module")
def gateway(
    postgres: EmbeddedPostgres, tmp_path_factory: pytest.TempPathFactory, console_assets: Path
) -> Iterator[Served]:
    from graph.cli.identity import seed_demo_users

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable(
            "Chromium and chromedriver are not installed (apt install chromium chromium-driver)"
        )
    with serve(
        postgres,
        tmp_path_factory.mktemp("console"),
        PHIGATE_CONSOLE_ASSETS=str(console_assets),
        PHIGATE_SESSION_IDLE_MINUTES=IDLE_MINUTES,
        PHIGATE_LOCKOUT_THRESHOLD="50",
    ) as served:
        seed_demo_users(
            Settings(**TEST_KEYS, **FAST_HASHING), postgres.admin_target(served.database)
        )
        asyncio.run(_register_demo_operations(served))
        yield served


async def _register_demo_operations(served: Served) -> None:
    from db.demo_operations import register_demo_operations

    engine = create_engine(
        served.postgres.admin_target(served.database), pool_size=1, max_overflow=0
    )
    try:
        await register_demo_operations(engine)
    finally:
        await engine.dispose()


def chromium(*arguments: str):  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,900",
        *arguments,
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


@pytest.fixture
def browser(gateway: Served) -> Iterator:  # type: ignore[type-arg]
    # Every host but this machine unreachable: the console must need nothing
    # from the internet (no CDN, no fonts, no telemetry).
    driver = chromium("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost")
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(condition, timeout: float = 20, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = condition()
            if last:
                return last
        except Exception as exc:  # the page is still rendering
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def visible(driver, element_id: str) -> bool:  # type: ignore[no-untyped-def]
    return bool(
        driver.execute_script(
            "const e = document.getElementById(arguments[0]); return e && !e.hidden;", element_id
        )
    )


_used_steps: set[int] = set()


def analyst_code() -> str:
    """The demo analyst's next unused TOTP code (each is good once; the window accepts
    the next step too)."""
    totp = pyotp.TOTP(demo_totp_secret("ANALYST"))
    step = totp.timecode(time.time())
    for candidate in (step, step + 1):
        if candidate not in _used_steps:
            _used_steps.add(candidate)
            return totp.generate_otp(candidate)
    time.sleep(31 - time.time() % 30)
    return analyst_code()


def sign_in(driver) -> None:  # type: ignore[no-untyped-def]
    wait_for(lambda: visible(driver, "signin"), what="the sign-in form")
    driver.find_element("id", "username").clear()
    driver.find_element("id", "username").send_keys("demo.analyst")
    driver.find_element("id", "password").send_keys(DEMO_PASSWORD)
    driver.find_element("id", "totp").send_keys(analyst_code())
    driver.find_element("id", "signin-button").click()
    wait_for(lambda: visible(driver, "console"), what="the signed-in console")


def choose_purpose(driver, purpose: str) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", "purpose")).select_by_value(purpose)
    wait_for(
        lambda: driver.find_element("id", "purpose-shown").text == f"Declared: {purpose}",
        what="the declared purpose shown",
    )
    wait_for(
        lambda: driver.execute_script(
            "return !!document.querySelector('.graphiql-query-editor .CodeMirror')"
        ),
        what="GraphiQL's editor",
    )


def run(driver, query: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    driver.execute_script(
        "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue("
        "arguments[0]);",
        query,
    )
    driver.execute_script(
        "const r = document.querySelector('.graphiql-response .CodeMirror');"
        " if (r) r.CodeMirror.setValue('');"
    )
    driver.find_element("css selector", ".graphiql-execute-button").click()
    shown = wait_for(
        lambda: driver.execute_script(
            "const r = document.querySelector('.graphiql-response .CodeMirror');"
            " return r && r.CodeMirror.getValue();"
        ),
        what="GraphiQL's result",
    )
    return json.loads(shown)  # type: ignore[no-any-return]


def storage_and_url(driver) -> dict:  # type: ignore[no-untyped-def,type-arg]
    return driver.execute_script(  # type: ignore[no-any-return]
        "const dump = (s) => Object.fromEntries(Object.keys(s).map((k) => [k, s.getItem(k)]));"
        " return {local: dump(localStorage), session: dump(sessionStorage),"
        " url: location.href, cookie: document.cookie};"
    )


def csp_violations(driver) -> list[str]:  # type: ignore[no-untyped-def]
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]


def test_an_analyst_signs_in_explores_idles_out_and_signs_out(browser, gateway: Served):  # type: ignore[no-untyped-def]
    browser.get(f"{gateway.base}/graphql")
    assert browser.current_url == f"{gateway.base}/console"
    sign_in(browser)
    assert browser.find_element("id", "who").text == "demo.analyst"
    assert browser.find_element("id", "role").text == "ANALYST"
    offered = [
        option.get_attribute("value")
        for option in browser.find_elements("css selector", "#purpose option")
    ]
    assert "RESEARCH" in offered and "EMERGENCY" not in offered
    choose_purpose(browser, "RESEARCH")

    counts = run(browser, COUNTS)
    assert counts["data"]["deidentifiedCounts"]["minimumCellSize"] == 11
    assert counts["data"]["deidentifiedCounts"]["cells"]
    refused = run(browser, RECORDS)
    assert refused["data"] is None
    assert refused["errors"][0]["extensions"]["code"].startswith("FORBIDDEN")

    # The library: the registered operations the analyst's role may run, ready to open.
    names = wait_for(
        lambda: [b.text for b in browser.find_elements("css selector", "#operations .operation")],
        what="the operation library",
    )
    assert "PatientsByAgeBand" in names and "PatientsByZip3" in names
    assert "BreachDeadlines" not in names  # a compliance officer's, not an analyst's
    next(
        b
        for b in browser.find_elements("css selector", "#operations .operation")
        if b.text == "PatientsByZip3"
    ).click()
    wait_for(
        lambda: (
            "query PatientsByZip3"
            in browser.execute_script(
                "return document.querySelector('.graphiql-query-editor .CodeMirror')"
                ".CodeMirror.getValue()"
            )
        ),
        what="the opened operation in the editor",
    )
    browser.find_element("css selector", ".graphiql-execute-button").click()
    zip3 = wait_for(
        lambda: json.loads(
            browser.execute_script(
                "return document.querySelector('.graphiql-response .CodeMirror')"
                ".CodeMirror.getValue()"
            )
            or "null"
        ),
        what="the opened operation's result",
    )
    assert zip3["data"]["deidentifiedCounts"]["cells"]

    # The purpose is shown at all times and the idle clock counts down.
    assert browser.find_element("id", "purpose-shown").text == "Declared: RESEARCH"
    assert browser.find_element("id", "idle-left").text.startswith("0:")
    run(browser, COUNTS)
    screenshot = output_directory() / "console-signed-in.png"
    browser.save_screenshot(str(screenshot))
    SUMMARY.append(f"console: screenshot of the signed-in console at {screenshot}")

    # No token anywhere the page's scripts can reach.
    held = storage_and_url(browser)
    assert held["local"] == {} and held["session"] == {}, held
    assert held["cookie"] == ""  # HttpOnly: invisible to scripts
    assert held["url"] == f"{gateway.base}/console"
    cookies = {cookie["name"]: cookie for cookie in browser.get_cookies()}
    assert set(cookies) == {"__Host-phigate-console"}
    cookie = cookies["__Host-phigate-console"]
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/" and not cookie["domain"].startswith(".")
    assert csp_violations(browser) == []
    # Nothing was fetched from anywhere but the gateway.
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert fetched and all(url.startswith(gateway.base) for url in fetched), fetched

    # Idle: no request for longer than the limit, and the page is back at sign-in.
    wait_for(lambda: visible(browser, "signin"), timeout=60, what="the idle sign-out")
    assert "without activity" in browser.find_element("id", "signin-message").text
    assert browser.execute_script("return document.querySelector('.graphiql-container')") is None

    # Sign in again, then out: the old cookie is worthless afterwards.
    sign_in(browser)
    choose_purpose(browser, "RESEARCH")
    value = browser.get_cookie("__Host-phigate-console")["value"]
    browser.find_element("id", "signout").click()
    wait_for(lambda: visible(browser, "signin"), what="the signed-out page")
    assert browser.find_element("id", "signin-message").text == "You have signed out."
    assert browser.get_cookie("__Host-phigate-console") is None
    import httpx

    replayed = httpx.post(
        f"{gateway.base}/graphql",
        json={"query": COUNTS},
        headers={
            "Cookie": f"__Host-phigate-console={value}",
            "X-Phigate-Console": "1",
            "Origin": gateway.base,
            "X-Purpose-Of-Use": "RESEARCH",
        },
    )
    assert replayed.status_code == 401


class _Attacker(http.server.BaseHTTPRequestHandler):
    page = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(self.page)

    def log_message(self, *args: object) -> None:
        pass


ATTACK = """<!doctype html><html><body><pre id="out">running</pre><script>
const target = "%(target)s";
const body = JSON.stringify({query: "%(query)s"});
const results = {};
async function attempt(name, path, options) {
  try {
    const response = await fetch(target + path, Object.assign({credentials: "include"}, options));
    results[name] = response.type === "opaque" ? "opaque" : "status " + response.status
      + " " + (await response.text()).slice(0, 200);
  } catch (error) {
    results[name] = "blocked";
  }
}
(async () => {
  await attempt("json_with_console_header", "/graphql", {method: "POST", body: body,
    headers: {"Content-Type": "application/json", "X-Phigate-Console": "1",
              "X-Purpose-Of-Use": "RESEARCH"}});
  await attempt("simple_post", "/graphql", {method: "POST", mode: "no-cors", body: body,
    headers: {"Content-Type": "text/plain"}});
  await attempt("session_facts", "/console/session", {headers: {"X-Phigate-Console": "1"}});
  await attempt("sign_out", "/console/session", {method: "DELETE", mode: "no-cors"});
  document.getElementById("out").textContent = JSON.stringify(results);
})();
</script></body></html>"""


async def _analyst_activity(gateway: Served) -> tuple[int, int]:
    engine = create_engine(
        gateway.postgres.admin_target(gateway.database), pool_size=1, max_overflow=0
    )
    try:
        async with engine.connect() as connection:
            row = (
                await connection.execute(
                    text(
                        "SELECT (SELECT count(*) FROM audit.events e JOIN phigate.users u"
                        "  ON e.actor_id = u.id::text WHERE u.username = 'demo.analyst'),"
                        " (SELECT count(*) FROM phigate.sessions s JOIN phigate.users u"
                        "  ON s.user_id = u.id WHERE u.username = 'demo.analyst'"
                        "  AND s.revoked_at IS NULL AND s.expires_at > now())"
                    )
                )
            ).one()
            return int(row[0]), int(row[1])
    finally:
        await engine.dispose()


def test_another_origin_cannot_use_the_analyst_s_cookie(browser, gateway: Served):  # type: ignore[no-untyped-def]
    browser.get(f"{gateway.base}/console")
    sign_in(browser)
    choose_purpose(browser, "RESEARCH")
    assert run(browser, COUNTS)["data"]["deidentifiedCounts"]
    before = asyncio.run(_analyst_activity(gateway))

    _Attacker.page = (ATTACK % {"target": gateway.base, "query": COUNTS}).encode()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Attacker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # localhost is another site than 127.0.0.1: the cookie is SameSite=Strict, and
        # even a request that carried it would lack the console's proof.
        attacker = f"http://localhost:{server.server_address[1]}/"
        browser.execute_script("window.open(arguments[0], 'attacker')", attacker)
        browser.switch_to.window(browser.window_handles[-1])
        results = json.loads(
            wait_for(
                lambda: (
                    browser.find_element("id", "out").text
                    if browser.find_element("id", "out").text != "running"
                    else None
                ),
                what="the attacker page's attempts",
            )
        )
    finally:
        server.shutdown()
    assert results["json_with_console_header"] == "blocked", results  # no CORS preflight
    assert results["session_facts"] == "blocked", results
    assert results["simple_post"] == "opaque", results
    # Nothing ran as the analyst and the session is still live (the sign-out failed).
    assert asyncio.run(_analyst_activity(gateway)) == before

    browser.switch_to.window(browser.window_handles[0])
    assert run(browser, COUNTS)["data"]["deidentifiedCounts"]


def test_the_page_needs_nothing_from_the_internet_and_allows_no_inline_script(
    browser,  # type: ignore[no-untyped-def]
    gateway: Served,
):
    import httpx

    page = httpx.get(f"{gateway.base}/console")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "unsafe-inline" not in csp
    browser.get(f"{gateway.base}/console")
    sign_in(browser)
    choose_purpose(browser, "RESEARCH")
    wait_for(
        lambda: browser.execute_script("return !!document.querySelector('.graphiql-container')"),
        what="GraphiQL",
    )
    # An inline script injected into the page is refused by the browser.
    browser.execute_script(
        "const s = document.createElement('script'); s.textContent = 'window.injected = 1';"
        " document.body.append(s);"
    )
    assert browser.execute_script("return window.injected === undefined")
    assert any("Content Security Policy" in line for line in csp_violations(browser))
    fetched = browser.execute_script(
        "return performance.getEntriesByType('resource').map((e) => e.name)"
    )
    assert all(url.startswith(gateway.base) for url in fetched), fetched


def test_an_analyst_signs_in_at_the_organisation_s_provider(  # type: ignore[no-untyped-def]
    postgres: EmbeddedPostgres,
    tmp_path_factory: pytest.TempPathFactory,
    console_assets: Path,
):
    """The provider's sign-in in a real browser: the console sends it to the provider (on
    another site, `localhost`), which sends it back to the callback; the flow's cookie
    must survive that cross-site navigation (SameSite=Lax) and the console cookie must
    then work (SameSite=Strict, set by the gateway's own response)."""
    from joserfc.jwk import KeySet

    from tests.e2e.test_console_oidc import CLIENT_ID, ISSUER, KEY, Provider, _Handler

    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        unavailable("Chromium and chromedriver are not installed")
    provider = Provider(("127.0.0.1", 0), _Handler)
    provider.codes, provider.exchanged, provider.mode, provider.followed = {}, [], "ok", []
    threading.Thread(target=provider.serve_forever, daemon=True).start()
    folder = tmp_path_factory.mktemp("console-oidc")
    jwks = folder / "jwks.json"
    jwks.write_text(json.dumps(KeySet([KEY]).as_dict(private=False)))
    port = provider.server_address[1]
    try:
        with serve(
            postgres,
            folder,
            PHIGATE_CONSOLE_ASSETS=str(console_assets),
            PHIGATE_OIDC_ISSUER=ISSUER,
            PHIGATE_OIDC_AUDIENCE="phigate-api",
            PHIGATE_OIDC_JWKS_FILE=str(jwks),
            PHIGATE_OIDC_ROLE_MAP="phigate-analysts:ANALYST",
            PHIGATE_OIDC_CONSOLE_CLIENT_ID=CLIENT_ID,
            PHIGATE_OIDC_AUTHORIZATION_ENDPOINT=f"http://localhost:{port}/authorize",
            PHIGATE_OIDC_TOKEN_ENDPOINT=f"http://127.0.0.1:{port}/token",
        ) as gateway:
            driver = chromium(
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"
            )
            try:
                driver.get(f"{gateway.base}/console")
                wait_for(lambda: visible(driver, "signin"), what="the sign-in page")
                assert not visible(driver, "password-signin")
                driver.find_element("id", "oidc-signin").click()
                wait_for(lambda: visible(driver, "console"), what="the console after the provider")
                assert driver.current_url == f"{gateway.base}/console"
                assert driver.find_element("id", "who").text == "oidc:00u-console-synthetic"
                assert driver.find_element("id", "role").text == "ANALYST"
                choose_purpose(driver, "RESEARCH")
                counts = run(driver, COUNTS)
                assert counts["data"]["deidentifiedCounts"]["minimumCellSize"] == 11
                assert len(provider.exchanged) == 1  # one code, exchanged once, with PKCE
                held = storage_and_url(driver)
                assert held["local"] == {} and held["cookie"] == ""
                assert {c["name"] for c in driver.get_cookies()} == {"__Host-phigate-console"}
            finally:
                driver.quit()
    finally:
        provider.shutdown()
