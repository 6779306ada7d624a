from __future__ import annotations

import pytest
from starlette.applications import Starlette

from domain.roles import Role
from graph.app import identity_of
from tests.identity import create_user


@pytest.fixture
async def user(app: Starlette) -> dict:
    user_id, secret = await create_user(identity_of(app), Role.CLINICIAN, username="test.clinician")
    return {"id": user_id, "username": "test.clinician", "secret": secret}
