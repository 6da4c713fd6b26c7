from django.apps import AppConfig


class TenantsConfig(AppConfig):
    name = "tenants"
    verbose_name = "Tenants and configuration"

    def ready(self) -> None:
        # Core's API plumbing reaches API keys and tenants through these (it imports no app).
        from core import directory

        from .credentials import api_key_principal
        from .guard import write_check_register
        from .models import DEFAULT_TENANT_SLUG, Environment
        from .roles import role_write_check
        from .selectors import tenant_get, tenant_slug

        directory.install(api_key_principal=api_key_principal, tenant_get=tenant_get, tenant_slug=tenant_slug,
                          default_tenant_slug=lambda: DEFAULT_TENANT_SLUG,
                          environment_exists=lambda *, slug: Environment.objects.filter(slug=slug).exists())
        # Operators' roles per tenant and environment: asked by every write service.
        write_check_register(role_write_check)
