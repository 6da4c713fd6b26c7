"""Fixtures of the change-request tests: a protected production and two operators' keys."""
from __future__ import annotations

import pytest


@pytest.fixture
def protect(db):
    """``protect(tenant, "production", approvals=1, author_may_approve=False)``: a tenant's policy."""
    from changes.policies import policy_set
    from tenants.models import Environment

    def make(tenant, env: str = "production", *, approvals: int = 1, author_may_approve: bool = False):
        return policy_set(tenant=tenant, environment=Environment.objects.get(slug=env), approvals_required=approvals,
                          author_may_approve=author_may_approve, actor="test")

    return make


@pytest.fixture
def author(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "flags:write", "secrets:read"], name="author"))


@pytest.fixture
def approver(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["configs:read", "configs:write", "flags:write", "changes:approve"], name="approver"))


@pytest.fixture
def approver2(tenant, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=["configs:read", "changes:approve"], name="approver2"))
