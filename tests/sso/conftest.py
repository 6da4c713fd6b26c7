from tests.oidc_provider.fixture import oidc_provider, sso  # noqa: F401  (fixtures)
