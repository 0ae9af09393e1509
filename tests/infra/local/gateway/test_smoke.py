"""The simplest end-to-end check: the admin publishes and subscribes over plain TCP."""

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.waiting import wait_for


def test_admin_roundtrip_over_tcp(gateway):
    got = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="smoke", protocol=mqtt.MQTTv5)
    client.username_pw_set("test", "test")
    client.on_message = lambda c, u, m: got.append(m.payload)
    client.connect(gateway.host, gateway.mqtt_port)
    client.loop_start()
    try:
        wait_for(client.is_connected)
        client.subscribe("smoke/t", qos=1)
        wait_for(lambda: any(e.topic.endswith("/subscribed/smoke") for e in gateway.tapped))
        client.publish("smoke/t", b"hi", qos=1)
        wait_for(lambda: got == [b"hi"])
    finally:
        client.disconnect()
        client.loop_stop()
