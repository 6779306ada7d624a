"""The GraphQL surface of phigate: types, directives, extensions, the ASGI app, the CLI."""
