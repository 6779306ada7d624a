"""Query and mutation resolvers, one module per area, and the per-request loaders.

Resolvers load through ``db`` and the request's loaders, apply ``domain`` rules, and
return rows; the ``graph`` layer turns rows into GraphQL types. They never commit.
"""
