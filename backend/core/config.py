"""Settings of the application, built once at start-up from the environment."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from backend.core import server_state
from backend.core.logfiles import DEFAULT_BACKUPS, DEFAULT_MAX_BYTES, WHEN
from backend.core.primary_file import primary_of
from backend.core.server_state import ServerState
from backend.flags.errors import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
FLAG_ENV_PREFIX = "FEATURE_FLAG_"
ROLLBACK_MODE_ENV = "FEATURE_FLAG_ROLLBACK_MODE_ENABLED"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def parse_bool(name: str, raw: str) -> bool:
    """Parse an environment boolean, refusing anything that is not clearly true or false."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigurationError(
        f"{name}={raw!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off"
    )


class Settings(BaseSettings):
    """Every knob of PCM-Ops Tools; tests build their own instance."""

    model_config = SettingsConfigDict(env_prefix="PCM_", extra="ignore", populate_by_name=True)

    # Where a server started with these settings listens; clients use base_url (below).
    host: str = Field(default=server_state.DEFAULT_HOST, validation_alias="HOST")
    port: int = Field(default=server_state.DEFAULT_PORT, ge=1, le=65535, validation_alias="PORT")
    workers: int = Field(default=1, ge=1, le=64, validation_alias="WORKERS")
    data_dir: Path = PROJECT_ROOT / "data"
    log_dir: Path = PROJECT_ROOT / "logs"
    # The git repository that `pcm-ops rollback git` and `pcm-ops snapshot` work in.
    repo_dir: Path = PROJECT_ROOT
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    # The PostgreSQL database (postgresql+psycopg://...) that the `postgresql_support` flag
    # switches the primary database to (PCM_POSTGRES_URL). DATABASE_URL, when set, pins the
    # database instead and the flag then only reports.
    postgres_url: str | None = None
    # Set by `pcm-ops server start` when init_db could not reach the database: the server
    # then runs it (migrations, seed) in the background once the database answers.
    database_init_pending: bool = False
    # Set by `pcm-ops server start` (and `python -m backend.main`) for the workers it starts:
    # the primary database was decided (and switched) before them, so they do not try again.
    primary_checked: bool = False
    flag_poll_interval: float = Field(default=0.02, gt=0, le=5)
    # Seconds a write waits for a database lock held by another connection before it is
    # answered 503 "database busy, retry" (PCM_DATABASE_BUSY_TIMEOUT).
    database_busy_timeout: float = Field(default=10.0, gt=0, le=300)
    stale_after_seconds: float = Field(default=5.0, gt=0)
    log_level: str = "INFO"
    # The log file rotates (backend.core.logfiles): by size (PCM_LOG_MAX_BYTES, 0: never), by
    # time too when PCM_LOG_ROTATE_WHEN is S, M, H, D, midnight or W0-W6; PCM_LOG_BACKUPS
    # rotated copies are kept.
    log_max_bytes: int = Field(default=DEFAULT_MAX_BYTES, ge=0)
    log_backups: int = Field(default=DEFAULT_BACKUPS, ge=1, le=1000)
    log_rotate_when: str = Field(default="", pattern=WHEN)
    # Parsed from FEATURE_FLAG_* by from_environ(); not read from the environment by pydantic.
    rollback_mode: bool = False
    flag_overrides: dict[str, bool] = Field(default_factory=dict)
    # AWS: the endpoint lets a local emulator (moto) stand in; bounded timeouts and retries
    # make a dead endpoint answer within seconds instead of holding a worker.
    aws_endpoint_url: str | None = None
    aws_connect_timeout: float = Field(default=2.0, gt=0, le=60)
    aws_read_timeout: float = Field(default=5.0, gt=0, le=300)
    aws_max_attempts: int = Field(default=2, ge=1, le=10)
    aws_max_workers: int = Field(default=8, ge=1, le=64)
    # The AWS credential key ring as JSON (PCM_CREDENTIAL_KEYS); when unset, a 0600 file in
    # data_dir. Never the session-signing key.
    credential_keys: SecretStr | None = None
    # The audit chain's HMAC key ring, same JSON form (PCM_AUDIT_KEYS); when unset, a 0600 file
    # in data_dir. Never in the database.
    audit_keys: SecretStr | None = None
    # Signing keys (new_secret_key_handling): SECRET_KEY, else a generated 0600 file in data_dir;
    # SECRET_KEY_FALLBACKS (comma-separated) still verify, so that rotation keeps sessions.
    secret_key: str | None = Field(default=None, validation_alias="SECRET_KEY", repr=False)
    secret_key_fallbacks: str = Field(
        default="", validation_alias="SECRET_KEY_FALLBACKS", repr=False
    )
    # The key used when new_secret_key_handling is off (the legacy behaviour).
    legacy_secret_key: str = Field(default="pcm-ops-tools-legacy-secret-key", repr=False)
    session_idle_timeout: float = Field(default=30 * 60, gt=0)
    session_absolute_timeout: float = Field(default=12 * 3600, gt=0)
    # "auto": Secure when the request came over HTTPS; true/false force it.
    cookie_secure: str = Field(default="auto", pattern="^(auto|true|false)$")
    login_max_failures: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_max_delay: float = Field(default=15 * 60, gt=0)
    # PCM_TRUSTED_PROXIES: addresses or networks (comma-separated) of the reverse proxies whose
    # X-Forwarded-For/-Proto are believed; empty (the default) believes no one's.
    trusted_proxies: str = ""
    # Request bodies past these limits are refused (413, 422) before any handler parses them.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=32, ge=2, le=1000)

    @field_validator("data_dir", "log_dir", "repo_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: str) -> str:
        for item in (v.strip() for v in value.split(",")):
            if item:
                try:
                    ipaddress.ip_network(item, strict=False)
                except ValueError:
                    raise ValueError(
                        f"{item!r} is not an IP address or network (like 10.0.0.5 or 10.0.0.0/24)"
                    ) from None
        return value

    @property
    def trusted_proxy_list(self) -> list[str]:
        return [v.strip() for v in self.trusted_proxies.split(",") if v.strip()]

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "pcm_ops_tools.db"

    @property
    def sqlite_url(self) -> str:
        return f"sqlite:///{self.sqlite_path}"

    @property
    def primary_state_file(self) -> Path:
        """Which database is the primary now (sqlite or postgresql) and when the two sides
        were last in step (see backend.db.primary), mode 0600."""
        return self.data_dir / "pcm_ops_tools.primary.json"

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL when set (it pins the database); else PCM_POSTGRES_URL while the
        primary is PostgreSQL (after a switch by `postgresql_support`); else the SQLite file."""
        if self.database_url:
            return self.database_url
        if self.postgres_url and primary_of(self.primary_state_file) == "postgresql":
            return self.postgres_url
        return self.sqlite_url

    @property
    def admin_token_path(self) -> Path:
        return self.data_dir / "admin_token"

    @property
    def admin_password_path(self) -> Path:
        return self.data_dir / "admin_password"

    @property
    def secret_key_file(self) -> Path:
        return self.data_dir / "secret_key"

    @property
    def fallback_keys(self) -> list[str]:
        return [k.strip() for k in self.secret_key_fallbacks.split(",") if k.strip()]

    @property
    def log_file(self) -> Path:
        return self.log_dir / "pcm_ops_tools.log"

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "pcm_ops_tools.pid"

    @property
    def metrics_dir(self) -> Path:
        """The workers' Prometheus files (PROMETHEUS_MULTIPROC_DIR), emptied at each start."""
        return self.data_dir / "prometheus_multiproc"

    @property
    def state_file(self) -> Path:
        """Durable last-known flag state, used when the database cannot be read."""
        return self.data_dir / "flags_last_known.json"

    @property
    def rollback_journal_file(self) -> Path:
        """Rollbacks made while the database was down, replayed into it when it returns."""
        return self.state_file.with_name("rollback_journal.jsonl")

    @property
    def backup_dir(self) -> Path:
        """Where `pcm-ops db backup` writes pcm_ops_tools_backup_YYYYMMDD_HHMMSS.db."""
        return self.data_dir

    @property
    def backup_manifest(self) -> Path:
        """Records of the backups, beside them and outside the database: a restore keeps them."""
        return self.data_dir / "backups.json"

    @property
    def snapshots_file(self) -> Path:
        return self.data_dir / "snapshots.json"

    @property
    def baseline_file(self) -> Path:
        """Recorded /api/health response time that `pcm-ops verify` compares against."""
        return self.data_dir / "baseline.json"

    @property
    def audit_keys_file(self) -> Path:
        """The audit chain's HMAC key ring, created on first use (mode 0600)."""
        return self.data_dir / "audit_keys.json"

    @property
    def audit_checkpoint_file(self) -> Path:
        """Signed checkpoints of the audit chain's head, one JSON line each (mode 0600)."""
        return self.data_dir / "audit_checkpoints.jsonl"

    @property
    def credential_keys_file(self) -> Path:
        """The AWS credential key ring, created on first use (mode 0600)."""
        return self.data_dir / "credential_keys.json"

    @property
    def server_state_file(self) -> Path:
        """Where the running server listens (pid, host, port, workers, start time), 0600."""
        return self.data_dir / "pcm_ops_tools.server.json"

    @property
    def running_server(self) -> ServerState | None:
        """The server `pcm-ops server start` started from this data directory, while it runs."""
        return server_state.read(self.server_state_file)

    @property
    def listen_url(self) -> str:
        """The URL of a server started with these settings (HOST, PORT or their defaults)."""
        return server_state.url_for(self.host, self.port)

    @property
    def base_url(self) -> str:
        """The URL clients use: HOST and PORT when given (in the environment or by a test),
        else the address the running server recorded, else the defaults. So a server started
        with `PORT=8620 ./start.sh` is found without repeating PORT."""
        given = self.model_fields_set
        running = None if {"host", "port"} <= given else self.running_server
        if running is None:
            return self.listen_url
        host = self.host if "host" in given else running.host
        port = self.port if "port" in given else running.port
        return server_state.url_for(host, port)

    def restart_command(self) -> str:
        """How to restart the running server on the address it has now."""
        running = self.running_server
        if running is not None:
            return running.restart_command()
        return ServerState(0, self.host, self.port, self.workers, "").restart_command()


def flag_env(environ: Mapping[str, str]) -> tuple[bool, dict[str, bool]]:
    """Read rollback mode and per-flag overrides from FEATURE_FLAG_* variables."""
    rollback_mode = False
    overrides: dict[str, bool] = {}
    for key, raw in environ.items():
        if not key.startswith(FLAG_ENV_PREFIX):
            continue
        if key == ROLLBACK_MODE_ENV:
            rollback_mode = parse_bool(key, raw)
            continue
        name = key[len(FLAG_ENV_PREFIX) :].lower()
        overrides[name] = parse_bool(key, raw)
    return rollback_mode, overrides


def from_environ(**overrides: object) -> Settings:
    """Build settings from the process environment, with clear errors for bad values."""
    rollback_mode, flag_overrides = flag_env(os.environ)
    try:
        return Settings(rollback_mode=rollback_mode, flag_overrides=flag_overrides, **overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigurationError(f"invalid settings: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, built on first use."""
    return from_environ()
