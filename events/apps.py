from django.apps import AppConfig


class EventsConfig(AppConfig):
    name = "events"
    verbose_name = "Change events and webhooks"

    def ready(self) -> None:
        from .services import register_after_commit_hook
        from .tasks import event_dispatch_queue, events_dispatch_queue
        from .watch import watchers_wake

        # In this order: watchers wake first, then the fan-out is queued. Many events
        # at once (the registry's sweep): one wake-up (waiters read every event after
        # their cursor), one task.
        register_after_commit_hook(watchers_wake, many=lambda event_ids: watchers_wake(max(event_ids)))
        register_after_commit_hook(event_dispatch_queue, many=events_dispatch_queue)
