"""Four eyes in a real browser: one operator's edit of production becomes a change
request, a second operator reviews, approves and applies it."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By

from tests import factories as make
from tests.browser.test_admin_browser import _shows, _text, _type

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _login(browser, live_server, username: str, password: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{live_server.url}/admin/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    assert _shows(browser, "Operations")


def test_change_request__author_drafts_from_refused_edit__second_operator_approves_and_applies(
        browser, live_server, screenshot, operator, tenant, environments, django_user_model):
    from changes.models import ChangeRequest
    from changes.policies import policy_set
    from tenants.models import ConfigEntry

    entry = make.config(tenant, "billing.timeout", 5, environment=environments["production"])
    make.config(tenant, "billing.timeout", 5, service_name="billing")
    make.instance(tenant, "billing", "http://127.0.0.1:9811")
    policy_set(tenant=tenant, environment=environments["production"], approvals_required=1, author_may_approve=False,
               actor="test")
    django_user_model.objects.create_superuser("reviewer", "rev@example.com", "second-pair-of-eyes")
    b = browser

    # The author edits production directly: refused, and offered a draft change request.
    _login(b, live_server, "operator", "correct-horse-battery")
    b.get(f"{live_server.url}/admin/tenants/configentry/{entry.pk}/change/")
    _type(b, "value", "30")
    b.find_element(By.NAME, "_save").click()
    assert _shows(b, "production is protected")
    screenshot("refused-edit", doc_name="change-request-refused-edit.png")
    b.find_element(By.NAME, "_as_change_request").click()
    assert _shows(b, "Saved as draft change request")
    cr = ChangeRequest.objects.get()
    b.find_element(By.CSS_SELECTOR, "button[value=submit]").click()
    assert _shows(b, "submit done, now open")
    b.find_element(By.ID, "cr-approve").click()  # the author tries to approve it herself
    assert _shows(b, "forbids approving one's own change request")
    screenshot("author-opened")

    # The reviewer sees what changes for whom, approves and applies.
    _login(b, live_server, "reviewer", "second-pair-of-eyes")
    b.get(f"{live_server.url}/admin/changes/changerequest/{cr.pk}/change/")
    assert _shows(b, "Affected services")
    diff = b.find_element(By.ID, "cr-diff").text
    affected = b.find_element(By.ID, "cr-affected").text
    assert "billing.timeout 5 30" in diff
    assert "billing billing.timeout 5 30" in affected
    screenshot("review", doc_name="change-request-review.png")
    b.find_element(By.NAME, "comment").send_keys("ok for tonight")
    b.find_element(By.ID, "cr-approve").click()
    assert _shows(b, "approve done, now approved")
    b.find_element(By.ID, "cr-apply").click()
    assert _shows(b, "apply done, now applied")
    screenshot("applied", doc_name="change-request-applied.png")

    assert "reviewer approved" in _text(b)
    assert ConfigEntry.objects.get(pk=entry.pk).value == 30
    cr.refresh_from_db()
    assert (cr.status, cr.author, cr.applied_by) == ("applied", "user:operator", "user:reviewer")
