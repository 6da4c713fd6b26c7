"""Config services: resolution by scope, schemas, versions, secrets and rotation."""
from __future__ import annotations

import threading

import pytest
from django.db import connection

from core.errors import StaleVersion, ValidationFailed
from tests import factories as make

pytestmark = pytest.mark.django_db

SECRET = "pg-password-Zx81-never-in-clear"


@pytest.fixture
def scopes(tenant, environments):
    """One entry of key "k" in each of the eight scopes, valued by its scope name."""

    prod = environments["production"]
    for t in (tenant, None):
        for env in (prod, None):
            for svc in ("billing", ""):
                label = "+".join(p for p, on in (("tenant" if t else "global", True), ("environment", env), ("service", svc)) if on)
                make.config(t, "k", label, environment=env, service_name=svc)
    return tenant


ORDER = [
    "tenant+environment+service", "tenant+environment", "tenant+service", "tenant",
    "global+environment+service", "global+environment", "global+service", "global",
]


@pytest.mark.parametrize("winner", ORDER)
def test_resolve__most_specific_scope_present__wins_and_names_its_source(scopes, winner):
    from tenants.models import ConfigEntry
    from tenants.selectors import config_resolve

    # Remove every scope more specific than the expected winner.
    for label in ORDER[: ORDER.index(winner)]:
        for e in ConfigEntry.objects.filter(key="k"):
            if e.scope_label == label:
                e.delete()

    res = config_resolve(tenant=scopes, key="k", environment="production", service_name="billing")

    assert (res.value, res.source) == (winner, winner)


def test_resolve__no_entry_but_schema_default__source_default(tenant):
    from tenants.selectors import config_resolve

    make.schema("report.format", {"type": "string"}, default_value="csv")

    res = config_resolve(tenant=tenant, key="report.format", environment="staging", service_name="x")

    assert (res.found, res.value, res.source) == (True, "csv", "default")


def test_resolve__explain__lists_every_scope_in_order_then_default(scopes):
    from tenants.selectors import config_resolve

    make.schema("k", {"type": "string"}, default_value="fallback")

    res = config_resolve(tenant=scopes, key="k", environment="production", service_name="billing", explain=True)

    assert [c["source"] for c in res.chain] == ORDER + ["default"]
    assert [c["value"] for c in res.chain] == ORDER + ["fallback"]


def test_resolve__other_tenant_entry__never_used(tenant, other_tenant):
    from tenants.selectors import config_resolve

    make.config(other_tenant, "k", "theirs")

    assert config_resolve(tenant=tenant, key="k").found is False


def test_schema__not_a_valid_schema__refused_with_path(tenant):
    from tenants.services.schemas import schema_set

    with pytest.raises(ValidationFailed) as exc:
        schema_set(key="x", schema={"type": "object", "properties": {"n": {"type": "integr"}}}, actor="t")

    assert exc.value.code == "invalid_schema"
    assert exc.value.details[0]["path"] == "$.properties.n.type"


def test_schema__existing_values_break_it__refused_listing_them(tenant, environments):
    from tenants.services.schemas import schema_set

    ok = make.config(tenant, "pool", {"size": 5})
    bad = make.config(None, "pool", {"size": "big"}, environment=environments["staging"])

    with pytest.raises(ValidationFailed) as exc:
        schema_set(key="pool", schema={"type": "object", "properties": {"size": {"type": "integer"}}}, actor="t")

    broken = exc.value.details["breaking_values"]
    assert [b["id"] for b in broken] == [bad.pk]
    assert broken[0]["environment"] == "staging" and broken[0]["tenant"] is None
    assert broken[0]["errors"] == [{"path": "$.size", "message": "'big' is not of type 'integer'"}]
    assert ok.pk not in [b["id"] for b in broken]


def test_schema__value_breaks_it__refused_with_every_path(tenant):
    from tenants.services.configs import config_create

    make.schema("export", {"type": "object", "properties": {"format": {"enum": ["csv", "pdf"]}, "rows": {"type": "integer", "minimum": 100}}, "required": ["format"]})

    with pytest.raises(ValidationFailed) as exc:
        config_create(tenant=tenant, key="export", value={"rows": 5, "extra": [1]}, actor="t")

    assert exc.value.details == [
        {"path": "$", "message": "'format' is a required property"},
        {"path": "$.rows", "message": "5 is less than the minimum of 100"},
    ]


def test_schema__secret_value_breaks_it__message_never_echoes_the_value(tenant):
    from tenants.services.configs import config_create

    make.schema("db.password", {"type": "string", "minLength": 40})

    with pytest.raises(ValidationFailed) as exc:
        config_create(tenant=tenant, key="db.password", value=SECRET, is_secret=True, actor="t")

    assert SECRET not in str(exc.value.details) and SECRET not in exc.value.message
    assert exc.value.details == [{"path": "$", "message": "does not satisfy 'minLength': 40"}]


