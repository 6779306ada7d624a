"""The analyst console: GraphiQL in the browser, signed in with a session cookie."""
