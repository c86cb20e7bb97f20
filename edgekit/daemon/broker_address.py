"""Where a daemon's broker is and how it logs in: ``mqtt://HOST:PORT`` parsed, and the settings
a connection is built from (``edgekit.daemon.mqtt``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from edgekit.daemon.mqtt_protocol import MqttVersion
from edgekit.errors import ConfigError


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ConfigError(f"broker URL '{url}' must start with mqtt:// or mqtts://")
        if not parsed.hostname:
            raise ConfigError(f"broker URL '{url}' has no host", hint="use mqtt://HOST:PORT")
        tls = parsed.scheme in ("mqtts", "ssl")
        try:
            port = parsed.port or (8883 if tls else 1883)
        except ValueError as exc:
            raise ConfigError(f"broker URL '{url}' has an invalid port") from exc
        return cls(parsed.hostname, port, tls)


@dataclass(frozen=True)
class BrokerSettings:
    url: str = "mqtt://127.0.0.1:1883"
    client_id: str = ""
    username: str | None = None
    password: str | None = None
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    version: MqttVersion = MqttVersion.AUTO
    keepalive: int = 15

    @property
    def url_shown(self) -> str:
        """The URL as a log line may show it (it never carries a password)."""
        return self.url if "://" in self.url else f"mqtt://{self.url}"


def settings_from_config(config: Any) -> BrokerSettings:
    """The broker settings a DaemonConfig names (its password read from the file or environment)."""
    return BrokerSettings(
        url=config.broker,
        client_id=f"edgekit-{config.device_id}",
        username=config.username,
        password=config.password() if config.username else None,
        ca_file=config.ca_file,
        cert_file=config.cert_file,
        key_file=config.key_file,
        tls_insecure=config.tls_insecure,
        version=MqttVersion(config.mqtt_version),
    )
