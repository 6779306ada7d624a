"""GraphQL types, written field by field: a new column never becomes API surface by
accident, and every field carries its classification directive."""
