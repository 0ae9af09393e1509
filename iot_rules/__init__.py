"""The chat's topic rules as data, and the tools that read them.

``rules/*.json`` holds each rule as the ``TopicRulePayload`` ``iot.create_topic_rule`` takes;
``loader`` validates and renders them and walks the resources their actions name (one table of
action types for the checker, the template and the local engine); ``check`` is ``iotchat rules
check`` and ``eval``; ``topics`` validates and matches MQTT topics and filters; ``sql/`` is the
IoT SQL interpreter (grammar, compiler, value semantics, built-in functions).

Imports nothing from ``infra/`` (local or AWS) and nothing from ``lambdas/``: the local stack
and the CloudFormation template both read this folder, never the other way round. From the
other definition folders it uses only ``policies/`` (placeholders and ARNs).
"""
