from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    name = "releases"
    verbose_name = "Releases"

    def ready(self) -> None:
        # The read path (tenants, a layer below) answers pinned services from a
        # release through this look-up (tenants/pins.py).
        from tenants.pins import pin_lookup_install

        from .rollback import change_request_hook_connect
        from .selectors import pinned_reads

        pin_lookup_install(pinned_reads)
        change_request_hook_connect()
