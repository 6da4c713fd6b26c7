from tests.browser.conftest import browser, screenshot  # noqa: F401  (fixtures of the browser test here)
from tests.oidc_provider.fixture import oidc_provider, sso  # noqa: F401  (fixtures)
