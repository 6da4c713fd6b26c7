from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Change events and webhooks"

    def ready(self) -> None:
        from .dispatch import on_event_committed
        from .services import register_after_commit_hook

        register_after_commit_hook(on_event_committed)
