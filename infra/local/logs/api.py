"""CloudWatch Logs on the API endpoint (json protocol, ``Logs_20140328.*``): the read calls a
developer and ``aws logs tail`` use, over :class:`.service.LocalLogs`.

Paging tokens count events within a group: ``f/<n>`` and ``b/<n>`` for GetLogEvents (forward
and backward, as CloudWatch's tokens start), ``<n>`` for FilterLogEvents.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from infra.local.api.signed import (
    Access,
    Call,
    OperationHandler,
    RequiredAccess,
    ServiceError,
    SignedService,
)

from .service import LocalLogs, LogEvent, event_json, matches

DEFAULT_LIMIT = 10_000


def _token(value: Any, prefix: str = "") -> int | None:
    if value is None:
        return None
    text = str(value)
    if not text.startswith(prefix) or not text[len(prefix) :].isdigit():
        raise ServiceError(400, "InvalidParameterException", "The specified nextToken is invalid.")
    return int(text[len(prefix) :])


def _limit(params: Mapping[str, Any]) -> int:
    limit = params.get("limit") or DEFAULT_LIMIT
    if not isinstance(limit, int) or not 1 <= limit <= DEFAULT_LIMIT:
        raise ServiceError(400, "InvalidParameterException", "limit must be 1 to 10000")
    return limit


def _in_time(event: LogEvent, params: Mapping[str, Any]) -> bool:
    start, end = params.get("startTime"), params.get("endTime")
    return (start is None or event.timestamp >= start) and (end is None or event.timestamp < end)


class LogsAPI:
    def __init__(self, logs: LocalLogs, region: str, account: str) -> None:
        self.logs = logs
        self.region = region
        self.account = account

    def _arn(self, group: str) -> str:
        return f"arn:aws:logs:{self.region}:{self.account}:log-group:{group}"

    def describe_log_groups(self, call: Call) -> dict[str, Any]:
        groups = []
        for group in self.logs.describe_log_groups(call.params.get("logGroupNamePrefix")):
            events = group.read()
            groups.append(
                {
                    "logGroupName": group.name,
                    "creationTime": group.created,
                    "arn": self._arn(group.name) + ":*",
                    "logGroupArn": self._arn(group.name),
                    "storedBytes": sum(len(e.message) for e in events),
                    "logGroupClass": "STANDARD",
                }
            )
        return {"logGroups": groups[: _limit({"limit": call.params.get("limit") or 50})]}

    def describe_log_streams(self, call: Call) -> dict[str, Any]:
        group = self.logs.group(call.params.get("logGroupName", ""))
        events = group.read()
        prefix = call.params.get("logStreamNamePrefix") or ""
        if not group.stream.startswith(prefix):
            return {"logStreams": []}
        stream: dict[str, Any] = {
            "logStreamName": group.stream,
            "creationTime": group.created,
            "arn": f"{self._arn(group.name)}:log-stream:{group.stream}",
            "storedBytes": 0,
        }
        if events:
            stream["firstEventTimestamp"] = events[0].timestamp
            stream["lastEventTimestamp"] = events[-1].timestamp
            stream["lastIngestionTime"] = events[-1].ingestion_time
        return {"logStreams": [stream]}

    def get_log_events(self, call: Call) -> dict[str, Any]:
        params = call.params
        group = self.logs.stream(params.get("logGroupName", ""), params.get("logStreamName", ""))
        events = [e for e in group.read() if _in_time(e, params)]
        limit = _limit(params)
        token = params.get("nextToken")
        if token is not None and str(token).startswith("b/"):
            before = _token(token, "b/") or 0
            page = [e for e in events if e.sequence < before][-limit:]
        elif token is not None:
            after = _token(token, "f/") or 0
            page = [e for e in events if e.sequence >= after][:limit]
        elif params.get("startFromHead"):
            page = events[:limit]
        else:
            page = events[-limit:]
        first = page[0].sequence if page else (events[-1].sequence + 1 if events else 0)
        last = page[-1].sequence + 1 if page else first
        return {
            "events": [event_json(e) for e in page],
            "nextForwardToken": f"f/{last:056d}",
            "nextBackwardToken": f"b/{first:056d}",
        }

    def filter_log_events(self, call: Call) -> dict[str, Any]:
        params = call.params
        group = self.logs.group(params.get("logGroupName", ""))
        streams = params.get("logStreamNames")
        if params.get("logStreamNamePrefix"):
            streams = (
                [group.stream] if group.stream.startswith(params["logStreamNamePrefix"]) else []
            )
        searched = streams is None or group.stream in streams
        after = _token(params.get("nextToken")) or 0
        limit = _limit(params)
        found = [
            e
            for e in group.read()
            if searched
            and e.sequence >= after
            and _in_time(e, params)
            and matches(params.get("filterPattern"), e.message)
        ]
        page = found[:limit]
        answer: dict[str, Any] = {
            "events": [
                {
                    "logStreamName": group.stream,
                    "eventId": f"{e.timestamp:020d}{e.sequence:020d}",
                    **event_json(e),
                }
                for e in page
            ],
            "searchedLogStreams": [
                {"logStreamName": group.stream, "searchedCompletely": len(found) <= limit}
            ]
            if searched
            else [],
        }
        if len(found) > limit:
            answer["nextToken"] = str(page[-1].sequence + 1)
        return answer


def required_access(region: str, account: str) -> RequiredAccess:
    """``logs:<Operation>`` on the log group (``log-group:*`` to list them), as the Service
    Authorization Reference lists them
    (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudwatchlogs.html)."""

    def access(operation: str, params: Mapping[str, Any]) -> Iterable[Access]:
        group = params.get("logGroupName") or "*"
        resource = f"arn:aws:logs:{region}:{account}:log-group:{group}"
        if operation == "GetLogEvents":
            resource += f":log-stream:{params.get('logStreamName', '')}"
        elif operation != "DescribeLogGroups":
            resource += ":*"
        return [(f"logs:{operation}", resource)]

    return access


def _on_thread(method: Any) -> OperationHandler:
    async def handle(call: Call) -> dict[str, Any]:
        return await asyncio.to_thread(method, call)

    return handle


def service(api: LogsAPI) -> SignedService:
    """CloudWatch Logs as the edge serves it."""
    operations = {
        name: _on_thread(getattr(api, method))
        for name, method in (
            ("DescribeLogGroups", "describe_log_groups"),
            ("DescribeLogStreams", "describe_log_streams"),
            ("GetLogEvents", "get_log_events"),
            ("FilterLogEvents", "filter_log_events"),
        )
    }
    return SignedService("logs", operations, required_access(api.region, api.account))
