"""The HTTP edge: the ASGI app, its middleware, the GraphQL view and the auth routes,
error answers, rate limits, and how `phigate serve` meets the network."""
