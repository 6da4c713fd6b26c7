"""Every admin page an operator uses, in headless Chromium at 1440 px (a laptop) and
390 px (a phone): no sideways scrolling of the page at either width, and at 1440 px
no list that scrolls inside its box either (nothing hidden to the right). Screenshots
of each page at both widths go to test-output/screenshots/ (the best ones also to
docs/img/ with SAVE_DOC_SCREENSHOTS=1). Then two operator stories: compare
development and production for one service; edit a flag's production state and
revert it from its history."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests import factories as make

from .test_admin_browser import _shows, _text, _wait

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTHS = {"desktop": 1440, "phone": 390}


def _viewport(browser, width: int) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
        "width": width, "height": 900 if width > 1000 else 844, "deviceScaleFactor": 1, "mobile": width < 1000})


def _overflow(browser) -> dict:
    """How far the page, and any list or table box, is wider than what shows."""
    return browser.execute_script("""
        const d = document.documentElement;
        const boxes = [...document.querySelectorAll('#changelist .results, .hub-scroll, #hub-dashboard .module')]
            .filter(b => b.scrollWidth > b.clientWidth + 1)
            .map(b => (b.id || b.className) + ': ' + b.scrollWidth + ' > ' + b.clientWidth);
        const wide = [...document.querySelectorAll('body *')]
            .filter(e => e.getBoundingClientRect().right > d.clientWidth + 1 && !e.closest('.hub-scroll, .results'))
            .slice(-3).map(e => e.tagName + '#' + e.id + '.' + e.className);
        return {page: d.scrollWidth - d.clientWidth, boxes: boxes, wide: wide};
    """)


@pytest.fixture
def hub_data(tenant, environments):
    """Something on every page: service-scoped configs that differ, a secret, a schema,
    flags with states, two subscriptions to one URL, an instance, an API key, events."""
    from tenants.services.configs import config_update

    for env in ("development", "production"):
        make.config(tenant, "database.url", "postgresql://shared/app", environment=environments[env])
    make.config(tenant, "database.url", "postgresql://localhost:5432/users_dev", environment=environments["development"],
                service_name="user-service")
    make.config(tenant, "database.url", "postgresql://prod-db.internal.example.com:5432/users",
                environment=environments["production"], service_name="user-service")
    entry = make.config(tenant, "ui.layout", {"columns": 3, "theme": "dark", "widgets": ["orders", "payments", "search"]},
                        description="The dashboard's layout for every service of the tenant")
    config_update(entry=entry, value={"columns": 4, "theme": "dark", "widgets": ["orders", "payments"]}, actor="apikey:deployer")
    make.secret(tenant, "smtp.password", "hunter2-secret", environment=environments["production"])
    make.schema("ui.layout", {"type": "object"})
    make.flag(tenant, "new_checkout", environment=environments["production"], is_enabled=True, rollout_percentage=50)
    make.flag(tenant, "dark_mode_for_everyone_in_the_long_named_team", environment=environments["staging"], is_enabled=True)
    make.segment(tenant, "beta_users", [{"contextName": "plan", "operator": "IN", "values": ["beta"]}])
    make.webhook(tenant, "http://127.0.0.1:9/a-rather-long-receiver-path/for/config-changes", resource_types=["config"],
                 environment="production")
    make.webhook(tenant, "http://127.0.0.1:9/a-rather-long-receiver-path/for/config-changes", resource_types=["flag"],
                 key_prefix="checkout.")
    make.instance(tenant, "user-service", "http://10.0.0.5:8080", metadata={"version": "1.4.2", "region": "eu-west-1"})
    make.api_key(tenant=tenant, scopes=("configs:read", "flags:read", "registry:read", "registry:write", "events:read"),
                 name="user-service production key")
    return tenant


def _pages(tenant, environments) -> dict[str, str]:
    from flags.models import Flag
    from tenants.models import ConfigEntry

    entry = ConfigEntry.objects.get(key="ui.layout")
    flag = Flag.objects.get(name="new_checkout")
    first_flag_version = flag.history.order_by("history_id").first().history_id
    compare = (f"/admin/compare/?tenant={tenant.pk}&source={environments['development'].pk}"
               f"&target={environments['production'].pk}&service=user-service")
    return {
        "home": "/admin/",
        "configs": "/admin/tenants/configentry/",
        "config": f"/admin/tenants/configentry/{entry.pk}/change/",
        "config-history": f"/admin/tenants/configentry/{entry.pk}/history/",
        "config-add": "/admin/tenants/configentry/add/",
        "schemas": "/admin/tenants/configschema/",
        "api-keys": "/admin/tenants/apikey/",
        "compare": compare,
        "flags": "/admin/flags/flag/",
        "flag": f"/admin/flags/flag/{flag.pk}/change/",
        "flag-history": f"/admin/flags/flag/{flag.pk}/history/",
        "flag-revert": f"/admin/flags/flag/{flag.pk}/history/{first_flag_version}/",
        "segments": "/admin/flags/segment/",
        "events": "/admin/events/event/",
        "webhooks": "/admin/events/webhooksubscription/",
        "deliveries": "/admin/events/webhookdelivery/",
        "instances": "/admin/registry/instance/",
        "services": "/admin/registry/service/",
        "security": "/admin/axes/",
        "transfer": "/admin/transfer/",
        "docs": "/docs",
        "redoc": "/redoc",
    }


DOC_SHOTS = {("home", "desktop"): "admin-home.png", ("compare", "desktop"): "admin-compare.png",
             ("configs", "desktop"): "admin-configs.png",
             ("flag", "desktop"): "admin-flag.png", ("home", "phone"): "admin-home-phone.png"}


def test_every_page__1440_and_390_px__no_sideways_scrolling(logged_in, live_server, screenshot, hub_data, environments):
    b = logged_in
    problems = []
    for width_name, width in WIDTHS.items():
        _viewport(b, width)
        for name, url in _pages(hub_data, environments).items():
            b.get(f"{live_server.url}{url}")
            if name in ("docs", "redoc"):
                _wait(b, lambda d: len(_text(d)) > 50, timeout=15)
            screenshot(f"{name}-{width}", doc_name=DOC_SHOTS.get((name, width_name)))
            assert "Server Error" not in b.title and "Page not found" not in b.title, (name, b.title)
            seen = _overflow(b)
            if seen["page"] > 0:
                problems.append(f"{name} at {width}px: the page scrolls sideways by {seen['page']}px ({seen['wide']})")
            if width == 1440 and seen["boxes"] and name not in ("docs", "redoc"):
                problems.append(f"{name} at {width}px: {seen['boxes']}")
    b.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize("page, title", [("docs", "Config hub API"), ("redoc", "Config hub API")])
def test_docs__without_login__link_to_the_login_then_the_docs_with_nothing_blocked(page, title, browser, live_server,
                                                                                   operator, screenshot):
    b = browser
    b.get_log("browser")  # forget earlier pages' messages
    b.delete_all_cookies()
    b.get(f"{live_server.url}/{page}")
    screenshot(f"{page}-no-login")
    b.find_element(By.ID, "login-link").click()
    b.find_element(By.NAME, "username").send_keys("operator")
    b.find_element(By.NAME, "password").send_keys("correct-horse-battery")
    b.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    assert _wait(b, lambda d: d.current_url.endswith(f"/{page}"))
    assert _shows(b, title, timeout=15), _text(b)[:500]
    _wait(b, lambda d: "Config entries" in _text(d) or "config" in _text(d).lower(), timeout=15)
    screenshot(page)
    blocked = [e["message"] for e in b.get_log("browser") if "Content Security Policy" in e["message"]]
    assert blocked == []


def _replaced(element) -> bool:
    """Whether the page that held ``element`` has been replaced by another."""
    from selenium.common.exceptions import StaleElementReferenceException

    try:
        return not element.is_enabled()  # (any call: a replaced page's element raises)
    except StaleElementReferenceException:
        return True


def test_compare__development_and_production_for_user_service__shows_the_difference(
        logged_in, live_server, screenshot, hub_data):
    b = logged_in
    b.get(f"{live_server.url}/admin/")
    b.find_element(By.ID, "compare-link").click()
    # (the tenant's own values differ too: the secret is set in production only)
    Select(b.find_element(By.NAME, "tenant")).select_by_visible_text("acme")
    Select(b.find_element(By.NAME, "source")).select_by_visible_text("development")
    Select(b.find_element(By.NAME, "target")).select_by_visible_text("production")
    b.find_element(By.ID, "compare-button").click()
    first = _wait(b, lambda d: d.find_element(By.ID, "diff-table"))
    assert "database.url" not in first.text  # equal for the tenant

    Select(b.find_element(By.NAME, "service")).select_by_visible_text("user-service")
    b.find_element(By.ID, "compare-button").click()
    _wait(b, lambda d: _replaced(first))  # the answer to the second compare, not the first page still shown

    table = _wait(b, lambda d: d.find_element(By.ID, "diff-table")).text
    screenshot("compare-user-service")
    assert "database.url" in table
    assert "postgresql://localhost:5432/users_dev" in table and "prod-db.internal.example.com" in table
    assert "tenant+environment+service" in table


def test_flag__production_state_edited__reverted_from_its_history(logged_in, live_server, screenshot, hub_data,
                                                                 environments):
    from flags.models import Flag, FlagEnvironment

    flag = Flag.objects.get(name="new_checkout")
    prod = FlagEnvironment.objects.get(flag=flag, environment=environments["production"])
    before = (prod.enabled, prod.strategies)
    b = logged_in
    b.get(f"{live_server.url}/admin/flags/flag/{flag.pk}/change/")
    enabled = b.find_element(By.CSS_SELECTOR, "input[name$='-enabled']")
    assert enabled.is_selected()
    b.execute_script("arguments[0].scrollIntoView()", enabled)
    enabled.click()
    b.find_element(By.NAME, "change_reason").send_keys("INC-7 switch off checkout")
    b.find_element(By.NAME, "_continue").click()
    assert _shows(b, "was changed successfully"), _text(b)[:2000]
    prod.refresh_from_db()
    assert prod.enabled is False

    b.find_element(By.CSS_SELECTOR, "a.historylink").click()
    history = _wait(b, lambda d: d.find_element(By.ID, "change-history")).text
    screenshot("flag-history", doc_name="admin-flag-history.png")
    assert "production: enabled: true → false" in " ".join(history.split())
    assert "INC-7 switch off checkout" in history
    dates = b.find_elements(By.CSS_SELECTOR, "#change-history td.history-date a")
    dates[-1].click()  # the oldest version: created, on at 50%
    states = _wait(b, lambda d: d.find_element(By.ID, "revert-states")).text
    screenshot("flag-revert")
    assert "production on 50%" in " ".join(states.split())
    b.find_element(By.NAME, "change_reason").send_keys("INC-7 fixed")
    b.find_element(By.NAME, "_save").click()

    assert _shows(b, "was changed successfully"), _text(b)[:2000]
    prod.refresh_from_db()
    assert (prod.enabled, prod.strategies) == before
