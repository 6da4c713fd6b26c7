from django.apps import AppConfig


class ConfigHubConfig(AppConfig):
    name = "config_hub"
    verbose_name = "Config hub"

    def ready(self) -> None:
        from core import audit  # noqa: F401  (connects the history actor signal)

        from . import checks  # noqa: F401  (the signing secrets' deploy check)
        from .api import schema  # noqa: F401  (OpenAPI descriptions of our credentials)


from django.contrib.admin.apps import AdminConfig  # noqa: E402


class HubAdminConfig(AdminConfig):
    default_site = "config_hub.admin_site.HubAdminSite"
