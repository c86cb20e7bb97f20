"""Home Assistant's MQTT discovery for a daemon (``edgekit run --homeassistant``).

Home Assistant builds an entity from a retained config on
``<prefix>/sensor/<device id>/<sensor>/config`` (prefix ``homeassistant`` by default; the device
id is the node id, so a broker ACL can give each device ``<prefix>/sensor/%u/#``), so a fleet
shows up there without hand-written YAML: one device per daemon, with its results rate, latency
p50 and p99, the outbox's backlog, and its last result (the top prediction's label as the state,
the whole result as attributes). They read the topics the daemon already publishes, and are
available while its retained ``status`` says ``online``.
"""

from __future__ import annotations

import json
from typing import Any

from edgekit import __version__

# key → (name, state topic under edgekit/<id>/, value template, unit, state class)
SENSORS: dict[str, tuple[str, str, str, str | None, str | None]] = {
    "fps": ("Results per second", "stats", "{{ value_json.inference_fps }}", "fps", "measurement"),
    "latency_p50": ("Latency p50", "stats", "{{ value_json.latency_p50_ms }}", "ms", "measurement"),
    "latency_p99": ("Latency p99", "stats", "{{ value_json.latency_p99_ms }}", "ms", "measurement"),
    "buffered": ("Results waiting for the broker", "stats", "{{ value_json.buffered }}", None, "measurement"),
    "last_result": (
        "Last result",
        "results",
        "{{ value_json.predictions[0].label if value_json.predictions and value_json.predictions[0].label is defined "
        "else value_json.predictions | count }}",
        None,
        None,
    ),
}


def discovery_configs(device_id: str, model_name: str, prefix: str = "homeassistant") -> dict[str, dict[str, Any]]:
    """Topic → config for every sensor of ``device_id``."""
    base = f"edgekit/{device_id}"
    device = {
        "identifiers": [f"edgekit_{device_id}"],
        "name": f"edgekit {device_id}",
        "manufacturer": "edgekit",
        "model": model_name,
        "sw_version": __version__,
    }
    configs = {}
    for key, (name, topic, template, unit, state_class) in SENSORS.items():
        config: dict[str, Any] = {
            "name": name,
            "unique_id": f"edgekit_{device_id}_{key}",
            "object_id": f"edgekit_{device_id}_{key}",
            "state_topic": f"{base}/{topic}",
            "value_template": template,
            "availability_topic": f"{base}/status",
            "payload_available": "online",
            "payload_not_available": "offline",
            "device": device,
        }
        if unit is not None:
            config["unit_of_measurement"] = unit
        if state_class is not None:
            config["state_class"] = state_class
        if key == "last_result":
            config["json_attributes_topic"] = f"{base}/results"
        configs[f"{prefix}/sensor/{device_id}/{key}/config"] = config
    return configs


def publish_discovery(link: Any, device_id: str, model_name: str, prefix: str) -> None:
    """Retained on the daemon's link, so a broker restart or a new Home Assistant gets them again."""
    for topic, config in discovery_configs(device_id, model_name, prefix).items():
        link.publish_retained(topic, json.dumps(config).encode(), absolute=True)
