"""One Settings object, read from the environment once."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32


class ConfigurationError(RuntimeError):
    """The settings cannot run a server safely; the message says what to change."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", extra="ignore", frozen=True)

    environment: Literal["development", "test", "production"] = Field(
        "development", alias="FORECOURT_ENV",
        description="`development`, `test` or `production`; production refuses to start without a "
        "`JWT_SECRET` of 32+ characters",
    )
    debug: bool = Field(
        False, alias="FORECOURT_DEBUG",
        description="show internal error messages instead of masking them (never in production)",
    )
    data_dir: Path = Field(
        Path(".forecourt"), alias="FORECOURT_DATA_DIR",
        description="where the embedded PostgreSQL and the development JWT secret live",
    )
    host: str = Field(
        "127.0.0.1", alias="FORECOURT_HOST",
        description="address `forecourt serve` listens on (`--host` overrides it)",
    )
    port: int = Field(
        8000, alias="FORECOURT_PORT",
        description="port `forecourt serve` listens on (`--port` overrides it)",
    )

    database_url: str | None = Field(
        None, alias="DATABASE_URL",
        description="PostgreSQL 15+ with pgvector; unset: an embedded PostgreSQL in the data dir",
    )
    database_pool_size: int = Field(
        10, alias="DATABASE_POOL_SIZE",
        description="database connections each server process keeps open (as many again under load)",
    )
    redis_url: str | None = Field(
        None, alias="REDIS_URL",
        description="Redis for subscriptions across several server processes; unset: in-process",
    )

    jwt_secret: str | None = Field(
        None, alias="JWT_SECRET", repr=False,
        description="signs access tokens; unset in development: a random secret kept in the data "
        "dir",
    )
    access_token_ttl_seconds: int = Field(
        24 * 3600, alias="ACCESS_TOKEN_TTL_SECONDS",
        description="lifetime of an access token",
    )
    refresh_token_ttl_seconds: int = Field(
        7 * 24 * 3600, alias="REFRESH_TOKEN_TTL_SECONDS",
        description="lifetime of a refresh token",
    )
    # How long a resolved caller (role, KYC, active) is reused before the database is asked again.
    principal_cache_seconds: float = Field(
        2.0, alias="PRINCIPAL_CACHE_SECONDS",
        description="how long a caller's role, KYC and organization are reused before the "
        "database is asked again (changes still apply at once)",
    )
    # argon2id parameters; tests lower them, production keeps the library's defaults.
    argon2_time_cost: int = Field(
        3, alias="ARGON2_TIME_COST",
        description="argon2id passes per password hash",
    )
    argon2_memory_kib: int = Field(
        65536, alias="ARGON2_MEMORY_KIB",
        description="argon2id memory per password hash, in KiB",
    )

    # Request limits, in the spirit of graphql-armor.
    max_query_depth: int = Field(
        10, alias="MAX_QUERY_DEPTH",
        description="deepest selection a query may nest",
    )
    max_aliases: int = Field(15, alias="MAX_ALIASES", description="aliases per operation")
    max_tokens: int = Field(2000, alias="MAX_TOKENS", description="lexical tokens per operation")
    max_query_cost: int = Field(
        5000, alias="MAX_QUERY_COST",
        description="estimated cost per operation (each response reports its cost in "
        "`extensions.cost`)",
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024, alias="MAX_BODY_BYTES",
        description="largest HTTP request body (larger: 413)",
    )
    # The query text, in characters, refused before it is read: 2000 tokens of a formatted
    # query fit with room to spare; large values (imports) travel as variables.
    max_query_length: int = Field(
        64 * 1024, alias="MAX_QUERY_LENGTH",
        description="characters of query text; a longer query is refused before parsing (send "
        "large values as variables)",
    )
    # An encoded HTTP response larger than this is replaced by a RESPONSE_TOO_LARGE error.
    max_response_bytes: int = Field(
        8 * 1024 * 1024, alias="MAX_RESPONSE_BYTES",
        description="largest encoded HTTP response; a larger one is replaced by a "
        "`RESPONSE_TOO_LARGE` error",
    )
    introspection: bool = Field(
        True, alias="GRAPHQL_INTROSPECTION",
        description="schema introspection (off also disables field suggestions)",
    )
    default_page_size: int = Field(
        20, alias="DEFAULT_PAGE_SIZE",
        description="page size of a connection when `first` is not given",
    )
    max_page_size: int = Field(
        100, alias="MAX_PAGE_SIZE",
        description="largest `first` a connection accepts",
    )

    rate_limit_ip_per_minute: int = Field(
        100, alias="RATE_LIMIT_IP_PER_MINUTE",
        description="operations per minute for guests, per client address (0 = off)",
    )
    rate_limit_user_per_minute: int = Field(
        1000, alias="RATE_LIMIT_USER_PER_MINUTE",
        description="operations per minute per signed-in account (0 = off)",
    )
    # Sign-in operations (login, register, refreshToken) per client address, whoever asks:
    # a valid token does not buy a password guesser the per-user budget.
    rate_limit_credentials_per_minute: int = Field(
        30, alias="RATE_LIMIT_CREDENTIALS_PER_MINUTE",
        description="`login`, `register` and `refreshToken` per minute per client address, signed "
        "in or not",
    )
    # Queries and mutations one WebSocket runs at once (subscriptions are not counted): one
    # socket cannot take the database pool from everyone else.
    ws_concurrent_operations: int = Field(
        4, alias="WS_CONCURRENT_OPERATIONS",
        description="queries and mutations one WebSocket runs at once (subscriptions not counted)",
    )
    # Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (addresses or
    # networks, e.g. ["10.0.0.0/8"]); none by default, so clients cannot choose their address.
    trusted_proxies: list[str] = Field(
        default_factory=list, alias="TRUSTED_PROXIES",
        description="JSON list of proxy addresses or networks whose `X-Forwarded-For` / "
        "`X-Forwarded-Proto` are believed",
    )
    login_failures_per_account: int = Field(
        5, alias="LOGIN_FAILURES_PER_ACCOUNT",
        description="failed sign-ins per account before `TOO_MANY_ATTEMPTS` (0 = off)",
    )
    login_failures_per_ip: int = Field(
        50, alias="LOGIN_FAILURES_PER_IP",
        description="failed sign-ins per client address before `TOO_MANY_ATTEMPTS` (0 = off)",
    )
    login_failure_window_seconds: int = Field(
        60, gt=0, alias="LOGIN_FAILURE_WINDOW_SECONDS",
        description="the first sign-in backoff window; each further round of failures waits 4× "
        "longer",
    )

    openai_api_key: str | None = Field(
        None, alias="OPENAI_API_KEY", repr=False,
        description="optional: text embeddings for `similar`, LLM scoring of training sessions, "
        "voice roleplay",
    )
    openai_base_url: str = Field(
        "https://api.openai.com/v1", alias="OPENAI_BASE_URL",
        description="the OpenAI API's base URL",
    )
    embedding_model: str = Field(
        "text-embedding-3-small", alias="EMBEDDING_MODEL",
        description="the model for listing text embeddings",
    )
    embed_interval_seconds: float = Field(
        30, alias="EMBED_INTERVAL_SECONDS",
        description="how often new listings' text embeddings are computed (with `OPENAI_API_KEY`; 0 = off)",
    )

    revalue_interval_seconds: float = Field(
        600, alias="REVALUE_INTERVAL_SECONDS",
        description="how often stale vehicle valuations are recomputed (0 = off)",
    )
    # Feature vectors of imported vehicles are indexed after commit: right after an import in
    # this process, and this often for the rest (e.g. imports in other processes). 0 = off.
    vector_index_interval_seconds: float = Field(
        10.0, alias="VECTOR_INDEX_INTERVAL_SECONDS",
        description="how often imported vehicles' feature vectors are indexed for `similar`, "
        "besides right after an import (0 = off)",
    )

    # Training: the LLM that scores transcripts when OpenAI is configured, and how often live
    # scores are recomputed while a session runs.
    training_evaluation_model: str = Field(
        "gpt-4o-mini", alias="TRAINING_EVALUATION_MODEL",
        description="the LLM that scores finished training sessions (with `OPENAI_API_KEY`; a "
        "built-in evaluator otherwise)",
    )
    training_rescore_interval_seconds: float = Field(
        5.0, alias="TRAINING_RESCORE_INTERVAL_SECONDS",
        description="how often a running training session's live scores are recomputed, at most",
    )
    # Organizations Stripe does not bill get their minutes back every 30 days; checked this often.
    minute_renewal_interval_seconds: float = Field(
        3600, alias="MINUTE_RENEWAL_INTERVAL_SECONDS",
        description="how often organizations not billed by Stripe are checked for their 30-day "
        "training-minute renewal (0 = off)",
    )
    # Voice roleplay (PRO): the Realtime model and voice the buyer persona speaks with, and how
    # long a browser's ephemeral key may be used to connect.
    realtime_model: str = Field(
        "gpt-realtime", alias="REALTIME_MODEL",
        description="the OpenAI Realtime model for voice roleplay (`createVoiceSession`, PRO "
        "plan)",
    )
    realtime_voice: str = Field(
        "coral", alias="REALTIME_VOICE",
        description="the voice the buyer persona speaks with",
    )
    realtime_key_ttl_seconds: int = Field(
        600, alias="REALTIME_KEY_TTL_SECONDS",
        description="how long a browser's ephemeral voice key may be used to connect",
    )

    # Auctions: closing/starting jobs run this often in every process; reserve protection
    # bids every 30 s (seed 004).
    auction_job_interval_seconds: float = Field(
        1.0, alias="AUCTION_JOB_INTERVAL_SECONDS",
        description="how often auctions are started, closed and their settlement deadlines "
        "enforced (0 = off)",
    )
    reserve_protection_interval_seconds: float = Field(
        30.0, alias="RESERVE_PROTECTION_INTERVAL_SECONDS",
        description="how often the platform places reserve-protection bids (0 = off)",
    )

    stripe_api_key: str | None = Field(
        None, alias="STRIPE_API_KEY", repr=False,
        description="wallet funding and plans; unset: `fundWallet` and `startPlanCheckout` answer "
        "`PROVIDER_NOT_CONFIGURED`",
    )
    stripe_webhook_secret: str | None = Field(
        None, alias="STRIPE_WEBHOOK_SECRET", repr=False,
        description="verifies `Stripe-Signature` on `POST /webhooks/stripe`",
    )
    stripe_api_base: str = Field(
        "https://api.stripe.com", alias="STRIPE_API_BASE",
        description="the Stripe API's base URL",
    )
    wallet_currency: str = Field(
        "ngn", alias="WALLET_CURRENCY",
        description="the currency of wallets and Stripe payments",
    )
    # Stripe Billing: the recurring Price of each paid plan (price_...). A plan without one
    # cannot be bought (startPlanCheckout answers PROVIDER_NOT_CONFIGURED), and subscription
    # events are mapped back to plans by these ids.
    stripe_price_basic: str | None = Field(
        None, alias="STRIPE_PRICE_BASIC",
        description="the recurring Stripe Price (`price_…`) of the BASIC plan; unset: BASIC "
        "cannot be bought",
    )
    stripe_price_pro: str | None = Field(
        None, alias="STRIPE_PRICE_PRO",
        description="the recurring Stripe Price (`price_…`) of the PRO plan; unset: PRO cannot be "
        "bought",
    )

    # Subscriptions: events a subscriber may fall behind by before it is dropped, and how long
    # a lost Redis connection may last before subscriptions end rather than wait.
    subscriber_mailbox_size: int = Field(
        1000, alias="SUBSCRIBER_MAILBOX_SIZE",
        description="events a subscriber may fall behind by before it is dropped "
        "(`SLOW_CONSUMER`)",
    )
    broadcast_outage_grace_seconds: float = Field(
        15.0, alias="BROADCAST_OUTAGE_GRACE_SECONDS",
        description="a Redis outage longer than this ends subscriptions (`EVENTS_UNAVAILABLE`)",
    )

    ws_keepalive_seconds: float = Field(
        8.0, alias="WS_KEEPALIVE_SECONDS",
        description="how often the server pings WebSocket clients",
    )
    # permessage-deflate for WebSockets (offered by browsers): compressing every frame for
    # every subscriber costs server CPU per delivery (see the README's delivery figures).
    ws_per_message_deflate: bool = Field(
        True, alias="WS_PER_MESSAGE_DEFLATE",
        description="WebSocket compression for clients that offer it (messages under 1 KiB are "
        "sent uncompressed)",
    )
    ws_connection_init_timeout_seconds: float = Field(
        10.0, alias="WS_INIT_TIMEOUT_SECONDS",
        description="how long a WebSocket may wait before sending `connection_init`",
    )
    cors_origins: list[str] = Field(
        default_factory=list, alias="CORS_ORIGINS",
        description="JSON list of browser origins allowed to call the API",
    )

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        for name in ("max_query_depth", "max_aliases", "max_tokens", "max_query_cost",
                     "max_query_length", "max_response_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        if not 1 <= self.default_page_size <= self.max_page_size:
            raise ValueError("DEFAULT_PAGE_SIZE must be between 1 and MAX_PAGE_SIZE")
        return self

    @property
    def is_development(self) -> bool:
        return self.environment in ("development", "test")

    def signing_secret(self) -> str:
        """The JWT secret: from JWT_SECRET, or in development a random one kept in the data dir.

        There is no built-in default secret, so none can leak: production refuses to start
        without a strong JWT_SECRET.
        """
        if self.jwt_secret:
            if not self.is_development and len(self.jwt_secret) < MIN_SECRET_LENGTH:
                raise ConfigurationError(
                    f"JWT_SECRET must be at least {MIN_SECRET_LENGTH} characters in production"
                )
            return self.jwt_secret
        if not self.is_development:
            raise ConfigurationError(
                "JWT_SECRET is not set: refusing to start in production with a default secret "
                "(set JWT_SECRET, or FORECOURT_ENV=development for a local server)"
            )
        path = self.data_dir / "jwt-secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            path.write_text(secrets.token_urlsafe(48))
            path.chmod(0o600)
        return path.read_text().strip()


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
