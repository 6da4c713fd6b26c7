"""A real OpenID Connect provider for the single sign-on tests.

django-oauth-toolkit in OIDC mode, as a tiny Django project of its own (its own
settings, its own SQLite file, its own RSA signing key), started by the tests in
a subprocess on a free port (``tests/sso/conftest.py``). Users and their groups
come from a JSON file the test writes: the ``groups`` claim is read from it at
each sign-in, so a test changes someone's groups at the provider by rewriting it.
"""
