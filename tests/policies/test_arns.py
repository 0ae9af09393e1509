"""The project's one ARN reader (policies/arns.py)."""

from __future__ import annotations

from policies.arns import arn_resource_name, lambda_function_name, parse_arn

# (service, resource type) -> text -> the name it gives (None: not that kind of ARN).
RESOURCE_NAMES: dict[tuple[str, str], dict[str, str | None]] = {
    ("lambda", "function"): {
        "arn:aws:lambda:us-east-1:000000000000:function:f": "f",
        "arn:aws:lambda:us-east-1:000000000000:function:f:live": "f",
        "arn:aws:lambda:{region}:{account}:function:{stack}-x": "{stack}-x",
        "arn:aws:s3:::bucket": None,
        "f": None,
    },
    ("iam", "role"): {
        "arn:aws:iam::{account}:role/{stack}-rule-kinesis": "{stack}-rule-kinesis",
        "arn:aws:iam::1:role/path/to/r": "r",
        "arn:aws:iam::1:user/u": None,
    },
}
# What Lambda's FunctionName accepts, and nothing else.
FUNCTION_NAMES = {
    "f": "f",
    "f:$LATEST": "f",
    "000000000000:function:f": "f",
    "arn:aws:lambda:us-east-1:000000000000:function:f:1": "f",
    "arn:aws:iam::000000000000:role/f": None,
    "bad name": None,
    "{stack}-x": None,
}


def test_parse_arn_keeps_placeholders() -> None:
    arn = parse_arn("arn:aws:lambda:{region}:{account}:function:{stack}-x")
    assert arn is not None
    assert (arn.service, arn.region, arn.resource) == ("lambda", "{region}", "function:{stack}-x")
    assert parse_arn("not-an-arn") is None


def test_arn_resource_name() -> None:
    for (service, kind), cases in RESOURCE_NAMES.items():
        got = {text: arn_resource_name(text, service, kind) for text in cases}
        assert got == cases, (service, kind)


def test_lambda_function_name_accepts_invokes_forms_only() -> None:
    assert {text: lambda_function_name(text) for text in FUNCTION_NAMES} == FUNCTION_NAMES
