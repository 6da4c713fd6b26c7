"""The built-in tenant ``default`` and the environments every hub starts with."""
from django.db import migrations

ENVIRONMENTS = [("development", "Development"), ("staging", "Staging"), ("production", "Production")]


def create(apps, schema_editor):
    Tenant = apps.get_model("tenants", "Tenant")
    Environment = apps.get_model("tenants", "Environment")
    Tenant.objects.get_or_create(slug="default", defaults={"name": "Default tenant"})
    for slug, name in ENVIRONMENTS:
        Environment.objects.get_or_create(slug=slug, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [migrations.RunPython(create, migrations.RunPython.noop)]
