"""ARNs of the resources AWS IoT authorises, built one way for the evaluator and its callers."""

from __future__ import annotations


def _iot_arn(region: str, account: str, kind: str, name: str) -> str:
    return f"arn:aws:iot:{region}:{account}:{kind}/{name}"


def client_arn(region: str, account: str, client_id: str) -> str:
    """Resource of ``iot:Connect``."""
    return _iot_arn(region, account, "client", client_id)


def topic_arn(region: str, account: str, topic: str) -> str:
    """Resource of ``iot:Publish``, ``iot:Receive`` and ``iot:RetainPublish``."""
    return _iot_arn(region, account, "topic", topic)


def topicfilter_arn(region: str, account: str, topic_filter: str) -> str:
    """Resource of ``iot:Subscribe``: the filter as written, ``+`` and ``#`` included."""
    return _iot_arn(region, account, "topicfilter", topic_filter)
