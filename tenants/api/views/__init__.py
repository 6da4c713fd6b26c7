"""The tenants app's routes, one module per entity (``configs``, ``bundles``,
``tenant_configs``, ``schemas``, ``tenants``, ``environments``); ``common`` holds
what they share. ``tenants/api/urls.py`` imports each view from its module."""
