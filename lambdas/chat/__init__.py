"""The chat's domain code: what the Lambdas do, importable and testable without AWS.

The handlers in ``lambdas/*.py`` are thin: they build AWS clients from their environment and
call into this package. docs/protocol.md is the wire format, docs/data-model.md the tables.
"""
