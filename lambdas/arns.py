"""Function names and ARNs: the forms Lambda's Invoke accepts for ``FunctionName``."""

from __future__ import annotations

import re

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"

# name | account:function:name | arn:aws:lambda:region:account:function:name, each with an
# optional :qualifier ($LATEST, a version or an alias; all run the one local version).
_FORMS = re.compile(
    r"^(?:arn:aws[a-zA-Z-]*:lambda:[a-z0-9-]+:)?(?:\d{12}:function:)?"
    r"(?P<name>[A-Za-z0-9_-]{1,64})(?::(?P<qualifier>\$LATEST|[A-Za-z0-9_-]{1,128}))?$"
)


def function_arn(name: str, region: str = REGION, account_id: str = ACCOUNT_ID) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{name}"


def function_name(name_or_arn: str) -> str | None:
    """The bare function name in any accepted form, or None if the string is no such form."""
    if name_or_arn.startswith("arn:") and ":function:" not in name_or_arn:
        return None
    match = _FORMS.match(name_or_arn)
    return match.group("name") if match else None
