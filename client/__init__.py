"""The iotchat client library: what a user or a device ships.

The chat client (:mod:`client.chat_client`) with its transports (:mod:`client.transport`),
identities (:mod:`client.identity`), stack file (:mod:`client.stack_file`) and typed events
(:mod:`client.events`); the edge component (client/edge/), zipped from these very files for
Greengrass; the web client (client/web/) and what every server of it needs to know
(:mod:`client.webapp`). It connects to a stack, local or on AWS, from its stack file alone,
so it imports neither infra nor benchmarks: only the standard library, boto3 and awsiotsdk.
"""
