"""Import and export of a tenant: all or nothing, secrets only on request."""
from __future__ import annotations

import io

import pytest
import yaml
from django.core.management import call_command
from django.core.management.base import CommandError

from tests import factories as make

pytestmark = pytest.mark.django_db

SECRET = "export-me-not-41b2"


@pytest.fixture
def source(tenant, environments):
    make.config(tenant, "ui.theme", "dark", environment=environments["production"])
    make.config(tenant, "db.password", SECRET, is_secret=True)
    make.flag(tenant, "beta", environment=environments["staging"], is_enabled=True, rollout_percentage=25)
    return tenant


def test_export__default__secrets_left_out(source):
    out = io.StringIO()

    call_command("export_tenant", "acme", stdout=out)

    doc = yaml.safe_load(out.getvalue())
    assert SECRET not in out.getvalue()
    assert [c["key"] for c in doc["configs"]] == ["ui.theme"]
    assert doc["flags"][0]["environments"]["staging"]["strategies"][0]["parameters"]["rollout"] == "25"


def test_export_encrypted_then_import__round_trip_into_another_tenant(source, other_tenant, tmp_path):
    from flags.models import FlagEnvironment
    from tenants.selectors import config_resolve

    out = io.StringIO()
    call_command("export_tenant", "acme", "--include-secrets", "encrypted", "--format", "json", stdout=out)
    assert SECRET not in out.getvalue()
    path = tmp_path / "acme.json"
    path.write_text(out.getvalue())

    msg = io.StringIO()
    call_command("import_tenant", "globex", str(path), stdout=msg)

    assert msg.getvalue().strip() == "imported 2 config(s) and 1 flag(s) into globex"
    assert config_resolve(tenant=other_tenant, key="db.password").value == SECRET
    assert config_resolve(tenant=other_tenant, key="ui.theme", environment="production").value == "dark"
    assert FlagEnvironment.objects.get(flag__tenant=other_tenant, flag__name="beta").rollout_percentage == 25.0


def test_import__one_bad_value__nothing_written(other_tenant, tmp_path):
    from tenants.models import ConfigEntry

    make.schema("limits", {"type": "integer"})
    doc = {"format": "config-hub", "version": 1, "configs": [
        {"key": "fine", "value": 1}, {"key": "limits", "value": "many"}], "flags": []}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))

    with pytest.raises(CommandError) as exc:
        call_command("import_tenant", "globex", str(path), stdout=io.StringIO())

    assert "configs[1] (limits): value of 'limits' breaks its schema: $: 'many' is not of type 'integer'" in str(exc.value)
    assert ConfigEntry.objects.filter(tenant=other_tenant).count() == 0


def test_admin_export__plain_secrets_without_reveal_permission__refused(source, client, django_user_model):
    staff = django_user_model.objects.create_user("staff", password="pw-staff-123", is_staff=True, is_superuser=False)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_configentry"))
    client.force_login(staff)

    r = client.get("/admin/transfer/", {"export": "1", "tenant": source.pk, "format": "json", "secrets": "plain"})

    assert r.status_code == 200
    assert SECRET not in r.content.decode()
    assert "needs the permission to reveal them" in r.content.decode()


def test_import__deeply_nested_document__clear_refusal_nothing_written(other_tenant, tmp_path):
    from tenants.models import ConfigEntry

    path = tmp_path / "deep.yaml"
    path.write_text("configs: " + "[" * 100_000 + "]" * 100_000)

    with pytest.raises(CommandError) as exc:
        call_command("import_tenant", "globex", str(path), stdout=io.StringIO())

    assert "nested too deeply" in str(exc.value)
    assert ConfigEntry.objects.filter(tenant=other_tenant).count() == 0


def test_import__flag_names_a_segment_the_tenant_lacks__refused_naming_it_nothing_written(other_tenant, tmp_path):
    from flags.models import Flag
    from tenants.models import ConfigEntry

    doc = {"format": "config-hub", "version": 1, "configs": [{"key": "fine", "value": 1}], "flags": [
        {"name": "beta", "environments": {"production": {"enabled": True, "strategies": [
            {"name": "default", "parameters": {}, "segments": [987654]}]}}}]}
    path = tmp_path / "seg.yaml"
    path.write_text(yaml.safe_dump(doc))

    with pytest.raises(CommandError) as exc:
        call_command("import_tenant", "globex", str(path), stdout=io.StringIO())

    assert "flags[0] (beta)" in str(exc.value) and "987654" in str(exc.value)
    assert not ConfigEntry.objects.filter(tenant=other_tenant).exists()
    assert not Flag.objects.filter(tenant=other_tenant).exists()
