from django.apps import AppConfig


class FlagsConfig(AppConfig):
    name = "flags"
    verbose_name = "Feature flags"

    def ready(self) -> None:
        # The compiled flag states and cached answers are the flags app's own
        # per-process caches: emptied with every other one (core.cache.clear_all).
        from core.cache import on_clear_all

        from .selectors import local_cache_clear

        on_clear_all(local_cache_clear)
