"""Writes: the one way to change a tenant, an environment, a config, a schema or a key.

One module per entity (``tenants``, ``environments``, ``configs``, ``schemas``,
``api_keys``, ``fernet`` for key rotation); callers import from the entity's
module, e.g. ``from tenants.services.configs import config_set``. The admin's
``save_model`` and actions, the DRF views, the management commands and the
Celery tasks call these functions and nothing else. Each write is validated,
versioned, audited (simple-history with the actor), announced (an event in the
same transaction) and invalidates exactly the cache it affects.
"""
