"""Flag writes: the one way to create, change, delete or import flags and segments.

One module per entity (``flags``, ``segments``) and one for the Unleash import
(``unleash_import``, written through the other two); callers import from the
module, e.g. ``from flags.services.flags import flag_create``. Each write
validates with :mod:`flags.validation` (the engine's strict validators, the
stored-JSON limits, segment ownership), bumps versions, records the history
actor, writes a ``flag``/``segment`` event in the same transaction and bumps the
tenant's flag generation after commit so every process recompiles.
"""