def test_update__stale_expected_version__412_and_nothing_written(tenant):
    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    entry = make.config(tenant, "k", 1)
    config_update(entry=entry, value=2, expected_version=1, actor="t")

    with pytest.raises(StaleVersion):
        config_update(entry=ConfigEntry.objects.get(pk=entry.pk), value=3, expected_version=1, actor="t")

    assert ConfigEntry.objects.get(pk=entry.pk).value == 2
    assert ConfigEntry.objects.get(pk=entry.pk).version == 2


@pytest.mark.django_db(transaction=True)
def test_update__20_concurrent_writers_same_version__exactly_one_wins(tenant):
    from django.db import connections

    from tenants.models import ConfigEntry
    from tenants.services.configs import config_update

    entry = make.config(tenant, "k", 0)
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def write(i: int) -> None:
        try:
            barrier.wait()
            config_update(entry=ConfigEntry.objects.select_related("tenant").get(pk=entry.pk), value=i, expected_version=1, actor=f"w{i}")
            result = "won"
        except StaleVersion:
            result = "stale"
        finally:
            connections.close_all()
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert sorted(outcomes) == ["stale"] * 19 + ["won"]
    assert ConfigEntry.objects.get(pk=entry.pk).version == 2


def test_secret__stored__database_holds_no_plain_text(tenant):
    entry = make.config(tenant, "db.password", SECRET, is_secret=True)

    with connection.cursor() as cursor:
        cursor.execute("SELECT value::text, secret_value FROM tenants_configentry WHERE id = %s", [entry.pk])
        value, token = cursor.fetchone()
        cursor.execute("SELECT * FROM tenants_historicalconfigentry WHERE id = %s", [entry.pk])
        history = repr(cursor.fetchall())

    assert value is None
    assert SECRET not in token and token.startswith("gAAAAA")
    assert SECRET not in history


def test_secret__wrong_key__raises_never_returns_ciphertext(tenant, settings):
    from cryptography.fernet import Fernet

    from core.fields import SecretDecryptionError
    from tenants.models import ConfigEntry

    entry = make.config(tenant, "db.password", SECRET, is_secret=True)
    settings.FERNET_KEYS = [Fernet.generate_key().decode()]

    with pytest.raises(SecretDecryptionError, match="cannot be decrypted with any key of FERNET_KEYS"):
        ConfigEntry.objects.get(pk=entry.pk)


def test_rotation__new_key_first__reencrypted_old_key_no_longer_needed(tenant, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from tenants.models import ConfigEntry

    old = settings.FERNET_KEYS[0]
    entry = make.config(tenant, "api.token", {"token": SECRET}, is_secret=True)
    new = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new, old]

    call_command("rotate_fernet_keys", stdout=open("/dev/null", "w"))
    settings.FERNET_KEYS = [new]

    assert ConfigEntry.objects.get(pk=entry.pk).secret_value == {"token": SECRET}
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_value FROM tenants_configentry WHERE id = %s", [entry.pk])
        token = cursor.fetchone()[0]
    assert Fernet(new.encode()).decrypt(token.encode()) == b'{"token": "pg-password-Zx81-never-in-clear"}'


def test_rotation__only_the_new_key_decrypts_afterwards(tenant, settings):
    from cryptography.fernet import Fernet, InvalidToken
    from django.core.management import call_command

    old = settings.FERNET_KEYS[0]
    entry = make.config(tenant, "db.password", SECRET, is_secret=True)
    new = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new, old]

    call_command("rotate_fernet_keys", stdout=open("/dev/null", "w"))

    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_value FROM tenants_configentry WHERE id = %s", [entry.pk])
        token = cursor.fetchone()[0].encode()
    assert Fernet(new.encode()).decrypt(token) == b'"pg-password-Zx81-never-in-clear"'
    with pytest.raises(InvalidToken):
        Fernet(old.encode()).decrypt(token)


def test_rotation__webhook_signing_secrets__reencrypted_too(tenant, settings):
    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from events.models import WebhookSubscription

    old = settings.FERNET_KEYS[0]
    sub = make.webhook(tenant, "http://127.0.0.1:9/hook")
    signing_secret = WebhookSubscription.objects.get(pk=sub.pk).secret
    new = Fernet.generate_key().decode()
    settings.FERNET_KEYS = [new, old]

    call_command("rotate_fernet_keys", stdout=open("/dev/null", "w"))
    settings.FERNET_KEYS = [new]

    assert WebhookSubscription.objects.get(pk=sub.pk).secret == signing_secret
