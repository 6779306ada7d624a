from __future__ import annotations

from pathlib import Path

from graphql import GraphQLInputObjectType, GraphQLObjectType

from graph.schema import schema, schema_sdl

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_schema_matches_the_code() -> None:
    checked_in = (ROOT / "schema.graphql").read_text(encoding="utf-8")
    assert checked_in == schema_sdl(), "schema.graphql is stale: run `phigate export-schema`"


def _directive_names(definition: object) -> set[str]:
    """Schema directives applied to a field, argument or input field, as Strawberry
    records them on the GraphQL object's extensions."""
    strawberry_definition = (getattr(definition, "extensions", None) or {}).get(
        "strawberry-definition"
    )
    return {type(d).__name__ for d in getattr(strawberry_definition, "directives", ()) or ()}


def test_every_field_argument_and_input_field_is_classified() -> None:
    """Unclassified means denied: a new field without @phi or @classified fails here."""
    unclassified: list[str] = []
    for type_name, graphql_type in schema._schema.type_map.items():
        if type_name.startswith("__"):
            continue
        if isinstance(graphql_type, GraphQLObjectType):
            for field_name, field in graphql_type.fields.items():
                if not _directive_names(field) & {"Phi", "Classified"}:
                    unclassified.append(f"{type_name}.{field_name}")
                for arg_name, arg in field.args.items():
                    if not _directive_names(arg) & {"Phi", "Classified"}:
                        unclassified.append(f"{type_name}.{field_name}({arg_name})")
        elif isinstance(graphql_type, GraphQLInputObjectType):
            for field_name, field in graphql_type.fields.items():
                if not _directive_names(field) & {"Phi", "Classified"}:
                    unclassified.append(f"{type_name}.{field_name}")
    assert unclassified == []


def test_classification_is_visible_in_the_sdl() -> None:
    sdl = schema_sdl()
    assert "ssn: String @phi(category: IDENTIFIER)" in sdl
    assert "diagnoses: [Diagnosis!]! @phi(category: CLINICAL)" in sdl
    assert "id: ID! @classified(dataClass: PUBLIC)" in sdl
