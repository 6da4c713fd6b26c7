"""Inputs that answered 500 when the running hub was attacked (issue [1/6], item 12)
answer a clear 4xx now; flag names are restricted to a safe set of characters."""
from __future__ import annotations

import jwt
import pytest
from django.conf import settings

from core.api.principal import ALL_SCOPES
from tests import factories as make

pytestmark = pytest.mark.django_db

LONG_DIGITS = "9" * 5000


@pytest.fixture
def api(tenant, environments, make_key, client_for):
    return client_for(make_key(tenant=tenant, scopes=sorted(ALL_SCOPES), name="all"))


# --- service tokens and If-Match ------------------------------------------------------


@pytest.mark.parametrize("service_id", [LONG_DIGITS, int("9" * 400), "1" + "0" * 18])
def test_service_token__huge_service_id__401_not_500(client_for, service_id):
    token = jwt.encode({"service_id": service_id}, settings.SERVICE_JWT_SECRET, algorithm="HS256")

    response = client_for(token, scheme="Bearer").post("/heartbeat", {"service_id": 1}, format="json")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


def test_if_match__version_of_5000_digits__400_and_entry_unchanged(api, tenant):
    entry = make.config(tenant, "retry.max", 3)

    response = api.patch(f"/api/v1/config/{entry.pk}", {"value": 4}, format="json", HTTP_IF_MATCH=f'"1-{LONG_DIGITS}"')

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_precondition"
    entry.refresh_from_db()
    assert (entry.value, entry.version) == (3, 1)


# --- the Unleash import ---------------------------------------------------------------------


def _import(api, document):
    return api.post("/api/v1/feature-flags/import/unleash?environment=production", document, format="json")


def test_unleash_import__strategy_segment_id_is_an_object__400_naming_the_feature(api):
    from flags.models import Flag

    document = {"segments": [{"id": 1, "constraints": []}], "features": [
        {"name": "checkout", "enabled": True, "strategies": [{"name": "default", "segments": [{"id": 1}]}]}]}

    response = _import(api, document)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_import"
    assert "feature 'checkout'" in error["message"] and "segments must be a list of ids" in error["message"]
    assert not Flag.objects.exists()


def test_unleash_import__segment_defined_with_an_object_id__400(api):
    response = _import(api, {"segments": [{"id": {"x": 1}, "constraints": []}], "features": []})

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "cannot import: a segment's id must be an integer or a string, not dict"


def test_unleash_import__feature_name_over_200_characters__400_saying_the_maximum(api):
    response = _import(api, {"features": [{"name": "f" * 300, "enabled": True, "strategies": []}]})

    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "at most 200 characters (this one has 300)" in message and "NUL" not in message


def test_unleash_import__segment_name_over_200_characters__400_saying_the_maximum(api):
    response = _import(api, {"segments": [{"id": 1, "name": "s" * 201, "constraints": []}], "features": []})

    assert response.status_code == 400
    assert response.json()["error"]["message"] == ("cannot import: segment 1: a segment name is a string of at most "
                                                  "200 characters")


def test_database_refusal__too_long__says_the_maximum_not_nul():
    from django.db import DataError

    from core.api.exceptions import exception_handler

    response = exception_handler(DataError("value too long for type character varying(200)\n"), {})

    assert response.status_code == 400
    assert response.data["error"]["message"] == "a value is too long to be stored (at most 200 characters)"


# --- flag names -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["<script>", "a/b", "line\nbreak", "tab\tname", "rtl\u202eevil", "zero\u200bwidth",
                                  "bell\x07", "two words", "_leading", "x" * 201])
def test_flag_create__unsafe_name__400_nothing_created(api, name):
    from flags.models import Flag

    response = api.post("/api/v1/feature-flags/", {"name": name, "environment": "production"}, format="json")

    assert response.status_code == 400, response.content
    assert list(response.json()["error"]["details"]) == ["name"]
    assert not Flag.objects.exists()


@pytest.mark.parametrize("name", ["new_payment_flow", "Feature.UTF-8.Hellø_Wørld", "Feature.UTF-8.😊_φriend_你好_🌍",
                                  "team:checkout-v2~beta", "x" * 200])
def test_flag_create__names_of_the_seeds_and_the_unleash_vectors__accepted(api, name):
    response = api.post("/api/v1/feature-flags/", {"name": name, "environment": "production"}, format="json")

    assert response.status_code == 201, response.content


def test_unleash_import__unsafe_feature_name__400_nothing_imported(api):
    from flags.models import Flag

    response = _import(api, {"features": [{"name": "ok", "enabled": True, "strategies": []},
                                          {"name": "pay\u202emen", "enabled": True, "strategies": []}]})

    assert response.status_code == 400
    assert "feature #2 ('pay\\u202emen')" in response.json()["error"]["message"]
    assert not Flag.objects.exists()


def test_admin_flag_add__unsafe_name__error_on_the_field_nothing_created(tenant, admin_user, client):
    from flags.models import Flag

    client.force_login(admin_user)
    response = client.post("/admin/flags/flag/add/", {
        "tenant": tenant.pk, "name": "<img src=x>", "description": "", "kind": "boolean", "variants": "[]",
        "dependencies": "[]", "states-TOTAL_FORMS": "0", "states-INITIAL_FORMS": "0"})

    assert response.status_code == 200
    assert "name" in response.context["adminform"].form.errors
    assert not Flag.objects.exists()


def test_tenant_import__unsafe_flag_name__refused_before_anything_is_written(tenant):
    from config_hub.transfer import tenant_import
    from core.errors import ValidationFailed
    from flags.models import Flag

    document = {"format": "config-hub", "configs": [], "flags": [{"name": "a/b", "environments": {}}]}

    with pytest.raises(ValidationFailed, match=r"flags\[0\] \(a/b\)"):
        tenant_import(tenant=tenant, document=document, actor="t")
    assert not Flag.objects.exists()


# --- routes and methods a caller gets wrong ---------------------------------------------


@pytest.mark.parametrize(("method", "url"), [
    ("post", "/api/v1/registry/user-service"),
    ("delete", "/api/v1/events/"),
    ("post", "/api/v1/config/service/user-service"),
    ("patch", "/api/v1/registry/healthy"),
])
def test_wrong_method__known_caller__405_with_allow_not_a_scope_refusal(tenant, make_key, client_for, method, url):
    client = client_for(make_key(tenant=None, scopes=sorted(ALL_SCOPES)))

    response = getattr(client, method)(url, {}, format="json")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert method.upper() not in response["Allow"]


def test_wrong_method__no_credential__still_401(client_for):
    assert client_for().post("/api/v1/registry/user-service", {}, format="json").status_code == 401


@pytest.mark.parametrize("debug", [False, True])
def test_write_without_trailing_slash__json_404_never_a_redirect_or_500(api, settings, debug):
    settings.DEBUG = debug  # make run serves in debug, where Django would raise a RuntimeError page

    created = api.post("/api/v1/config", {"key": "k", "value": 1}, format="json")
    unknown = api.get("/api/v1/nope")

    assert (created.status_code, created["Content-Type"]) == (404, "application/json")
    assert created.json()["error"]["code"] == "not_found"
    assert (unknown.status_code, unknown["Content-Type"]) == (404, "application/json")


def test_events__negative_cursor__400_saying_the_bound(api):
    response = api.get("/api/v1/events/?after=-1")

    assert response.status_code == 400
    assert response.json()["error"]["message"] == "after must be at least 0"
