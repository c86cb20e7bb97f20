"""The daemon's configuration: one YAML file validated by pydantic; flags override it."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from edgekit.errors import ConfigError, InputNotFoundError

RESERVED_DEVICE_IDS = ("artifacts", "rollouts")


def _default_device_id() -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", socket.gethostname()) or "edge"


class DaemonConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Path = Field(..., description="the artifact to run (.tflite, .onnx, .xml) with its manifest beside it")
    source: str = Field("0", description="camera index, /dev/videoN, video file, folder of images, or RTSP/HTTP URL")
    loop: bool = Field(False, description="restart a video file or folder when it ends")
    max_fps: float | None = Field(
        None, gt=0, description="read the source no faster than this (files play as fast as possible otherwise)"
    )
    max_frames: int | None = Field(None, ge=1, description="stop after this many results (for trials)")
    stall_timeout: float = Field(5.0, gt=0, description="seconds without a frame before the source is reopened")
    broker: str = Field("mqtt://127.0.0.1:1883", description="mqtt://HOST:PORT or mqtts://HOST:PORT")
    device_id: str = Field(
        default_factory=_default_device_id, pattern=r"^[A-Za-z0-9_-]+$", description="topic prefix edgekit/<device_id>/"
    )
    qos: Literal[0, 1, 2] = Field(1, description="QoS of results")
    mqtt_version: Literal["auto", "5", "3.1.1"] = Field(
        "auto", description="MQTT protocol version; auto speaks 5 and falls back to 3.1.1 for brokers without it"
    )
    require_broker: bool = Field(
        False, description="stop with an error when the first connection to the broker fails, instead of buffering"
    )
    username: str | None = Field(None, description="broker user name")
    password_env: str = Field("EDGEKIT_MQTT_PASSWORD", description="environment variable holding the password")
    password_file: Path | None = Field(None, description="file holding the password (first line)")
    ca_file: Path | None = Field(None, description="CA certificate for TLS")
    cert_file: Path | None = Field(None, description="client certificate for TLS")
    key_file: Path | None = Field(None, description="client key for TLS")
    tls_insecure: bool = Field(False, description="skip the broker host name check (testing only)")
    buffer: Path | None = Field(None, description="on-disk outbox (default ~/.cache/edgekit/outbox-<device_id>.sqlite)")
    buffer_max: int = Field(100_000, ge=1, description="messages the outbox holds before dropping the oldest")
    buffer_max_mb: float | None = Field(
        None, gt=0, description="megabytes of messages the outbox holds before dropping the oldest (default: no cap)"
    )
    stats_interval: float = Field(5.0, gt=0, description="seconds between stats messages")
    threshold: float = Field(0.3, ge=0, le=1, description="score threshold for predictions")
    top_k: int = Field(3, ge=1, description="classes reported per frame by classifiers")
    runtime: str | None = Field(None, description="runtime to use (default: by the model's file type)")
    threads: int | None = Field(None, ge=1, description="inference threads")
    inference: Literal["in-process", "process"] = Field(
        "in-process",
        description="where the model runs: the daemon's own process, or one of its own (a runtime that crashes "
        "then ends with one line naming it; its loop never waits on the daemon's other threads, though on two "
        "cores it delivered less, see benchmarks/RESULTS.md)",
    )
    metrics_port: int | None = Field(None, ge=1, le=65535, description="serve Prometheus metrics on this port")
    metrics_host: str = Field(
        "127.0.0.1", description="address the metrics endpoint listens on; 0.0.0.0 exposes it on every interface"
    )
    homeassistant: bool = Field(
        False, description="publish Home Assistant MQTT discovery configs (fps, latency, backlog, last result)"
    )
    homeassistant_prefix: str = Field(
        "homeassistant", pattern=r"^[A-Za-z0-9_/-]+$", description="Home Assistant's discovery prefix"
    )
    trust_key: list[Path] = Field(
        default_factory=list,
        description="public keys (edgekit fleet keygen's .pub) whose signed deployments this device accepts; "
        "none: it accepts no deployment",
    )
    deploy_max_mb: float = Field(512.0, gt=0, description="the largest deployment bundle this device takes, in MB")
    drain_seconds: float = Field(
        2.0, ge=0, description="on shutdown, how long to wait for the broker to take buffered results"
    )

    @field_validator("device_id")
    @classmethod
    def _device_id_is_not_reserved(cls, value: str) -> str:
        # edgekit/artifacts/ and edgekit/rollouts/ carry deployments, not a device's topics.
        if value in RESERVED_DEVICE_IDS:
            raise ValueError(f"{value!r} is reserved for deployments; choose another device id")
        return value

    @field_validator("broker")
    @classmethod
    def _broker_url_parses(cls, value: str) -> str:
        # Checked with the rest of the config, before a model is loaded or a camera opened.
        from edgekit.daemon.broker_address import BrokerAddress

        try:
            BrokerAddress.parse(value)
        except ConfigError as exc:
            raise ValueError(exc.one_line()) from None
        return value

    @property
    def buffer_max_bytes(self) -> int | None:
        return None if self.buffer_max_mb is None else max(1, round(self.buffer_max_mb * 1024 * 1024))

    @property
    def deploy_max_bytes(self) -> int:
        return round(self.deploy_max_mb * 1e6)

    def deployments_path(self) -> Path:
        """Where deployed models are kept (beside the outbox)."""
        return self.outbox_path().parent / f"deployments-{self.device_id}"

    def outbox_path(self) -> Path:
        return self.buffer or Path.home() / ".cache" / "edgekit" / f"outbox-{self.device_id}.sqlite"

    def password(self) -> str | None:
        """From the file if given, else the environment; never from the command line."""
        if self.password_file is not None:
            try:
                return self.password_file.read_text().splitlines()[0]
            except (OSError, IndexError) as exc:
                raise ConfigError(f"cannot read the password from {self.password_file}") from exc
        return os.environ.get(self.password_env) or None


def _describe(error: Any) -> str:
    key = ".".join(str(p) for p in error["loc"]) or "(top level)"
    if error["type"] == "extra_forbidden":
        import difflib

        close = difflib.get_close_matches(str(error["loc"][-1]), list(DaemonConfig.model_fields), n=1, cutoff=0.6)
        return f"{key}: unknown setting" + (f" (did you mean '{close[0]}'?)" if close else "")
    value = error.get("input")
    shown = "" if isinstance(value, dict) else f" (got {value!r})"
    message = error["msg"].removeprefix("Value error, ")  # pydantic's prefix for a validator's own message
    return f"{key}: {message}{shown}"


def _format(exc: ValidationError, origin: str) -> str:
    """Every problem at once, each with its key: fixing a config one error per run is slow."""
    problems = [_describe(error) for error in exc.errors()]
    return f"{origin}: " + "; ".join(problems)


def load_config(path: Path | None, overrides: dict[str, Any]) -> DaemonConfig:
    """The YAML file (if any) with the flags that were given laid over it."""
    data: dict[str, Any] = {}
    origin = "flags"
    if path is not None:
        if not path.exists():
            raise InputNotFoundError(f"config {path} does not exist")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path} must be a mapping of settings")
        data.update({k.replace("-", "_"): v for k, v in loaded.items()})
        origin = str(path)
    data.update({k: v for k, v in overrides.items() if v is not None})
    if "model" not in data:
        raise ConfigError("no model given", hint="pass --model or set `model:` in the config file")
    try:
        return DaemonConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format(exc, origin)) from exc
