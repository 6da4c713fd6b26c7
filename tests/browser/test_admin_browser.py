"""The operator's day in the admin, in a real headless Chromium."""
from __future__ import annotations

import pytest
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests import factories as make

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def _shows(browser, text: str, timeout: float = 10) -> bool:
    """Whether the page shows ``text`` within ``timeout``: after a click that
    navigates, the old page's body may still be there (or go stale mid-read)."""
    def found(driver) -> bool:
        try:
            return text in driver.find_element(By.TAG_NAME, "body").text
        except StaleElementReferenceException:
            return False

    try:
        WebDriverWait(browser, timeout, poll_frequency=0.1).until(found)
    except TimeoutException:
        return False
    return True


def _type(browser, name: str, text: str) -> None:
    """Replace a field's content (textareas the JSON editor enhances included)."""
    element = browser.find_element(By.NAME, name)
    browser.execute_script("arguments[0].value = arguments[1]; arguments[0].dispatchEvent(new Event('input'));", element, text)


def _wait(browser, predicate, timeout: float = 10.0):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: predicate(d)
    )


def test_login__operator__sees_the_operations_home(logged_in, live_server, screenshot, tenant, environments):
    make.config(tenant, "email.sender", "ops@example.com", actor="apikey:bootstrap")
    make.instance(tenant, "billing", "http://127.0.0.1:9801")
    logged_in.get(f"{live_server.url}/admin/")

    body = _text(logged_in)
    screenshot("home", doc_name="admin-home.png")
    assert "Operations" in body
    assert "Unhealthy instances (0)" in body
    assert "config.created" in body and "email.sender" in body
    assert "acme" in body


def test_config__breaks_schema__error_on_field_then_fixed(logged_in, live_server, screenshot, tenant):
    from tenants.models import ConfigEntry

    make.schema("export.settings", {"type": "object", "properties": {"max_rows": {"type": "integer", "minimum": 100}},
                                              "required": ["max_rows"]})
    b = logged_in
    b.get(f"{live_server.url}/admin/tenants/configentry/add/")
    Select(b.find_element(By.NAME, "tenant")).select_by_visible_text("acme")
    b.find_element(By.NAME, "key").send_keys("export.settings")
    _type(b, "value", '{"max_rows": 5}')
    b.find_element(By.NAME, "_save").click()

    errors = _wait(b, lambda d: d.find_element(By.CSS_SELECTOR, ".field-value .errorlist")).text
    screenshot("schema-error")
    assert errors == "$.max_rows: 5 is less than the minimum of 100"

    _type(b, "value", '{"max_rows": 500}')
    b.find_element(By.NAME, "_save").click()

    _wait(b, lambda d: "was added successfully" in _text(d))
    assert ConfigEntry.objects.get(key="export.settings").value == {"max_rows": 500}
    entry = ConfigEntry.objects.get(key="export.settings")
    b.get(f"{live_server.url}/admin/tenants/configentry/{entry.pk}/change/")
    b.execute_script("document.getElementById('id_value').scrollIntoView()")
    screenshot("config-page", doc_name="config-page.png")
    assert b.find_element(By.ID, "resolved-value").text == '{"max_rows": 500}'


def test_secret__masked_then_revealed__reveal_is_recorded(logged_in, live_server, screenshot, tenant):
    from events.models import Event

    entry = make.config(tenant, "smtp.password", "hunter2-secret", is_secret=True)
    b = logged_in
    b.get(f"{live_server.url}/admin/tenants/configentry/{entry.pk}/change/")
    assert "hunter2-secret" not in b.page_source

    b.find_element(By.ID, "reveal-button").click()

    screenshot("revealed")
    assert b.find_element(By.NAME, "value").get_attribute("value") == '"hunter2-secret"'
    assert Event.objects.filter(key="smtp.password", action="revealed", actor="user:operator").count() == 1


