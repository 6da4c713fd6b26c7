"""Settings for config hub.

Production differs from development only through environment variables (see
README "Settings"). With nothing set, the hub runs on an embedded default: SQLite,
a local-memory cache and a Celery broker on the filesystem, so a newcomer needs no
server. ``DATABASE_URL`` and ``REDIS_URL`` move it to PostgreSQL and Redis.

Why this module is long: it is every setting of the hub, each read from the
environment once with its check and its why-comment; docs/settings.md lists them
in the same order. Splitting it by topic would scatter what an operator reads
together.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from . import signing as _signing_secrets
from .env import env_bool, env_db, env_float, env_int, env_list, env_pairs, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("CONFIG_HUB_VAR_DIR") or BASE_DIR / "var")

DEBUG = env_bool("DJANGO_DEBUG", True)

# --- secrets -----------------------------------------------------------------
_DEV_SECRET_KEY = "dev-only-insecure-secret-key-change-me-0123456789abcdef"
# A fixed development Fernet key, so that `make run` works out of the box. It is
# refused in production mode below, like the development SECRET_KEY.
_DEV_FERNET_KEY = "ZGV2LW9ubHktZmVybmV0LWtleS1kby1ub3QtdXNlISE="
SECRET_KEY = env_str("SECRET_KEY") or _DEV_SECRET_KEY
FERNET_KEYS = env_list("FERNET_KEYS") or [_DEV_FERNET_KEY]
# The shared service-token secret (SERVICE_JWT_SECRET) is accepted for ONE tenant only (the
# built-in `default`, or the one named here; empty: for none). Every tenant can
# have its own rotatable secrets (registry.ServiceTokenSecret, docs/security.md).
SERVICE_JWT_SHARED_SECRET_TENANT = env_str("SERVICE_JWT_SHARED_SECRET_TENANT", "default") or ""
SERVICE_JWT_SECRET = env_str("SERVICE_JWT_SECRET") or ""
SERVICE_JWT_REQUIRE_EXP = env_bool("SERVICE_JWT_REQUIRE_EXP", False)
JWT_SIGNING_KEY = env_str("JWT_SIGNING_KEY") or ""
# No signing secret falls back to another (config_hub/settings/signing.py): in
# production each is set and all differ, else the hub refuses to start; in
# development an unset one is derived from SECRET_KEY per purpose (other bytes).
_signing = {"SECRET_KEY": SECRET_KEY, "JWT_SIGNING_KEY": JWT_SIGNING_KEY, "SERVICE_JWT_SECRET": SERVICE_JWT_SECRET}
_optional = () if SERVICE_JWT_SHARED_SECRET_TENANT else ("SERVICE_JWT_SECRET",)
DERIVED_SECRETS: list[str] = []
if DEBUG:
    for _name in ("JWT_SIGNING_KEY", "SERVICE_JWT_SECRET"):
        if not _signing[_name]:
            _signing[_name] = _signing_secrets.derive(SECRET_KEY, _name)
            DERIVED_SECRETS.append(_name)
    JWT_SIGNING_KEY, SERVICE_JWT_SECRET = _signing["JWT_SIGNING_KEY"], _signing["SERVICE_JWT_SECRET"]

if not DEBUG:
    if SECRET_KEY == _DEV_SECRET_KEY or len(SECRET_KEY) < 32:
        raise ImproperlyConfigured(
            "DJANGO_DEBUG=false needs SECRET_KEY (50+ random characters, or SECRET_KEY_FILE)"
        )
    if _DEV_FERNET_KEY in FERNET_KEYS:
        raise ImproperlyConfigured(
            "DJANGO_DEBUG=false needs FERNET_KEYS (comma separated Fernet keys; "
            "generate one with `manage.py generate_fernet_key`)"
        )
    _problems = _signing_secrets.problems(_signing, optional=_optional)
    if _problems:
        raise ImproperlyConfigured(
            "DJANGO_DEBUG=false: " + "; ".join(f"{check_id}: {message}" for check_id, message in _problems)
        )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["*"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# --- apps --------------------------------------------------------------------
INSTALLED_APPS = [
    "config_hub.apps.HubAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "simple_history",
    "corsheaders",
    "axes",
    "csp",
    "config_hub.apps.ConfigHubConfig",
    "tenants",
    "flags",
    "registry",
    "events",
    "changes",
    "releases",
]

MIDDLEWARE = [
    "core.middleware.DependencyErrorMiddleware",
    "core.middleware.JsonNotFoundMiddleware",
    "core.limits.BodySizeLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files under gunicorn (collectstatic into STATIC_ROOT), cached and compressed.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "core.middleware.HtmlCSPMiddleware",  # django-csp, on HTML answers only
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "core.middleware.ApiCommonMiddleware",  # CommonMiddleware; no slash redirect for a write
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    # Passwords (the admin's login form, /api/v1/auth/token/), unless PASSWORD_LOGIN is off.
    "config_hub.sso.PasswordBackend",
    # Single sign-on with OpenID Connect, when OIDC_RP_CLIENT_ID is set.
    "config_hub.sso.OidcBackend",
]

ROOT_URLCONF = "config_hub.urls"
WSGI_APPLICATION = "config_hub.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    }
]

# --- database ----------------------------------------------------------------
DATABASES = {"default": env_db("DATABASE_URL", f"sqlite:///{VAR_DIR / 'config_hub.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections: a request should not pay a TCP + auth handshake.
    DATABASES["default"]["CONN_MAX_AGE"] = env_int("DATABASE_CONN_MAX_AGE", 60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = env_int(
        "DATABASE_CONNECT_TIMEOUT", 3
    )
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # WAL lets the web process read while the Celery worker writes.
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL;"
    # A transaction that reads and then writes would get SQLITE_BUSY at once when
    # another process writes (the busy timeout cannot help a read lock that must
    # be upgraded): take the write lock at BEGIN so it waits its turn instead.
    DATABASES["default"]["OPTIONS"]["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache and broker --------------------------------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "ch",
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.DefaultClient",
                # Redis down must never take reads down: the cache then misses
                # and reads come from the database (see docs/architecture.md).
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": env_float("REDIS_CONNECT_TIMEOUT", 0.25),
                "SOCKET_TIMEOUT": env_float("REDIS_SOCKET_TIMEOUT", 0.5),
            },
        }
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    DJANGO_REDIS_LOGGER = "config_hub.cache"
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or REDIS_URL or "filesystem://"
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),  # kombu's default is ./control
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # kombu's Redis transport with the fix that keeps the worker alive across a
    # Redis restart (config_hub/broker.py explains what kombu does without it).
    CELERY_BROKER_TRANSPORT = "config_hub.broker:Transport"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = env_bool("CELERY_TASK_ACKS_LATE", True)
CELERY_WORKER_PREFETCH_MULTIPLIER = env_int("CELERY_WORKER_PREFETCH_MULTIPLIER", 4)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A worker and a beat wait for the broker as long as it takes (Celery's default
# gives up after 100 attempts, about 50 minutes, and the process exits).
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
# Tasks run on threads, which cannot be cancelled; they are idempotent (claims,
# unique constraints), so one redelivered after a connection loss is harmless.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TIMEZONE = "UTC"
# Publishing must not hang a request when the broker is down: the outbox sweep
# sends the event later (see events/).
CELERY_BROKER_CONNECTION_TIMEOUT = env_float("CELERY_BROKER_CONNECTION_TIMEOUT", 1.0)
CELERY_TASK_PUBLISH_RETRY = False

# --- auth --------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "admin:login"

# --- single sign-on (OpenID Connect, mozilla-django-oidc; config_hub/sso.py, docs/admin.md) ---
# On when OIDC_RP_CLIENT_ID is set: the admin's login page offers "Sign in with
# single sign-on"; users are created on first sign-in (staff, no password) and
# their Django groups follow the identity provider's group claim on EVERY sign-in.
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID") or ""
OIDC_RP_CLIENT_SECRET = env_str("OIDC_RP_CLIENT_SECRET") or ""
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
# The provider: its issuer (endpoints read from its discovery document,
# {issuer}/.well-known/openid-configuration, at the first sign-in of each process),
# or each endpoint (an endpoint set here wins over the discovered one).
OIDC_OP_ISSUER = (env_str("OIDC_OP_ISSUER") or "").rstrip("/")
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT") or ""
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT") or ""
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT") or ""
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT") or ""
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO") or "RS256"
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES") or "openid email profile"
OIDC_USE_PKCE = env_bool("OIDC_USE_PKCE", True)
# Seconds for each call to the provider (token, userinfo, keys): a hung provider
# must not hold a web thread for ever.
OIDC_TIMEOUT = env_float("OIDC_TIMEOUT", 5)
OIDC_USERNAME_CLAIM = env_str("OIDC_USERNAME_CLAIM") or "preferred_username"
OIDC_GROUPS_CLAIM = env_str("OIDC_GROUPS_CLAIM") or "groups"
# "idp-group=django-group,...": the Django groups single sign-on manages. Members
# of an identity provider group get the mapped group; a mapped group the claim no
# longer names is taken away at the next sign-in. Other groups are left alone.
OIDC_GROUP_MAP = env_pairs("OIDC_GROUP_MAP")
# Identity provider groups whose members are superusers (re-decided at each
# sign-in); empty: single sign-on never changes is_superuser.
OIDC_SUPERUSER_GROUPS = env_list("OIDC_SUPERUSER_GROUPS")
OIDC_LOGIN_LABEL = env_str("OIDC_LOGIN_LABEL") or "Sign in with single sign-on"
if OIDC_ENABLED:
    _needed = ("OIDC_RP_CLIENT_SECRET",) if OIDC_OP_ISSUER else (
        "OIDC_RP_CLIENT_SECRET", "OIDC_OP_AUTHORIZATION_ENDPOINT", "OIDC_OP_TOKEN_ENDPOINT", "OIDC_OP_USER_ENDPOINT",
        "OIDC_OP_JWKS_ENDPOINT")
    _missing = [name for name in _needed if not globals()[name]]
    if _missing:
        raise ImproperlyConfigured(f"OIDC_RP_CLIENT_ID is set: single sign-on also needs {', '.join(_missing)}"
                                   + ("" if OIDC_OP_ISSUER else " (or OIDC_OP_ISSUER, to discover the endpoints)"))
LOGIN_REDIRECT_URL = "/admin/"
LOGIN_REDIRECT_URL_FAILURE = "/admin/login/?sso=failed"
OIDC_AUTHENTICATE_CLASS = "config_hub.sso.SsoStartView"
OIDC_CALLBACK_CLASS = "config_hub.sso.SsoCallbackView"
# Off: no password signs in anywhere (the admin's form, /api/v1/auth/token/); the
# login page shows only the single sign-on button. Needs single sign-on.
PASSWORD_LOGIN = env_bool("PASSWORD_LOGIN", True)
if not PASSWORD_LOGIN and not OIDC_ENABLED:
    raise ImproperlyConfigured("PASSWORD_LOGIN=false needs single sign-on (OIDC_RP_CLIENT_ID...): nobody could sign in")
# Operators' roles per tenant and environment (tenants/roles.py): with this on, a
# user who holds no role may change nothing (superusers excepted); off, such a
# user is governed by the model permissions alone, as before roles existed.
ROLES_REQUIRED = env_bool("ROLES_REQUIRED", False)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.api.authentication.ApiKeyAuthentication",
        "registry.api.authentication.ServiceTokenAuthentication",
        "core.api.authentication.JWTAuthentication",
    ],
    # HasScope first: a caller without credentials or scope gets 401/403, not a 400.
    "DEFAULT_PERMISSION_CLASSES": ["core.api.permissions.HasScope", "core.api.strict.KnownQueryParameters"],
    "DEFAULT_RENDERER_CLASSES": ["core.api.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.api.negotiation.JsonFirstNegotiation",
    "EXCEPTION_HANDLER": "core.api.exceptions.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "config_hub.api.schema.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "core.api.pagination.Pagination",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_THROTTLE_CLASSES": ["core.api.throttling.PrincipalRateThrottle"],
}
# Requests per API key / user / service token: "<n>/<s|min|hour>", or "off".
API_THROTTLE_RATE = env_str("API_THROTTLE_RATE") or "60000/min"
# Failed API key authentications per client address (REMOTE_ADDR) and window;
# past it: 429 with Retry-After, and no database query for an unknown key.
API_AUTH_FAILURE_RATE = env_str("API_AUTH_FAILURE_RATE") or "30/min"

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env_int("JWT_ACCESS_MINUTES", 15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env_int("JWT_REFRESH_DAYS", 1)),
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Config hub API",
    "DESCRIPTION": "Configs, secrets, feature flags and a service registry for a fleet.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # API.md: every route but /health and /metrics needs credentials, the docs
    # too (an operator logged into the admin reads them with the session).
    "SERVE_PERMISSIONS": ["core.api.permissions.IsAuthenticatedPrincipal"],
    "SERVE_AUTHENTICATION": [
        "core.api.authentication.ApiKeyAuthentication",
        "core.api.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

# --- hub behaviour ------------------------------------------------------------
SERVICE_NAME = env_str("SERVICE_NAME") or "config-hub"
# The port to listen on: SERVICE_PORT, else PORT (what run-dev and most platforms set).
SERVICE_PORT = env_int("SERVICE_PORT", env_int("PORT", 8000))
CONFIG_CACHE_TTL = env_int("CONFIG_CACHE_TTL", 300)
API_KEY_CACHE_TTL = env_int("API_KEY_CACHE_TTL", 60)
REGISTRY_HEARTBEAT_TTL = env_float("REGISTRY_HEARTBEAT_TTL", 90)
REGISTRY_DEREGISTER_AFTER = env_float("REGISTRY_DEREGISTER_AFTER", 3600)
REGISTRY_SWEEP_INTERVAL = env_float("REGISTRY_SWEEP_INTERVAL", 15)
REGISTRY_MAX_EVICT_RATIO = env_float("REGISTRY_MAX_EVICT_RATIO", 0.5)
REGISTRY_ACTIVE_CHECKS = env_bool("REGISTRY_ACTIVE_CHECKS", False)
# Heartbeats that do not change the status are buffered in Redis and written to
# the database set-based every REGISTRY_HEARTBEAT_FLUSH_INTERVAL seconds (and
# before every sweep); false, no Redis, or Redis down: each beat is one UPDATE.
REGISTRY_HEARTBEAT_BUFFER = env_bool("REGISTRY_HEARTBEAT_BUFFER", True)
REGISTRY_HEARTBEAT_FLUSH_INTERVAL = env_float("REGISTRY_HEARTBEAT_FLUSH_INTERVAL", 2)
# Each web process keeps buffered beats in memory and pushes them to Redis every
# REGISTRY_HEARTBEAT_LOCAL_INTERVAL seconds (0: one Redis write per beat); the
# sweep judges an instance silent twice this interval after its TTL.
REGISTRY_HEARTBEAT_LOCAL_INTERVAL = env_float("REGISTRY_HEARTBEAT_LOCAL_INTERVAL", 1)
# Active checks (opt-in): probe each instance's health_check_url every interval;
# N consecutive failures mark it unhealthy, M consecutive passes bring it back.
REGISTRY_CHECK_INTERVAL = env_float("REGISTRY_CHECK_INTERVAL", 10)
REGISTRY_CHECK_TIMEOUT = env_float("REGISTRY_CHECK_TIMEOUT", 2)
REGISTRY_CHECK_FAILURES = env_int("REGISTRY_CHECK_FAILURES", 3)
REGISTRY_CHECK_SUCCESSES = env_int("REGISTRY_CHECK_SUCCESSES", 2)
REGISTRY_CHECK_CONCURRENCY = env_int("REGISTRY_CHECK_CONCURRENCY", 32)
REGISTRY_CHECK_MAX_INSTANCES = env_int("REGISTRY_CHECK_MAX_INSTANCES", 5000)
# Discovery answers from a snapshot of each service's healthy instances, dropped
# on every change of membership or status; this bounds the age of its
# last_heartbeat/response_time fields.
REGISTRY_DISCOVERY_CACHE_TTL = env_float("REGISTRY_DISCOVERY_CACHE_TTL", 5)
# One deadline per delivery attempt (connect, TLS, request, status and headers),
# of which at most WEBHOOK_CONNECT_TIMEOUT to connect.
WEBHOOK_TIMEOUT = env_float("WEBHOOK_TIMEOUT", 4.0)
WEBHOOK_CONNECT_TIMEOUT = env_float("WEBHOOK_CONNECT_TIMEOUT", 2.0)
# Fairness: deliveries in flight per tenant, across every worker (a Redis
# semaphore); a tenant at its cap waits WEBHOOK_TENANT_BUSY_DELAY seconds in the
# queue instead of holding a worker slot. Keep it below the worker's concurrency.
WEBHOOK_TENANT_CONCURRENCY = env_int("WEBHOOK_TENANT_CONCURRENCY", 4)
WEBHOOK_TENANT_BUSY_DELAY = env_float("WEBHOOK_TENANT_BUSY_DELAY", 1.0)
WEBHOOK_MAX_PER_TENANT = env_int("WEBHOOK_MAX_PER_TENANT", 25)
# Fan-out: an event's deliveries go out in batches of WEBHOOK_BATCH_SIZE (one task
# each); a batch sends over async HTTP with connections reused, at most
# WEBHOOK_CONCURRENCY exchanges at once (and WEBHOOK_TENANT_CONCURRENCY per tenant).
WEBHOOK_BATCH_SIZE = env_int("WEBHOOK_BATCH_SIZE", 500)
WEBHOOK_CONCURRENCY = env_int("WEBHOOK_CONCURRENCY", 100)
# Seconds between attempts: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h (Standard Webhooks' advice).
WEBHOOK_RETRY_SCHEDULE = [float(x) for x in env_list("WEBHOOK_RETRY_SCHEDULE", ["5", "300", "1800", "7200", "18000", "36000"])]
WEBHOOK_DISABLE_AFTER = env_float("WEBHOOK_DISABLE_AFTER", 86400)
EVENTS_MAX_WAIT = env_int("EVENTS_MAX_WAIT", 60)
# Held long polls (each holds a server thread): per process at most half of the
# gunicorn threads, so ordinary reads always have threads; per caller a few.
EVENTS_WAIT_MAX_PER_PROCESS = env_int("EVENTS_WAIT_MAX_PER_PROCESS", max(1, env_int("GUNICORN_THREADS", 16) // 2))
EVENTS_WAIT_MAX_PER_KEY = env_int("EVENTS_WAIT_MAX_PER_KEY", 4)
# Without Redis pub/sub, a waiter looks for other processes' events this often.
EVENTS_POLL_INTERVAL = env_float("EVENTS_POLL_INTERVAL", 0.2)
# The change stream (GET /api/v1/stream, events/stream.py): listeners per process
# (503 with Retry-After beyond), seconds between keepalive comments, and the
# threads (each with its database connection) that read the outbox for them.
EVENTS_STREAM_MAX_PER_PROCESS = env_int("EVENTS_STREAM_MAX_PER_PROCESS", 10000)
EVENTS_STREAM_KEEPALIVE = env_float("EVENTS_STREAM_KEEPALIVE", 15)
EVENTS_STREAM_DB_THREADS = env_int("EVENTS_STREAM_DB_THREADS", 4)
# Change requests (docs/change-requests.md): environments protected for every tenant
# unless an operator sets the global default in the admin (one approval, not by the
# author). Empty: nothing is protected until a policy says so.
CHANGE_PROTECTED_ENVIRONMENTS = env_list("CHANGE_PROTECTED_ENVIRONMENTS")
# How often the beat looks for scheduled change requests that are due (seconds).
CHANGE_SCHEDULE_INTERVAL = env_float("CHANGE_SCHEDULE_INTERVAL", 15)
# Bytes a listener's connection may have waiting to be sent; a listener that leaves
# it full for EVENTS_STREAM_KEEPALIVE seconds is closed (it resumes by id): config_hub/asgi.py.
EVENTS_STREAM_BUFFER = env_int("EVENTS_STREAM_BUFFER", 256 * 1024)
# OFREP push (ADR-0008): the bulk answer names the hub's OFREP stream in eventStreams
# (for API-key callers), with this inactivityDelaySec for the providers.
OFREP_EVENT_STREAMS = env_bool("OFREP_EVENT_STREAMS", True)
OFREP_STREAM_INACTIVITY_DELAY = env_int("OFREP_STREAM_INACTIVITY_DELAY", 120)
HEALTH_PUBLIC = env_bool("HEALTH_PUBLIC", True)
BENCH_ROUTES = env_bool("BENCH_ROUTES", False)
# Per-process caches of hot lookups, invalidated by Redis pub/sub (core/invalidation.py, core/cache.py).
LOCAL_INVALIDATION = env_bool("LOCAL_INVALIDATION", True)
LOCAL_INVALIDATION_TTL = env_float("LOCAL_INVALIDATION_TTL", 60)
BEAT_STALE_AFTER = env_float("BEAT_STALE_AFTER", 120)
METRICS_PUBLIC = env_bool("METRICS_PUBLIC", True)

# --- security ----------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 1024 * 1024)
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS")
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15))
# Lockout (config_hub/lockout.py, docs/security.md): AXES_FAILURE_LIMIT failures for
# one (username, address) lock that pair; AXES_IP_FAILURE_LIMIT failures from one
# address across usernames (spraying) lock the address. Never by username alone,
# so nobody can lock an operator out from another address.
AXES_IP_FAILURE_LIMIT = env_int("AXES_IP_FAILURE_LIMIT", 20)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_HANDLER = "core.lockout.LockoutHandler"
# The client's address: REMOTE_ADDR, or, behind TRUSTED_PROXY_COUNT reverse proxies
# that append to X-Forwarded-For, the address the outermost of them saw.
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0)
AXES_CLIENT_IP_CALLABLE = "core.api.throttling.client_address"
AXES_ENABLED = env_bool("AXES_ENABLED", True)
if not DEBUG:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^health$", r"^metrics$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True

# --- outbound requests (webhooks, active checks; config_hub/outbound.py) -------------
# Production refuses loopback, private, link-local, multicast and reserved
# destinations (checked after resolving, connected to the checked address);
# OUTBOUND_ALLOW lists CIDRs and host names (".corp.internal" = the domain and
# below) that may be called anyway. The embedded default allows loopback.
OUTBOUND_ALLOW_LOOPBACK = env_bool("OUTBOUND_ALLOW_LOOPBACK", DEBUG)
OUTBOUND_ALLOW = env_list("OUTBOUND_ALLOW")

# --- i18n / static -----------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = Path(env_str("STATIC_ROOT") or BASE_DIR / "static")
# WhiteNoise serves /static/ in every mode; in production from the files
# `collectstatic` put in STATIC_ROOT, with hashed names cached for a year.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Content-Security-Policy (django-csp) on every response: the admin and the API
# docs load scripts only from this origin (an inline script needs the request's
# nonce); styles may be inline (the admin's style attributes, Swagger UI's and
# Redoc's injected styles); Redoc runs a worker from a blob.
from csp.constants import NONCE, NONE, SELF, UNSAFE_INLINE  # noqa: E402

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF, UNSAFE_INLINE],
        "img-src": [SELF, "data:"],
        "font-src": [SELF, "data:"],
        "connect-src": [SELF],
        "worker-src": [SELF, "blob:"],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    }
}

# --- logging -----------------------------------------------------------------
LOG_LEVEL = env_str("LOG_LEVEL") or "INFO"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "core.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        "django.server": {"level": "WARNING"},
    },
}
