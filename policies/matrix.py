"""Who may do what: the access matrix of the project's policies, principal x service x action.

Generated from the policy files with the evaluator that enforces them, so the table in
``docs/policies.md`` cannot drift from what the stack does: ``python -m policies.matrix
--write docs/policies.md`` rewrites it between its markers, and a test fails when it is stale.

A person's IoT actions must pass their Cognito role AND, when signed in, the IoT policy attached
to their identity (AWS IoT's rule for authenticated identities); every other AWS API decides on
the role alone. A device has only IoT policies. The example person is ``alice``; ``bob`` is
somebody else.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from policies.documents import load_policy
from policies.evaluator import Decision, Request, evaluate_all
from policies.model import Policy

REGION, ACCOUNT, STACK = "us-east-1", "000000000000", "iotchat"
ALICE, BOB = f"{REGION}:alice", f"{REGION}:bob"
SUB = "cognito-identity.amazonaws.com:sub"
BEGIN = "<!-- access-matrix:begin (python -m policies.matrix --write docs/policies.md) -->"
END = "<!-- access-matrix:end -->"


@dataclass(frozen=True)
class Principal:
    """A column: the policy sets for IoT actions and for every other action, and its context."""

    label: str
    iot: tuple[tuple[str, ...], ...]
    other: tuple[tuple[str, ...], ...]
    context: tuple[tuple[str, str], ...] = ()
    own: str = ALICE  # the client id and inbox that are this principal's own


PRINCIPALS = (
    Principal("guest", (("iam/guest-role",),), (("iam/guest-role",),), ((SUB, ALICE),)),
    Principal(
        "signed-in",
        (("iam/user-role",), ("iot/user",)),
        (("iam/user-role",),),
        ((SUB, ALICE),),
    ),
    Principal(
        "device",
        (("iot/device",),),
        ((),),
        (
            ("iot:Connection.Thing.ThingName", "alice"),
            ("iot:Connection.Thing.IsAttached", "true"),
            ("iot:ClientId", "alice"),
        ),
        own="alice",
    ),
    Principal("Lambda role", (("iam/backend-lambda",),), (("iam/backend-lambda",),)),
    Principal("republish rule", (("iam/rule-republish",),), (("iam/rule-republish",),)),
    Principal("store rule", (("iam/rule-dynamodb",),), (("iam/rule-dynamodb",),)),
    Principal("stream rule", (("iam/rule-kinesis",),), (("iam/rule-kinesis",),)),
    Principal("lambda rule", (("iam/rule-lambda",),), (("iam/rule-lambda",),)),
    Principal("admin", (("iam/local-admin",),), (("iam/local-admin",),)),
)

_IOT = f"arn:aws:iot:{REGION}:{ACCOUNT}"
_TABLE = f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{STACK}-messages"
_STREAM = f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/{STACK}-stream"
_FUNCTION = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{STACK}-commands"

# (service, action, what it is done to, resource ARN); ``{own}`` is the principal's own id.
ROWS: tuple[tuple[str, str, str, str], ...] = (
    ("IoT", "iot:Connect", "as own id", f"{_IOT}:client/{{own}}"),
    ("IoT", "iot:Connect", "as own session", f"{_IOT}:client/{{own}}_tab-1"),
    ("IoT", "iot:Connect", "as somebody else", f"{_IOT}:client/{BOB}"),
    ("IoT", "iot:Connect", "as somebody else's session", f"{_IOT}:client/{BOB}_tab-1"),
    ("IoT", "iot:Publish", "chat/out", f"{_IOT}:topic/chat/out"),
    ("IoT", "iot:Publish", "chat/private", f"{_IOT}:topic/chat/private"),
    ("IoT", "iot:Publish", "chat/pub/lobby", f"{_IOT}:topic/chat/pub/lobby"),
    ("IoT", "iot:Publish", "chat/in/bob", f"{_IOT}:topic/chat/in/{BOB}"),
    ("IoT", "iot:Subscribe", "chat/pub/lobby", f"{_IOT}:topicfilter/chat/pub/lobby"),
    ("IoT", "iot:Subscribe", "chat/pub/+", f"{_IOT}:topicfilter/chat/pub/+"),
    ("IoT", "iot:Subscribe", "own inbox", f"{_IOT}:topicfilter/chat/in/{{own}}"),
    ("IoT", "iot:Subscribe", "own session's replies", f"{_IOT}:topicfilter/chat/in/{{own}}_tab-1"),
    ("IoT", "iot:Subscribe", "chat/in/+", f"{_IOT}:topicfilter/chat/in/+"),
    ("IoT", "iot:Receive", "bob's inbox", f"{_IOT}:topic/chat/in/{BOB}"),
    ("IoT", "iot:Receive", "bob's session's replies", f"{_IOT}:topic/chat/in/{BOB}_tab-1"),
    ("IoT", "iot:RetainPublish", "chat/out", f"{_IOT}:topic/chat/out"),
    (
        "IoT",
        "iot:Subscribe",
        "$share/g/chat/pub/lobby",
        f"{_IOT}:topicfilter/$share/g/chat/pub/lobby",
    ),
    ("IoT", "iot:GetRetainedMessage", "chat/pub/lobby", f"{_IOT}:topic/chat/pub/lobby"),
    ("IoT", "iot:ListRetainedMessages", "*", "*"),
    ("DynamoDB", "dynamodb:Query", "messages table", _TABLE),
    ("DynamoDB", "dynamodb:PutItem", "messages table", _TABLE),
    ("DynamoDB", "dynamodb:Scan", "messages table", _TABLE),
    ("DynamoDB", "dynamodb:DeleteTable", "messages table", _TABLE),
    ("DynamoDB", "dynamodb:ListTables", "*", "*"),
    ("Kinesis", "kinesis:PutRecord", "stream", _STREAM),
    ("Kinesis", "kinesis:GetRecords", "stream", _STREAM),
    ("Kinesis", "kinesis:DeleteStream", "stream", _STREAM),
    ("Lambda", "lambda:InvokeFunction", "commands function", _FUNCTION),
)


def _policies(names: tuple[str, ...]) -> list[Policy]:
    loaded = []
    for name in names:
        kind, _, file = name.partition("/")
        loaded.append(load_policy(kind, file, region=REGION, account=ACCOUNT, stack=STACK))
    return loaded


def decide(principal: Principal, action: str, resource: str) -> Decision:
    sets = principal.iot if action.startswith("iot:") else principal.other
    policy_sets = [_policies(names) for names in sets]
    resource = resource.replace("{own}", principal.own)
    return evaluate_all(policy_sets, Request(action, resource, dict(principal.context)))


_CELL = {Decision.ALLOW: "yes", Decision.DENY_IMPLICIT: "-", Decision.DENY_EXPLICIT: "denied"}


def table(principals: Sequence[Principal] = PRINCIPALS) -> str:
    """The markdown table: ``yes`` allowed, ``-`` not allowed, ``denied`` explicitly denied."""
    header = ["service", "action", "on", *(p.label for p in principals)]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for service, action, target, resource in ROWS:
        cells = [_CELL[decide(p, action, resource)] for p in principals]
        lines.append(f"| {service} | `{action}` | {target} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def replace_between_markers(text: str, generated: str) -> str:
    """``text`` with the part between BEGIN and END replaced; ValueError without markers."""
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError("the access-matrix markers are missing")
    return text[: start + len(BEGIN)] + "\n" + generated + text[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="rewrite the table in this markdown file")
    args = parser.parse_args(argv)
    if args.write is None:
        sys.stdout.write(table())
        return 0
    path: Path = args.write
    path.write_text(replace_between_markers(path.read_text(encoding="utf-8"), table()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
