"""A parse cache that keeps syntax errors reportable.

Strawberry's ParserCache parses inside its on_parse hook, outside the try block where
Strawberry turns a GraphQLSyntaxError into a response error, so a malformed document
would surface as an internal error. This one parses through the same kind of LRU cache
and, on a syntax error, leaves the document unset so Strawberry parses again and reports
it as usual (errors are not cached; a malformed document costs what it always did).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

from graphql import GraphQLError, parse
from strawberry.extensions import SchemaExtension

PARSE_CACHE_SIZE = 1024

_cached_parse = functools.lru_cache(maxsize=PARSE_CACHE_SIZE)(parse)


class ParseCache(SchemaExtension):
    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            with contextlib.suppress(GraphQLError):
                context.graphql_document = _cached_parse(context.query, **context.parse_options)
        yield
