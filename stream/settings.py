"""One frozen settings object, read from ``SURVEY_ALERTS_*`` environment variables."""

from __future__ import annotations

import difflib
import json
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from alerts.deadletters import MAX_TOPIC_LENGTH, topic_problem
from alerts.feedback import TrendPolicy
from alerts.followup import FollowUpPolicy
from alerts.policy import AlertPolicy
from alerts.routing import DEFAULT_RULES, MAX_QUEUE_LENGTH, Router, RulesError, RuleSet, load_rules
from alerts.windows import WindowSpec, parse_windows
from stream.errors import ConfigurationError

# SURVEY_ALERTS_* variables that are not settings on purpose: the test and bench helpers' own, and
# secrets the demo's rules file names
NOT_SETTINGS = (
    "SURVEY_ALERTS_TEST_",
    "SURVEY_ALERTS_DEMO_",
    "SURVEY_ALERTS_CACHE",
    "SURVEY_ALERTS_KAFKA_VERSION",
    "SURVEY_ALERTS_ARTIFACTS",
)


class Settings(BaseSettings):
    """Every knob of the service. Each field maps to ``SURVEY_ALERTS_<NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix="SURVEY_ALERTS_", frozen=True, extra="ignore", env_parse_none_str="none"
    )

    broker: str = Field(
        "kafka://127.0.0.1:9092",
        description="Kafka bootstrap servers as a Faust URL; ';' separates several.",
    )
    app_id: str = Field("survey-alerts", description="Consumer group and prefix of internal topics.")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] | None = Field(
        None,
        description="How every Kafka client connects (default: PLAINTEXT, or SASL_PLAINTEXT with a user).",
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "SCRAM-SHA-512", description="SASL mechanism (PLAIN only over TLS unless explicitly allowed)."
    )
    sasl_username: str | None = Field(None, description="SASL user name, if the broker needs one.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (never printed).")
    ssl_cafile: Path | None = Field(None, description="CA certificates (PEM) to trust for the broker's TLS.")
    ssl_certfile: Path | None = Field(None, description="Client certificate (PEM), for mutual TLS.")
    ssl_keyfile: Path | None = Field(None, description="Client private key (PEM), for mutual TLS.")
    ssl_key_password: SecretStr | None = Field(
        None, description="Password of the client key (never printed)."
    )
    ssl_check_hostname: bool = Field(True, description="Check that the broker's certificate names its host.")
    allow_plaintext_sasl: bool = Field(
        False, description="Allow SASL PLAIN without TLS (it sends the password in clear)."
    )

    survey_responses_topic: str = Field("survey-responses", description="Input: survey responses.")
    ticket_events_topic: str = Field("ticket-events", description="Input: ticket lifecycle events.")
    followup_actions_topic: str = Field("followup-actions", description="Input: follow-up actions.")
    customer_profiles_topic: str = Field(
        "customer-profiles", description="Input (optional, compacted): customer profiles from a CRM."
    )
    recovery_alerts_topic: str = Field("recovery-alerts", description="Output: recovery alerts.")
    feedback_windows_topic: str = Field("feedback-windows", description="Output: score snapshots.")
    followup_events_topic: str = Field(
        "followup-events", description="Output: follow-up state changes, keyed by alert id."
    )
    escalations_prefix: str = Field("escalations.", description="Output: prefix of per-queue topics.")
    dlq_topic: str = Field("feedback-dlq", description="Output: dead letters.")
    max_message_bytes: int = Field(
        1_000_000,
        ge=65_536,
        description="Largest record the service produces (at most the broker's and topics' "
        "max.message.bytes); larger outputs become dead letters.",
    )
    partitions: int = Field(4, ge=1, description="Partitions of every topic the service creates.")
    replication_factor: int = Field(1, ge=1, description="Replication of every topic it creates.")

    web_host: str = Field("127.0.0.1", description="Bind address of the worker's HTTP server (/metrics).")
    web_port: int = Field(6066, ge=0, le=65535, description="Port of the worker's HTTP server.")
    data_dir: Path = Field(Path(".survey-alerts-data"), description="Faust's local data directory.")
    log_level: Literal["debug", "info", "warn", "warning", "error"] = Field(
        "info", description="Log level of every process: debug, info, warn, error."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="text (one line per record) or json (one JSON object per line, for log shippers)."
    )
    commit_interval_s: float = Field(1.0, gt=0, description="Seconds between offset commits.")
    session_timeout_s: float = Field(30.0, gt=1, description="Kafka consumer group session timeout.")
    rebalance_timeout_s: float = Field(30.0, gt=1, description="Most a rebalance may wait for members.")
    max_poll_records: int = Field(2000, ge=1, description="Most records handed to one batch.")
    connect_timeout_s: float = Field(
        6.0,
        gt=0,
        description="How long a process waits for the broker at start before it says it cannot reach it.",
    )
    producer_request_timeout_s: float = Field(
        30.0, gt=0, description="How long a produce request may wait for the broker before it is retried."
    )
    broker_deadline_s: float = Field(
        120.0,
        gt=0,
        description="Longest any flush, send, commit or topic creation may wait for the broker; past it the"
        " process logs an ERROR and exits for its supervisor to restart it.",
    )
    shutdown_timeout_s: float = Field(
        45.0, gt=0, description="Longest a graceful stop (SIGTERM) may take before the process exits anyway."
    )
    stall_s: float = Field(
        60.0, gt=0, description="Input waiting and no offset committed for this long: the process is stalled."
    )
    stall_restart_s: float = Field(
        180.0, gt=0, description="Stalled for this long, the process exits non-zero for a restart."
    )

    windows: str = Field("1h,24h,7d", description="Rolling window sizes (s, m, h, d, w units).")
    window_buckets: int = Field(24, ge=1, le=1440, description="Buckets per window (its time resolution).")
    late_grace_s: float = Field(900.0, ge=0, description="How late an event may be and still count.")
    snapshot_interval_s: float = Field(10.0, gt=0, description="Seconds between feedback-windows snapshots.")
    min_responses: int = Field(10, ge=1, description="Below this n a value is marked insufficient.")
    gauge_dimensions: frozenset[str] = Field(
        frozenset({"overall", "team", "channel", "category"}),
        description="Dimensions exported as Prometheus gauges (JSON list); all go to feedback-windows.",
    )
    max_keys_per_dimension: int = Field(200, ge=1, description="Most keys per dimension exported as gauges.")
    trend_dimensions: frozenset[str] = Field(
        frozenset({"team"}), description="Dimensions watched for trend drops (JSON list)."
    )
    trend_short_window: str = Field("24h", description="Recent window compared with its baseline.")
    trend_long_window: str = Field("7d", description="Baseline window (the recent part excluded).")
    trend_min_responses: int = Field(30, ge=2, description="Least n in both windows for a trend alert.")
    trend_alpha: float = Field(0.01, gt=0, lt=0.5, description="One-sided significance level of a drop.")
    ops_alerts_topic: str = Field("ops-alerts", description="Output: trend_drop alerts for ops.")
    nps_alert_max: int = Field(6, ge=0, le=10, description="NPS at or below this is a detractor.")
    ces_alert_max: int = Field(2, ge=1, le=7, description="CES at or below this is high effort.")
    csat_alert_max: int | None = Field(
        2, ge=1, le=5, description="CSAT at or below this alerts ('none': never)."
    )
    stars_alert_max: int | None = Field(
        2, ge=1, le=5, description="Stars at or below this alert ('none': never)."
    )
    key_tiers: frozenset[str] = Field(
        frozenset({"gold", "platinum"}), description="Tiers whose alerts are always critical (JSON list)."
    )
    key_account_value: float = Field(
        50_000.0, ge=0, description="Account value from which alerts are critical."
    )
    sla_critical_minutes: float = Field(240, gt=0, description="Follow-up due time of critical alerts.")
    sla_warning_minutes: float = Field(1440, gt=0, description="Follow-up due time of warning alerts.")
    sla_info_minutes: float = Field(4320, gt=0, description="Follow-up due time of info alerts.")
    sla_tier_factors: dict[str, float] = Field(
        {"platinum": 0.5, "gold": 0.75}, description="Due time multiplier per customer tier (JSON object)."
    )
    routing_rules: Path | None = Field(
        None, description="TOML or YAML routing rules (default: queue per team)."
    )
    ticket_wait_s: float = Field(
        5.0, ge=0, description="How long a survey naming an unseen ticket waits for the ticket's events."
    )
    alert_cooldown_s: float = Field(
        86_400.0, ge=0, description="At most one alert per customer and kind in this much event time."
    )
    escalate_tiers: frozenset[str] = Field(
        frozenset({"gold", "platinum"}), description="Tiers whose alerts also become escalations (JSON list)."
    )
    escalate_account_value: float = Field(
        50_000.0, ge=0, description="Account value from which alerts also become escalations."
    )
    lead_queue: str = Field(
        "{queue}-lead", description="Queue of overdue follow-ups; {queue}, {team} allowed."
    )
    followup_check_interval_s: float = Field(5.0, gt=0, description="Seconds between follow-up SLA checks.")
    renotify_interval_s: float = Field(
        3600.0, gt=0, description="Least time between overdue re-notifications."
    )
    max_renotify: int = Field(3, ge=1, description="Most overdue notifications per alert.")
    concession_currency: str = Field(
        "USD",
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency of the playbook's concession caps: a concession in it is checked "
        "against the cap; one in another currency needs a note and is reported apart.",
    )

    targets: dict[str, float] = Field(
        {
            "nps": 30.0,
            "csat": 80.0,
            "ces": 5.0,
            "speed_of_answer_seconds": 60.0,
            "reply_seconds": 3600.0,
            "time_to_contact_seconds": 14_400.0,
            "close_ratio": 0.8,
        },
        description="Goals per metric (JSON object): alert rules, dashboards and the digest use them.",
    )
    digest_thresholds: dict[str, float] = Field(
        {},
        description="When the digest raises an ask (JSON object of alerts.digest.Thresholds' fields).",
    )
    notify_in_worker: bool = Field(False, description="Run the notifier inside the worker process.")
    notifier_group: str | None = Field(
        None, description="The notifier's consumer group (default <app>-notifier)."
    )
    notifier_web_host: str = Field(
        "127.0.0.1", description="Bind address of the notifier's /metrics and /health."
    )
    notifier_web_port: int = Field(6067, ge=0, le=65535, description="Port of the notifier's HTTP server.")
    inbox_url: str | None = Field(None, description="Base URL of the inbox, for links in notifications.")
    email_domain: str = Field("survey-alerts.local", description="Domain of the e-mail Message-IDs.")
    notification_deliveries_topic: str = Field(
        "notification-deliveries", description="Output: one record per delivery attempt."
    )
    notification_dlq_topic: str = Field(
        "notification-dlq", description="Output: notifications that could not be delivered, with the answer."
    )
    notify_max_attempts: int = Field(12, ge=1, description="Most attempts of one delivery.")
    notify_max_age_s: float = Field(
        86_400.0, gt=0, description="Oldest a document may be to be delivered (and to be retried)."
    )
    notify_backoff_base_s: float = Field(
        1.0, gt=0, description="First retry delay ceiling (doubles per attempt)."
    )
    notify_backoff_max_s: float = Field(600.0, gt=0, description="Longest retry delay (before jitter).")

    inbox_db: str = Field(
        "survey-alerts-inbox.db",
        description="The inbox's read model: a SQLite file, or postgresql://user:password@host/db.",
    )
    crm_customer_url: str | None = Field(
        None,
        description="Link to a customer in the CRM, with {customer_id} (a profile's own crm_url wins).",
    )
    inbox_host: str = Field("127.0.0.1", description="Bind address of the inbox's web page and API.")
    inbox_port: int = Field(6068, ge=0, le=65535, description="Port of the inbox's web page and API.")
    inbox_users: Path | None = Field(
        None, description="The inbox's users file (TOML or YAML; argon2 hashes)."
    )
    inbox_trusted_header: str | None = Field(
        None,
        description="Header naming the user when a trusted proxy does the login (e.g. X-Forwarded-User).",
    )
    inbox_trusted_proxies: frozenset[str] = Field(
        frozenset({"127.0.0.1", "::1"}), description="Addresses whose trusted header is believed (JSON list)."
    )
    inbox_secure_cookies: bool = Field(
        False, description="Mark the inbox's cookies Secure (serve it over HTTPS)."
    )
    inbox_group: str | None = Field(None, description="The inbox's consumer group (default <app>-inbox).")
    root_causes: list[str] = Field(
        [
            "billing error",
            "late delivery",
            "product defect",
            "agent knowledge",
            "agent behaviour",
            "process or policy",
            "customer misunderstanding",
        ],
        description="Root causes offered when resolving in the inbox (JSON list; free text is allowed too).",
    )

    @field_validator("broker")
    @classmethod
    def _broker_url(cls, value: str) -> str:
        for url in value.split(";"):
            if "://" not in url:
                raise ValueError(f"broker {url!r} needs a scheme, e.g. kafka://127.0.0.1:9092")
        return value

    @model_validator(mode="after")
    def _security(self) -> Settings:
        protocol = self.kafka_protocol
        if protocol.startswith("SASL") and (self.sasl_username is None or self.sasl_password is None):
            raise ValueError(
                f"SURVEY_ALERTS_SECURITY_PROTOCOL={protocol} needs SURVEY_ALERTS_SASL_USERNAME and "
                "SURVEY_ALERTS_SASL_PASSWORD"
            )
        if protocol == "SASL_PLAINTEXT" and self.sasl_mechanism == "PLAIN" and not self.allow_plaintext_sasl:
            raise ValueError(
                "SASL PLAIN over SASL_PLAINTEXT sends the password in clear: use "
                "SURVEY_ALERTS_SECURITY_PROTOCOL=SASL_SSL, or SURVEY_ALERTS_SASL_MECHANISM=SCRAM-SHA-512, "
                "or set SURVEY_ALERTS_ALLOW_PLAINTEXT_SASL=true if the network is private"
            )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise ValueError("mutual TLS needs both SURVEY_ALERTS_SSL_CERTFILE and SURVEY_ALERTS_SSL_KEYFILE")
        return self

    @model_validator(mode="after")
    def _bounds(self) -> Settings:
        # a deadline is a last resort: it must leave the client's own timeouts room to work
        floor = max(self.producer_request_timeout_s, self.session_timeout_s, self.rebalance_timeout_s)
        if self.broker_deadline_s <= floor:
            raise ValueError(
                f"SURVEY_ALERTS_BROKER_DEADLINE_S ({self.broker_deadline_s:g}) must exceed the Kafka clients'"
                f" own timeouts (request, session and rebalance: {floor:g} s)"
            )
        if self.stall_restart_s < self.stall_s:
            raise ValueError("SURVEY_ALERTS_STALL_RESTART_S must be at least SURVEY_ALERTS_STALL_S")
        return self

    @property
    def kafka_protocol(self) -> str:
        """The security protocol in force."""
        if self.security_protocol is not None:
            return self.security_protocol
        return "SASL_PLAINTEXT" if self.sasl_username is not None else "PLAINTEXT"

    @field_validator("crm_customer_url")
    @classmethod
    def _crm_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("https://", "http://")) or "{customer_id}" not in value:
            raise ValueError("must be an http(s) URL with {customer_id} where the customer's id goes")
        return value

    @field_validator("escalations_prefix")
    @classmethod
    def _escalations_prefix(cls, value: str) -> str:
        longest = value + "q" * MAX_QUEUE_LENGTH  # queue names are bounded (alerts.routing.queue_token)
        problem = topic_problem(longest) if value else "the prefix is empty"
        if problem is not None:
            raise ValueError(
                f"escalations prefix {value!r} cannot start a topic name with a {MAX_QUEUE_LENGTH}-character "
                f"queue: {problem} (use at most {MAX_TOPIC_LENGTH - MAX_QUEUE_LENGTH} letters, digits, "
                "'.', '_' or '-')"
            )
        return value

    @classmethod
    def load(cls) -> Settings:
        """The settings from the environment; what is wrong is said without quoting any value (secrets)."""
        try:
            return cls()
        except SettingsError as exc:
            # pydantic-settings could not decode a list or object setting: it is JSON
            found = re.search(r'field "(\w+)"', str(exc))
            where = f"SURVEY_ALERTS_{found.group(1).upper()}" if found else "a list or object setting"
            raise ConfigurationError(
                f'{where}: not valid JSON (a list is written ["gold","platinum"], an object {{"gold": 0.75}})'
            ) from None
        except ValidationError as exc:
            problems = []
            for e in exc.errors(include_url=False, include_input=False, include_context=False):
                where = (
                    "SURVEY_ALERTS_" + ".".join(str(x) for x in e["loc"]).upper() if e["loc"] else "settings"
                )
                problems.append(f"{where}: {e['msg'].removeprefix('Value error, ')}")
            raise ConfigurationError("; ".join(problems)) from None

    @classmethod
    def unknown_variables(cls, environ: Mapping[str, str]) -> list[str]:
        """A warning for each ``SURVEY_ALERTS_*`` variable that is no setting, naming the closest one.

        A misspelt variable is otherwise silently ignored, and its setting keeps its default.
        """
        known = {f"SURVEY_ALERTS_{name.upper()}" for name in cls.model_fields}
        warnings = []
        for name in sorted(environ):
            if not name.startswith("SURVEY_ALERTS_") or name in known:
                continue
            if name.startswith(NOT_SETTINGS):
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]}?)" if close else ""
            warnings.append(f"{name} is not a setting and is ignored{hint}")
        return warnings

    @classmethod
    def topic_environ(cls, prefix: str) -> dict[str, str]:
        """Environment variables that give every topic of a worker the name prefix ``prefix``."""
        env = {
            f"SURVEY_ALERTS_{name.upper()}": f"{prefix}.{name[: -len('_topic')]}"
            for name in cls.model_fields
            if name.endswith("_topic")
        }
        env["SURVEY_ALERTS_ESCALATIONS_PREFIX"] = f"{prefix}.esc."
        return env

    @classmethod
    def from_environ(cls, env: Mapping[str, str]) -> Settings:
        """The settings a worker started with environment ``env`` would read."""
        env = dict(env)  # a copy: ``env`` may be os.environ itself, cleared below
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        try:
            return cls()
        finally:
            os.environ.clear()
            os.environ.update(saved)

    @property
    def bootstrap_servers(self) -> list[str]:
        """``host:port`` list for plain Kafka clients."""
        return [url.split("://", 1)[1].rstrip("/") for url in self.broker.split(";")]

    @property
    def followups_topic(self) -> str:
        """Internal topic carrying alerts and actions to the follow-up stage, keyed by alert id."""
        return f"{self.app_id}-followups"

    @property
    def notifier_group_id(self) -> str:
        """The notifier's consumer group."""
        return self.notifier_group or f"{self.app_id}-notifier"

    @property
    def inbox_group_id(self) -> str:
        """The inbox's consumer group."""
        return self.inbox_group or f"{self.app_id}-inbox"

    @property
    def notifier_state_topic(self) -> str:
        """Internal compacted topic of the notifier's pending and finished deliveries."""
        return f"{self.app_id}-notifier-state"

    @property
    def partials_topic(self) -> str:
        """Internal topic carrying each partition's window buckets to the merge stage."""
        return f"{self.app_id}-window-partials"

    @property
    def rekey_topic(self) -> str:
        """Internal topic where records that arrived on the wrong partition are re-keyed."""
        return f"{self.app_id}-rekey"

    def policy(self) -> AlertPolicy:
        """The alert policy these settings describe."""
        return AlertPolicy(
            nps_max=self.nps_alert_max,
            ces_max=self.ces_alert_max,
            csat_max=self.csat_alert_max,
            stars_max=self.stars_alert_max,
            key_tiers=self.key_tiers,
            key_account_value=self.key_account_value,
            sla={
                "critical": timedelta(minutes=self.sla_critical_minutes),
                "warning": timedelta(minutes=self.sla_warning_minutes),
                "info": timedelta(minutes=self.sla_info_minutes),
            },
            tier_factors=self.sla_tier_factors,
            cooldown_s=self.alert_cooldown_s,
            escalate_tiers=self.escalate_tiers,
            escalate_account_value=self.escalate_account_value,
        )

    def followup_policy(self) -> FollowUpPolicy:
        """The follow-up SLA these settings describe (the worker's timer and replay's virtual one)."""
        return FollowUpPolicy(
            renotify_s=self.renotify_interval_s,
            max_notices=self.max_renotify,
            lead_queue=self.lead_queue,
            sla_s={
                "critical": self.sla_critical_minutes * 60,
                "warning": self.sla_warning_minutes * 60,
                "info": self.sla_info_minutes * 60,
            },
            tier_factors=self.sla_tier_factors,
            currency=self.concession_currency,
        )

    def rules(self) -> RuleSet:
        """The rules file: routing, playbook, notifications (checked: errors name file, rule and field)."""
        if self.routing_rules is None:
            return DEFAULT_RULES
        try:
            return load_rules(self.routing_rules)
        except RulesError as exc:
            raise ConfigurationError(str(exc)) from None

    def router(self) -> Router:
        """The routing rules (checked: a bad file fails here, naming file, rule and field)."""
        return Router(self.rules())

    def window_specs(self) -> list[WindowSpec]:
        """The rolling windows these settings describe."""
        return parse_windows(self.windows, self.window_buckets)

    def trend_policy(self) -> TrendPolicy:
        """When a team's recent scores count as a significant drop."""
        return TrendPolicy(
            self.trend_short_window, self.trend_long_window, self.trend_min_responses, self.trend_alpha
        )

    @field_validator("windows")
    @classmethod
    def _windows(cls, value: str) -> str:
        parse_windows(value)
        return value

    def describe(self) -> list[tuple[str, str, str]]:
        """(environment variable, value, description) rows; secrets are masked."""
        rows = []
        for name, info in type(self).model_fields.items():
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                shown = "**********"
            elif isinstance(value, frozenset):
                shown = json.dumps(sorted(value))
            elif isinstance(value, list):
                shown = json.dumps(value)
            elif isinstance(value, dict):
                shown = json.dumps(value, sort_keys=True)
            elif isinstance(value, Path):
                shown = str(value)
            elif name == "inbox_db" and "@" in value:  # a password may sit before the host
                shown = value.split("://", 1)[0] + "://**********@" + value.rsplit("@", 1)[1]
            else:
                shown = repr(value)
            rows.append((f"SURVEY_ALERTS_{name.upper()}", shown, info.description or ""))
        return rows
