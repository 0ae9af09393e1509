"""The Lambda functions: thin handlers (``handlers``), the chat domain code they share
(``chat/``), the manifest of functions, tables, streams and event source mappings
(``manifest.json`` and its loader), and the function-name helpers (``arns``).

Imports nothing from ``infra/`` and nothing from ``iot_rules/``: the local Lambda runtime and the
CloudFormation template both read this folder. Only the manifest loader and ``arns`` use
``policies/`` (placeholders and the ARN reader); the handlers' own imports stay within
``lambdas/`` so the deployed zip holds nothing else.
"""
