from django.apps import AppConfig


class ChangesConfig(AppConfig):
    name = "changes"
    verbose_name = "Change requests"

    def ready(self) -> None:
        # The protection rule joins the one write gate (tenants.guard): every config,
        # schema, flag and segment write of every path asks it first.
        from tenants.guard import write_check_register

        from .protection import protection_check

        write_check_register(protection_check)