def test_compare__two_environments__promote_a_key_after_preview(logged_in, live_server, screenshot, tenant, environments):
    from tenants.selectors import config_resolve

    make.config(tenant, "search.replicas", 3, environment=environments["staging"])
    make.config(tenant, "search.replicas", 1, environment=environments["production"])
    b = logged_in
    b.get(f"{live_server.url}/admin/compare/")
    Select(b.find_element(By.NAME, "tenant")).select_by_visible_text("acme")
    Select(b.find_element(By.NAME, "source")).select_by_visible_text("staging")
    Select(b.find_element(By.NAME, "target")).select_by_visible_text("production")
    b.find_element(By.ID, "compare-button").click()
    screenshot("compare")
    assert "search.replicas" in b.find_element(By.ID, "diff-table").text

    b.find_element(By.CSS_SELECTOR, "input[name=keys][value='search.replicas']").click()
    b.find_element(By.ID, "preview-promote").click()
    assert "search.replicas" in b.find_element(By.ID, "preview-table").text
    screenshot("preview")
    b.find_element(By.ID, "confirm-promote").click()

    assert _shows(b, "Promoted 1 key(s) from staging to production"), _text(b)
    assert config_resolve(tenant=tenant, key="search.replicas", environment="production").value == 3


def test_flags__bulk_set_rollout__then_preview_shows_the_answer(logged_in, live_server, screenshot, tenant, environments):
    from flags.models import Flag, FlagEnvironment

    make.flag(tenant, "new_checkout", environment=environments["production"], is_enabled=True, rollout_percentage=0)
    b = logged_in
    b.get(f"{live_server.url}/admin/flags/flag/")
    b.find_element(By.CSS_SELECTOR, "input.action-select").click()
    Select(b.find_element(By.NAME, "action")).select_by_value("bulk_rollout")
    b.find_element(By.NAME, "index").click()
    Select(b.find_element(By.NAME, "environment")).select_by_visible_text("production")
    b.find_element(By.NAME, "rollout_percentage").send_keys("100")
    screenshot("bulk-form")
    b.find_element(By.ID, "bulk-apply").click()

    assert _shows(b, "Set rollout: 1 flag(s) in production"), _text(b)
    assert FlagEnvironment.objects.get(flag__name="new_checkout").rollout_percentage == 100.0

    flag = Flag.objects.get(name="new_checkout")
    b.get(f"{live_server.url}/admin/flags/flag/{flag.pk}/change/")
    b.execute_script("document.getElementById('preview_context').value = arguments[0]", '{"userId": "user-7"}')
    b.find_element(By.ID, "preview-button").click()
    _wait(b, lambda d: "preview_environment" in d.current_url)
    result = _wait(b, lambda d: d.find_element(By.ID, "preview-result")).text
    screenshot("flag-preview")
    assert result.startswith("enabled · reason STATIC")


def test_registry__drain_an_instance__never_discovered(logged_in, live_server, screenshot, tenant):
    from registry.models import Instance

    inst = make.instance(tenant, "payments", "http://127.0.0.1:9901")
    b = logged_in
    b.get(f"{live_server.url}/admin/registry/instance/")
    b.find_element(By.CSS_SELECTOR, f"input.action-select[value='{inst.pk}']").click()
    Select(b.find_element(By.NAME, "action")).select_by_value("drain")
    b.find_element(By.NAME, "index").click()

    screenshot("drained")
    assert _shows(b, "Drained 1 instance(s)"), _text(b)
    assert b.find_element(By.CSS_SELECTOR, ".status-badge").text == "out_of_service"
    assert Instance.objects.get(pk=inst.pk).status == "out_of_service"


def test_history__edited_config__shows_field_level_change_and_actor(logged_in, live_server, screenshot, tenant):
    from tenants.services.configs import config_update

    entry = make.config(tenant, "cache.ttl", 30, actor="apikey:bootstrap")
    config_update(entry=entry, value=60, actor="apikey:deployer")
    b = logged_in
    b.get(f"{live_server.url}/admin/tenants/configentry/{entry.pk}/history/")

    body = " ".join(_text(b).split())
    screenshot("history")
    assert "apikey:deployer" in body and "apikey:bootstrap" in body
    assert "Value: 30 → 60" in body
