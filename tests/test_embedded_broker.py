"""The embedded broker that `edgekit demo` and `edgekit broker` use when no Mosquitto runs."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from edgekit.daemon.embedded_broker import EmbeddedBroker
from tools.mqtt_brokers import free_port


def test_embedded_broker_carries_a_qos1_message() -> None:
    port = free_port()
    got: list[bytes] = []
    arrived = threading.Event()
    subscribed = threading.Event()
    with EmbeddedBroker("127.0.0.1", port):
        subscriber = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        subscriber.on_connect = lambda c, u, f, rc, p: c.subscribe("edgekit/x/results", qos=1)
        subscriber.on_subscribe = lambda *a: subscribed.set()
        subscriber.on_message = lambda c, u, m: (got.append(m.payload), arrived.set())
        subscriber.connect("127.0.0.1", port)
        subscriber.loop_start()
        assert subscribed.wait(10)
        publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
        publisher.connect("127.0.0.1", port)
        publisher.loop_start()
        publisher.publish("edgekit/x/results", b'{"seq": 0}', qos=1).wait_for_publish(10)
        assert arrived.wait(10)
        for client in (publisher, subscriber):
            client.disconnect()
            client.loop_stop()
    assert got == [b'{"seq": 0}']
