"""The GraphQL surface of phigate: the schema, its types, directives and extensions at the
top; the HTTP edge in `http/`, execution in `execution/`, minimum necessary in
`enforcement/`, the command line in `cli/`."""
