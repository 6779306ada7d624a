"""Classification directives: metadata that makes the policy surface readable in
schema.graphql and introspection. Behaviour lives in extensions, not here."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema_directive import Location

from domain.data_classes import DataClass as DataClassEnum
from domain.data_classes import PhiCategory as PhiCategoryEnum

PhiCategory = strawberry.enum(PhiCategoryEnum, description="Categories of PHI a field holds.")
DataClass = strawberry.enum(DataClassEnum, description="Classes of data that are not PHI values.")

_CLASSIFIABLE = [
    Location.FIELD_DEFINITION,
    Location.INPUT_FIELD_DEFINITION,
    Location.ARGUMENT_DEFINITION,
]


@strawberry.schema_directive(
    locations=_CLASSIFIABLE,
    description="This field carries protected health information of the given category.",
)
class Phi:
    category: PhiCategoryEnum


@strawberry.schema_directive(
    locations=_CLASSIFIABLE,
    name="classified",
    description="This field carries no PHI value; it belongs to the given data class.",
)
class Classified:
    data_class: DataClassEnum


def phi(category: PhiCategoryEnum, **kwargs: Any) -> Any:
    """``strawberry.field`` with a PHI classification."""
    return strawberry.field(directives=[Phi(category=category)], **kwargs)


def classified(data_class: DataClassEnum, **kwargs: Any) -> Any:
    """``strawberry.field`` with a non-PHI classification."""
    return strawberry.field(directives=[Classified(data_class=data_class)], **kwargs)


def phi_arg(category: PhiCategoryEnum, **kwargs: Any) -> Any:
    """For ``Annotated[T, phi_arg(...)]`` argument annotations."""
    return strawberry.argument(directives=[Phi(category=category)], **kwargs)


def classified_arg(data_class: DataClassEnum, **kwargs: Any) -> Any:
    """For ``Annotated[T, classified_arg(...)]`` argument annotations."""
    return strawberry.argument(directives=[Classified(data_class=data_class)], **kwargs)
