// The phigate analyst console. It never sees a token: the session is an HttpOnly
// cookie the browser sends with same-origin requests, and every request this script
// makes carries the X-Phigate-Console header that the gateway requires before it
// honours the cookie. Nothing is written to localStorage, sessionStorage or the URL:
// GraphiQL gets an in-memory storage and its headers editor is off.
"use strict";

(function () {
  const CONSOLE_HEADER = { "X-Phigate-Console": "1" };
  const POLL_MS = 30000;

  const $ = (id) => document.getElementById(id);
  const state = {
    session: null,
    purpose: null,
    root: null,
    operation: null,
    mount: 0,
    idleDeadline: 0,
    ticker: null,
    poller: null,
    checking: false,
  };

  // GraphiQL keeps tabs, queries and history in the Storage it is given: here, one that
  // lives as long as the page (a query text can name a record; it must not outlive the
  // session in the browser's profile).
  function memoryStorage() {
    const items = new Map();
    return {
      getItem: (key) => (items.has(key) ? items.get(key) : null),
      setItem: (key, value) => items.set(key, String(value)),
      removeItem: (key) => items.delete(key),
      clear: () => items.clear(),
      get length() {
        return items.size;
      },
    };
  }

  async function call(method, path, body) {
    const options = {
      method: method,
      credentials: "same-origin",
      cache: "no-store",
      headers: Object.assign({}, CONSOLE_HEADER),
    };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    return fetch(path, options);
  }

  async function describe(response) {
    try {
      const body = await response.json();
      return body.error_description || "The request was refused.";
    } catch (error) {
      return "The gateway did not answer as expected (" + response.status + ").";
    }
  }

  function showSignIn(message) {
    stopTimers();
    state.session = null;
    state.purpose = null;
    if (state.root) {
      state.root.unmount();
      state.root = null;
    }
    $("console").hidden = true;
    $("signin").hidden = false;
    const shown = $("signin-message");
    shown.textContent = message || "";
    shown.hidden = !message;
    $("password").value = "";
    $("totp").value = "";
    if (!$("password-signin").hidden) $("username").focus();
  }

  function stopTimers() {
    if (state.ticker) clearInterval(state.ticker);
    if (state.poller) clearInterval(state.poller);
    state.ticker = state.poller = null;
  }

  function formatLeft(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function idleWords(seconds) {
    return seconds >= 120 ? Math.round(seconds / 60) + " minutes" : seconds + " seconds";
  }

  function tick() {
    const left = (state.idleDeadline - Date.now()) / 1000;
    $("idle-left").textContent = formatLeft(left);
    if (left <= 0 && !state.checking) {
      state.checking = true;
      refreshSession(true).finally(() => (state.checking = false));
    }
  }

  async function refreshSession(expiring) {
    let response;
    try {
      response = await call("GET", "/console/session");
    } catch (error) {
      return; // offline for a moment: the next poll asks again
    }
    if (response.status === 401 || response.status === 403) {
      showSignIn(
        expiring
          ? "Your session ended after " +
              idleWords(state.session ? state.session.idleSeconds : 900) +
              " without activity. Sign in again."
          : "Your session has ended. Sign in again."
      );
      return;
    }
    if (!response.ok) return;
    const session = await response.json();
    const first = state.session === null;
    state.session = session;
    state.idleDeadline = Date.now() + session.idleRemainingSeconds * 1000;
    if (first) showConsole();
    tick();
  }

  function showConsole() {
    const session = state.session;
    $("signin").hidden = true;
    $("console").hidden = false;
    $("who").textContent = session.username;
    $("role").textContent = session.role;
    const select = $("purpose");
    select.replaceChildren();
    if (session.purposes.length !== 1) {
      select.append(new Option("Choose a purpose…", ""));
    }
    for (const purpose of session.purposes) select.append(new Option(purpose, purpose));
    setPurpose(session.purposes.length === 1 ? session.purposes[0] : null);
    loadOperations();
    stopTimers();
    state.ticker = setInterval(tick, 1000);
    state.poller = setInterval(() => refreshSession(false), POLL_MS);
  }

  function setPurpose(purpose) {
    state.purpose = purpose || null;
    $("purpose").value = purpose || "";
    $("purpose-shown").textContent = purpose ? "Declared: " + purpose : "No purpose declared";
    $("purpose-shown").classList.toggle("missing", !purpose);
    mountGraphiQL();
  }

  // Every GraphQL request: the console header, the declared purpose, the cookie (sent
  // by the browser). A 401 means the session ended: back to sign-in.
  async function consoleFetch(url, options) {
    const headers = Object.assign({}, (options && options.headers) || {}, CONSOLE_HEADER, {
      "X-Purpose-Of-Use": state.purpose,
    });
    const response = await fetch(
      url,
      Object.assign({}, options, { headers: headers, credentials: "same-origin" })
    );
    if (response.status === 401) {
      showSignIn("Your session has ended. Sign in again.");
    } else {
      refreshSession(false);
    }
    return response;
  }

  function mountGraphiQL() {
    const container = $("graphiql");
    if (!state.purpose) {
      if (state.root) {
        state.root.unmount();
        state.root = null;
      }
      container.replaceChildren($("choose-purpose") || document.createElement("p"));
      const prompt = container.firstChild;
      prompt.id = "choose-purpose";
      prompt.className = "choose";
      prompt.textContent = "Choose the purpose of use for this session.";
      return;
    }
    if (!state.root) {
      container.replaceChildren();
      state.root = ReactDOM.createRoot(container);
    }
    const fetcher = GraphiQL.createFetcher({ url: "/graphql", fetch: consoleFetch });
    const plugins = window.GraphiQLPluginExplorer
      ? [GraphiQLPluginExplorer.explorerPlugin()]
      : [];
    state.mount += 1;
    state.root.render(
      React.createElement(GraphiQL, {
        key: state.purpose + ":" + state.mount,
        fetcher: fetcher,
        storage: memoryStorage(),
        shouldPersistHeaders: false,
        isHeadersEditorEnabled: false,
        defaultEditorToolsVisibility: false,
        plugins: plugins,
        query: state.operation
          ? state.operation.document
          : "# Purpose of use: " + state.purpose + "\n{\n  __typename\n}\n",
      })
    );
  }

  async function loadOperations() {
    const list = $("operations");
    list.replaceChildren();
    let response;
    try {
      response = await call("GET", "/console/operations");
    } catch (error) {
      return;
    }
    if (!response.ok) return;
    const body = await response.json();
    if (body.operations.length === 0) {
      const empty = document.createElement("li");
      empty.className = "hint";
      empty.textContent = "No registered operation is open to your role.";
      list.append(empty);
    }
    for (const operation of body.operations) {
      const item = document.createElement("li");
      const open = document.createElement("button");
      open.type = "button";
      open.className = "operation";
      open.textContent = operation.name;
      open.title = "Purposes: " + operation.purposes.join(", ");
      open.addEventListener("click", () => {
        state.operation = operation;
        if (!state.purpose || !operation.purposes.includes(state.purpose)) {
          setPurpose(operation.purposes.length === 1 ? operation.purposes[0] : state.purpose);
        } else {
          mountGraphiQL();
        }
      });
      const about = document.createElement("p");
      about.textContent = operation.description;
      item.append(open, about);
      list.append(item);
    }
  }

  async function signIn(event) {
    event.preventDefault();
    const button = $("signin-button");
    button.disabled = true;
    try {
      const response = await call("POST", "/console/session", {
        username: $("username").value,
        password: $("password").value,
        totp: $("totp").value,
      });
      $("password").value = "";
      $("totp").value = "";
      if (!response.ok) {
        showSignIn(await describe(response));
        return;
      }
      await refreshSession(false);
    } catch (error) {
      showSignIn("The gateway cannot be reached.");
    } finally {
      button.disabled = false;
    }
  }

  async function signOut() {
    try {
      await call("DELETE", "/console/session");
    } finally {
      showSignIn("You have signed out.");
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("signin-form").addEventListener("submit", signIn);
    $("signout").addEventListener("click", signOut);
    $("purpose").addEventListener("change", (event) => {
      state.operation = null;
      setPurpose(event.target.value);
    });
    call("GET", "/console/session")
      .then((response) => {
        if (response.ok) return refreshSession(false);
        showSignIn("");
      })
      .catch(() => showSignIn("The gateway cannot be reached."));
  });
})();
