"""Classification directives: metadata that makes the policy surface readable in
schema.graphql and introspection. Behaviour lives in extensions, not here."""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.schema_directive import Location

from domain.data_classes import DataClass as DataClassEnum
from domain.data_classes import PhiCategory as PhiCategoryEnum
from domain.permissions import Permission as PermissionEnum

PhiCategory = strawberry.enum(PhiCategoryEnum, description="Categories of PHI a field holds.")
Permission = strawberry.enum(PermissionEnum, description="Capabilities beyond a data class.")
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


@strawberry.schema_directive(
    locations=[Location.FIELD_DEFINITION],
    name="requires",
    description="Selecting this field needs the permission, beyond its data class.",
)
class RequiresPermission:
    permission: PermissionEnum


def phi(category: PhiCategoryEnum, **kwargs: Any) -> Any:
    """``strawberry.field`` with a PHI classification."""
    return strawberry.field(directives=[Phi(category=category)], **kwargs)


def classified(
    data_class: DataClassEnum, *, requires: PermissionEnum | None = None, **kwargs: Any
) -> Any:
    """``strawberry.field`` with a non-PHI classification (and, for entry points and
    operations, the permission they need)."""
    directives: list[object] = [Classified(data_class=data_class)]
    if requires is not None:
        directives.append(RequiresPermission(permission=requires))
    return strawberry.field(directives=directives, **kwargs)


def phi_arg(category: PhiCategoryEnum, **kwargs: Any) -> Any:
    """For ``Annotated[T, phi_arg(...)]`` argument annotations."""
    return strawberry.argument(directives=[Phi(category=category)], **kwargs)


def classified_arg(data_class: DataClassEnum, **kwargs: Any) -> Any:
    """For ``Annotated[T, classified_arg(...)]`` argument annotations."""
    return strawberry.argument(directives=[Classified(data_class=data_class)], **kwargs)
