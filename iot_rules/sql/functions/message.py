"""Functions that read the message being evaluated: client id, principal, topic, trace id,
timestamp, MQTT 5 properties, and the stack's account.
"""

from __future__ import annotations

import base64
import time
import uuid
from typing import Any

from ..types import (
    UNDEFINED,
    floor_int,
    from_python,
)
from .base import Env


def f_clientid(env: Env) -> Any:
    return env.msg.client_id


def f_principal(env: Env) -> Any:
    p = env.msg.principal
    return UNDEFINED if p is None else p


def f_topic(env: Env, n: Any = None) -> Any:
    topic = env.msg.topic
    if topic.startswith("$aws/rules/"):
        # Basic Ingest: the "$aws/rules/<rule-name>/" prefix is not part of topic()
        topic = topic.split("/", 3)[3] if topic.count("/") >= 3 else ""
    if n is None:
        return topic
    i = floor_int(n)
    if i is UNDEFINED or i < 1:
        return UNDEFINED
    levels = topic.split("/")
    return levels[i - 1] if i <= len(levels) else UNDEFINED


def f_traceid(env: Env) -> Any:
    t = env.msg.trace_id
    return UNDEFINED if t is None else t


def f_timestamp(env: Env) -> Any:
    if env.ts is None:
        env.ts = env.msg.timestamp_ms or int(time.time() * 1000)
    return env.ts


def f_newuuid(env: Env) -> Any:
    return str(uuid.uuid4())


def f_accountid(env: Env) -> Any:
    return env.ctx.account_id


def f_sourceip(env: Env) -> Any:
    ip = env.msg.source_ip
    return UNDEFINED if ip is None else ip


def _mqtt_property_value(v: Any) -> Any:
    if isinstance(v, bytes | bytearray):
        return base64.b64encode(bytes(v)).decode("ascii")
    return from_python(v)


def f_get_mqtt_property(env: Env, name: Any) -> Any:
    if type(name) is not str:
        return UNDEFINED
    props = env.msg.properties
    if name in props:
        return _mqtt_property_value(props[name])
    low = name.lower()
    for k, v in props.items():
        if str(k).lower() == low:
            return _mqtt_property_value(v)
    return UNDEFINED


def f_get_user_properties(env: Env, key: Any) -> Any:
    if type(key) is not str:
        return UNDEFINED
    values = [v for k, v in env.msg.user_properties if k == key]
    return values if values else UNDEFINED
