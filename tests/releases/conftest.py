"""Fixtures of the release tests: a tenant whose production resolves through every scope."""
from __future__ import annotations

import pytest

from tests import factories as make

SECRET = "s3cr3t-release-value-5c1e"


@pytest.fixture
def layered(tenant, environments):
    """acme in production: values from global, tenant, tenant+environment and
    tenant+environment+service scopes, a secret, a schema default, two flags."""
    prod = environments["production"]
    make.schema("billing.currency", {"type": "string"}, default_value="EUR")
    make.config(None, "log.level", "info")
    make.config(tenant, "log.level", "warning")
    make.config(tenant, "db.url", "postgres://prod/app", environment=prod)
    make.config(tenant, "db.url", "postgres://prod/billing", environment=prod, service_name="billing")
    make.config(tenant, "timeout", 30, service_name="billing")
    make.config(tenant, "db.password", SECRET, is_secret=True, environment=prod)
    make.flag(tenant, "checkout", environment=prod, is_enabled=True, rollout_percentage=25)
    make.flag(tenant, "banner", environment=prod, is_enabled=False)
    return {"tenant": tenant, "production": prod, "staging": environments["staging"]}


@pytest.fixture
def release_of():
    """``release_of(tenant, environment, name)``: a release made by the service."""
    from releases.services import release_create

    def make_release(tenant, environment, name):
        return release_create(tenant=tenant, environment=environment, name=name, actor="test")

    return make_release
