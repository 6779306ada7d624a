"""The planner's compiled statements: shared by selections that differ only in order,
and bounded, since any caller allowed to read may send any number of selections."""

from __future__ import annotations

import itertools

from graphql import parse
from graphql.execution.values import get_variable_values

from db import patients
from graph.execution.planner import compile_plan
from graph.schema import schema

SCHEMA = schema._schema
FIELDS = ("id", "givenName", "familyName", "diagnoses { onsetDate icd10Code id }")


def _columns(selection: str) -> tuple[str, ...]:
    document = parse(f"{{ patients(first: 3) {{ edges {{ node {{ {selection} }} }} }} }}")
    operation = document.definitions[0]
    variables = get_variable_values(SCHEMA, (), {})
    plan = compile_plan(SCHEMA, operation, {}, variables)  # type: ignore[arg-type]
    shape = plan.roots[0].patient
    assert shape is not None
    return shape.columns


def test_selections_in_any_order_share_one_statement() -> None:
    shapes = {_columns(" ".join(order)) for order in itertools.permutations(FIELDS)}
    assert len(shapes) == 1, shapes
    reordered = {
        _columns(f"id diagnoses {{ {' '.join(inner)} }}")
        for inner in itertools.permutations(("icd10Code", "onsetDate", "recordedAt"))
    }
    assert len(reordered) == 1, reordered


def test_the_compiled_statements_are_bounded() -> None:
    for built in (
        patients.planned_page,
        patients.planned_page_audited,
        patients.planned_one,
        patients.planned_one_audited,
    ):
        assert built.cache_info().maxsize == patients.PLANNED_STATEMENTS
