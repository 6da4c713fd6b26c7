"""An operator of staging signs in through the company's identity provider, in a real
headless Chromium: staging is editable, production read-only."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Group, Permission
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tenants.models import ConfigEntry, Environment, RoleAssignment
from tests import factories as make
from tests.conftest import ensure_builtin_rows

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _body(browser) -> str:
    return browser.find_element(By.TAG_NAME, "body").text


def _until(browser, predicate, timeout: float = 10):
    # A page that is replaced while it is read (a form's answer arriving) is read again.
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    return WebDriverWait(browser, timeout, poll_frequency=0.1,
                         ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: predicate(d))


def test_sso__staging_editor__signs_in_at_the_provider_edits_staging_sees_production_read_only(
        sso, live_server, browser, screenshot):
    # Given: the group the provider's "hub-staging-editors" maps to edits acme's staging.
    ensure_builtin_rows()
    tenant = make.tenant("acme")
    group = Group.objects.create(name="staging-editors")
    group.permissions.add(*Permission.objects.filter(codename__in=["view_configentry", "change_configentry"]))
    RoleAssignment.objects.create(group=group, role="editor", tenant=tenant, environment=Environment.objects.get(slug="staging"))
    staging = make.config(tenant, "checkout.timeout", 5, environment=Environment.objects.get(slug="staging"))
    production = make.config(tenant, "checkout.timeout", 5, environment=Environment.objects.get(slug="production"))
    b = browser
    b.delete_all_cookies()

    # When: alice signs in with the button, at the provider's own login page.
    b.get(f"{live_server.url}/admin/login/")
    screenshot("login")
    b.find_element(By.ID, "sso-login-button").click()
    _until(b, lambda d: "Test identity provider" in _body(d))
    b.find_element(By.ID, "op-username").send_keys("alice")
    b.find_element(By.ID, "op-password").send_keys("alice-idp-pw-1")
    b.find_element(By.ID, "op-submit").click()
    _until(b, lambda d: d.current_url == f"{live_server.url}/admin/")
    assert "alice" in _body(b).lower()

    # Then: staging's entry is edited and saved.
    b.get(f"{live_server.url}/admin/tenants/configentry/{staging.pk}/change/")
    value = b.find_element(By.NAME, "value")
    b.execute_script("arguments[0].value = '7'; arguments[0].dispatchEvent(new Event('input'));", value)
    screenshot("staging-editable")
    b.find_element(By.NAME, "_save").click()
    _until(b, lambda d: "was changed successfully" in _body(d))
    assert ConfigEntry.objects.get(pk=staging.pk).value == 7

    # And: production's is shown read-only, with nothing to save or delete.
    b.get(f"{live_server.url}/admin/tenants/configentry/{production.pk}/change/")
    _until(b, lambda d: "checkout.timeout" in _body(d))
    screenshot("production-read-only", doc_name="admin-role-read-only.png")
    assert b.find_elements(By.NAME, "_save") == []
    assert b.find_elements(By.NAME, "value") == []
    assert b.find_elements(By.CSS_SELECTOR, "a.deletelink") == []
    assert "View config entry" in _body(b)
    assert "Read-only for you: changing it needs the editor role in acme/production." in _body(b)
    assert ConfigEntry.objects.get(pk=production.pk).value == 5
