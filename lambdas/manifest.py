"""The Lambda manifest: which functions exist, and how each one runs.

The manifest is the single source for both the local Lambda runtime (``infra/local``) and the
CloudFormation template (``infra/aws``), so a function is declared once. It lives next to the
handlers, in ``lambdas/manifest.json``::

    {
      "functions": [
        {
          "name": "chat-history",
          "handler": "lambdas.history.handler",
          "environment": {"TABLE_NAME": "iotchat-messages"},
          "timeout": 3,
          "memorySize": 128,
          "reservedConcurrency": 4
        }
      ]
    }

Fields of a function (AWS names and limits, as ``lambda.create_function`` takes them):

- ``name`` (required): 1-64 characters of ``A-Za-z0-9-_``; unique in the manifest.
- ``handler`` (required): ``"module.function"``; the module is imported with the repository
  root on ``sys.path``, so ``lambdas.history.handler`` means ``handler`` in
  ``lambdas/history.py``.
- ``environment``: string-to-string variables; AWS's reserved keys (``AWS_REGION``,
  ``AWS_ACCESS_KEY_ID``, ``AWS_LAMBDA_FUNCTION_NAME``, ...) are refused, as AWS refuses them.
- ``timeout``: seconds, 1-900, default 3 (AWS's default).
- ``memorySize``: MB, 128-10240, default 128. Reported in REPORT lines and the context; not
  enforced locally.
- ``reservedConcurrency``: at most this many invocations run at once (one worker process each);
  omitted means the local default (see ``infra/local/lambda_runtime``). Must be >= 1 locally
  (AWS's 0, "throttle everything", is not supported).

Unknown keys are an error, so a typo never silently falls back to a default.

Names and values may use the ``{stack}``, ``{region}`` and ``{account}`` placeholders of the
policy files (``"name": "{stack}-commands"``), so several stacks can live in one account:
:meth:`Manifest.load` fills them in (locally the stack is called ``iotchat``), and the
CloudFormation builder turns them into ``Fn::Sub``.

The manifest also declares the backend's DynamoDB tables, under ``"tables"``: each entry is a
``dynamodb.create_table`` request (``TableName``, ``KeySchema``, ``AttributeDefinitions``,
indexes, ...), checked against botocore's model. ``iotchat up`` creates the missing ones in
the local DynamoDB, and rule checks refuse actions that name a table not declared here.

Kinesis streams are declared under ``"streams"``: each entry is a ``kinesis.create_stream``
request, checked against botocore's model. Locally ``StreamName`` (1-128 characters of
``A-Za-z0-9_.-``) and ``ShardCount`` (1-10, kinesalite's shard limit) are required, and other
keys (on-demand mode, tags) are refused. ``iotchat up`` creates the missing streams::

    "streams": [{"StreamName": "{stack}-stream", "ShardCount": 1}]

Lambda event source mappings are declared under ``"eventSourceMappings"``: each entry is a
``lambda.create_event_source_mapping`` request for a Kinesis stream, checked against
botocore's model and then against what the local runtime emulates::

    "eventSourceMappings": [
      {"FunctionName": "{stack}-stream",
       "EventSourceArn": "arn:aws:kinesis:{region}:{account}:stream/{stack}-stream",
       "StartingPosition": "LATEST", "BatchSize": 100, "MaximumBatchingWindowInSeconds": 1,
       "MaximumRetryAttempts": 3, "BisectBatchOnFunctionError": true}
    ]

- ``FunctionName`` (required): a function of this manifest, by name or ARN.
- ``EventSourceArn`` (required): ``arn:aws:kinesis:<region>:<account>:stream/<name>`` of a
  stream of this manifest, in the stack's region and account.
- ``StartingPosition`` (required): ``LATEST``, ``TRIM_HORIZON`` or ``AT_TIMESTAMP`` (then
  ``StartingPositionTimestamp``, a time, is required too). Where a new mapping starts reading;
  once it has run, it continues after its last processed record.
- ``BatchSize``: 1-10000 records per invocation, default 100 (AWS's Kinesis default).
- ``MaximumBatchingWindowInSeconds``: 0-300, default 0. A batch is sent when it holds
  ``BatchSize`` records or this long after its first record arrived, whichever comes first.
- ``MaximumRetryAttempts``: -1 (retry until success, AWS's default) to 10000.
- ``BisectBatchOnFunctionError``: on a function error, split the batch in two and retry each
  half, default false.
- ``Enabled``: default true; a disabled mapping does not poll.

Other keys of the request (filters, destinations, parallelization, tumbling windows, ...) are
refused as not emulated locally, and so is a second mapping of the same stream and function.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from policies.render import LOCAL_NAMES, RenderError, render

MANIFEST_PATH = Path(__file__).with_name("manifest.json")

DEFAULT_TIMEOUT = 3
DEFAULT_MEMORY_SIZE = 128
MAX_TIMEOUT = 900
MIN_MEMORY_SIZE, MAX_MEMORY_SIZE = 128, 10240

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_HANDLER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
_ENV_KEY = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_KNOWN_KEYS = frozenset(
    {"name", "handler", "environment", "timeout", "memorySize", "reservedConcurrency"}
)

# Keys Lambda sets itself and refuses in a function's configuration.
RESERVED_ENV_KEYS = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_REGION",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
    }
)


class ManifestError(ValueError):
    """The manifest is malformed; the message names the function and the field."""


STREAM_KEYS = frozenset({"StreamName", "ShardCount"})
MAX_LOCAL_SHARDS = 10
MAPPING_KEYS = frozenset(
    {
        "FunctionName",
        "EventSourceArn",
        "StartingPosition",
        "StartingPositionTimestamp",
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "MaximumRetryAttempts",
        "BisectBatchOnFunctionError",
        "Enabled",
    }
)
STARTING_POSITIONS = ("LATEST", "TRIM_HORIZON", "AT_TIMESTAMP")
DEFAULT_KINESIS_BATCH_SIZE = 100
MAX_KINESIS_BATCH_SIZE = 10000
MAX_BATCHING_WINDOW = 300
MAX_RETRY_ATTEMPTS = 10000
_STREAM_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_STREAM_ARN = re.compile(
    r"^arn:aws[a-z-]*:kinesis:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):"
    r"stream/(?P<name>[A-Za-z0-9_.-]{1,128})$"
)


@dataclass(frozen=True)
class EventSourceMappingSpec:
    """One Kinesis event source mapping, validated, with AWS's defaults filled in."""

    function_name: str
    stream_arn: str
    stream_name: str
    starting_position: str
    starting_timestamp: float | None = None
    batch_size: int = DEFAULT_KINESIS_BATCH_SIZE
    batching_window: float = 0
    maximum_retry_attempts: int = -1
    bisect_on_error: bool = False
    enabled: bool = True

    @property
    def key(self) -> str:
        """Names the mapping in logs and in its checkpoint file."""
        return f"{self.function_name}--{self.stream_name}"


@dataclass(frozen=True)
class FunctionSpec:
    """One function's configuration, validated."""

    name: str
    handler: str
    environment: Mapping[str, str] = field(default_factory=dict)
    timeout: int = DEFAULT_TIMEOUT
    memory_size: int = DEFAULT_MEMORY_SIZE
    reserved_concurrency: int | None = None

    @property
    def handler_module(self) -> str:
        return self.handler.rpartition(".")[0]

    @property
    def handler_function(self) -> str:
        return self.handler.rpartition(".")[2]

    @classmethod
    def from_dict(cls, data: Any, where: str = "function") -> FunctionSpec:
        if not isinstance(data, dict):
            raise ManifestError(f"{where}: must be an object")
        unknown = sorted(set(data) - _KNOWN_KEYS)
        if unknown:
            raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)}")
        name = data.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ManifestError(f"{where}: name must be 1-64 characters of A-Za-z0-9-_")
        where = f"function {name!r}"
        handler = data.get("handler")
        if not isinstance(handler, str) or not _HANDLER.match(handler):
            raise ManifestError(f"{where}: handler must look like 'module.function'")
        environment = data.get("environment", {})
        if not isinstance(environment, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in environment.items()
        ):
            raise ManifestError(f"{where}: environment must map strings to strings")
        bad_keys = sorted(k for k in environment if not _ENV_KEY.match(k))
        if bad_keys:
            raise ManifestError(f"{where}: invalid environment key(s) {', '.join(bad_keys)}")
        reserved = sorted(set(environment) & RESERVED_ENV_KEYS)
        if reserved:
            raise ManifestError(
                f"{where}: reserved environment key(s) {', '.join(reserved)} cannot be set"
            )
        timeout = _int_field(data, "timeout", DEFAULT_TIMEOUT, 1, MAX_TIMEOUT, where)
        memory = _int_field(
            data, "memorySize", DEFAULT_MEMORY_SIZE, MIN_MEMORY_SIZE, MAX_MEMORY_SIZE, where
        )
        concurrency = None
        if data.get("reservedConcurrency") is not None:
            concurrency = _int_field(data, "reservedConcurrency", 1, 1, 1000, where)
        return cls(name, handler, dict(environment), timeout, memory, concurrency)


def _int_field(data: dict, key: str, default: int, low: int, high: int, where: str) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ManifestError(f"{where}: {key} must be an integer from {low} to {high}")
    return value


@dataclass(frozen=True)
class Manifest:
    """Every function of the project, by name."""

    functions: tuple[FunctionSpec, ...] = ()
    tables: tuple[dict[str, Any], ...] = ()
    streams: tuple[dict[str, Any], ...] = ()
    event_source_mappings: tuple[EventSourceMappingSpec, ...] = ()

    @property
    def table_names(self) -> list[str]:
        return [table["TableName"] for table in self.tables]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for spec in self.functions:
            if spec.name in seen:
                raise ManifestError(f"function {spec.name!r}: declared twice")
            seen.add(spec.name)

    def __iter__(self) -> Iterator[FunctionSpec]:
        return iter(self.functions)

    def get(self, name: str) -> FunctionSpec | None:
        return next((spec for spec in self.functions if spec.name == name), None)

    def names(self) -> list[str]:
        return [spec.name for spec in self.functions]

    @property
    def stream_names(self) -> list[str]:
        return [stream["StreamName"] for stream in self.streams]

    @classmethod
    def from_dict(
        cls, data: Any, *, region: str | None = None, account: str | None = None
    ) -> Manifest:
        """Validate ``data``; with ``region`` and ``account``, mappings must name streams there."""
        if not isinstance(data, dict) or not isinstance(data.get("functions"), list):
            raise ManifestError('manifest: must be an object with a "functions" list')
        unknown = sorted(set(data) - {"functions", "tables", "streams", "eventSourceMappings"})
        if unknown:
            raise ManifestError(f"manifest: unknown field(s) {', '.join(unknown)}")
        tables = data.get("tables", [])
        if not isinstance(tables, list):
            raise ManifestError('manifest: "tables" must be a list')
        for index, table in enumerate(tables):
            _check_table(table, f"tables[{index}]")
        names = [t["TableName"] for t in tables]
        if len(set(names)) != len(names):
            raise ManifestError("manifest: a table is declared twice")
        functions = tuple(
            FunctionSpec.from_dict(item, f"functions[{index}]")
            for index, item in enumerate(data["functions"])
        )
        streams = _list(data, "streams")
        for index, stream in enumerate(streams):
            _check_stream(stream, f"streams[{index}]")
        stream_names = [stream["StreamName"] for stream in streams]
        if len(set(stream_names)) != len(stream_names):
            raise ManifestError("manifest: a stream is declared twice")
        function_names = {spec.name for spec in functions}
        mappings = tuple(
            _mapping(
                item,
                f"eventSourceMappings[{index}]",
                function_names,
                set(stream_names),
                region,
                account,
            )
            for index, item in enumerate(_list(data, "eventSourceMappings"))
        )
        pairs = [(m.function_name, m.stream_name) for m in mappings]
        if len(set(pairs)) != len(pairs):
            raise ManifestError(
                "manifest: eventSourceMappings: a stream is mapped to the same function twice"
            )
        return cls(functions, tuple(tables), tuple(streams), mappings)

    @classmethod
    def load(
        cls,
        path: Path = MANIFEST_PATH,
        *,
        region: str = LOCAL_NAMES["region"],
        account: str = LOCAL_NAMES["account"],
        stack: str = LOCAL_NAMES["stack"],
    ) -> Manifest:
        """The manifest with its ``{stack}``/``{region}``/``{account}`` placeholders filled."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path.name}: not JSON ({exc})") from exc
        try:
            data = render(data, region=region, account=account, stack=stack)
        except RenderError as exc:
            raise ManifestError(f"{path.name}: {exc}") from exc
        return cls.from_dict(data, region=region, account=account)


def _list(data: dict, key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ManifestError(f'manifest: "{key}" must be a list')
    return value


def _check_request(request: Any, service: str, operation: str, where: str) -> None:
    """``request`` must be a valid ``operation`` request, per botocore's own model."""
    import botocore.session
    from botocore.validate import ParamValidator

    if not isinstance(request, dict):
        raise ManifestError(f"{where}: must be a {operation} request object")
    model = botocore.session.get_session().get_service_model(service)
    report = ParamValidator().validate(request, model.operation_model(operation).input_shape)
    if report.has_errors():
        details = "; ".join(
            line.strip()
            for line in report.generate_report().splitlines()
            if line.strip() and not line.startswith("Parameter validation failed")
        )
        raise ManifestError(f"{where}: {details}")


def _check_table(table: Any, where: str) -> None:
    """A table entry must be a valid ``CreateTable`` request."""
    _check_request(table, "dynamodb", "CreateTable", where)


def _check_stream(stream: Any, where: str) -> None:
    """A stream entry: a valid ``CreateStream`` request, of the subset kinesalite runs."""
    _check_request(stream, "kinesis", "CreateStream", where)
    name = stream["StreamName"]
    if not _STREAM_NAME.match(name):
        raise ManifestError(f"{where}: StreamName must be 1-128 characters of A-Za-z0-9_.-")
    unsupported = sorted(set(stream) - STREAM_KEYS)
    if unsupported:
        raise ManifestError(
            f"stream {name!r}: {', '.join(unsupported)} not supported locally "
            "(only StreamName and ShardCount)"
        )
    count = stream.get("ShardCount")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_LOCAL_SHARDS:
        raise ManifestError(
            f"stream {name!r}: ShardCount must be an integer from 1 to {MAX_LOCAL_SHARDS} "
            "(provisioned mode; on-demand streams are not supported locally)"
        )


def _mapping(
    item: Any,
    where: str,
    functions: set[str],
    streams: set[str],
    region: str | None,
    account: str | None,
) -> EventSourceMappingSpec:
    """A ``CreateEventSourceMapping`` request for a Kinesis stream of this manifest."""
    from lambdas.arns import function_name

    _check_request(item, "lambda", "CreateEventSourceMapping", where)
    unsupported = sorted(set(item) - MAPPING_KEYS)
    if unsupported:
        raise ManifestError(f"{where}: {', '.join(unsupported)} not supported locally")
    arn = item.get("EventSourceArn")
    match = _STREAM_ARN.match(arn) if isinstance(arn, str) else None
    if match is None:
        raise ManifestError(
            f"{where}: EventSourceArn must be a Kinesis stream ARN "
            "(arn:aws:kinesis:<region>:<account>:stream/<name>)"
        )
    stream = match.group("name")
    where = f"{where} ({stream})"
    if stream not in streams:
        raise ManifestError(f'{where}: stream {stream!r} is not declared in "streams"')
    for part, expected in (("region", region), ("account", account)):
        if expected is not None and match.group(part) != expected:
            raise ManifestError(
                f"{where}: EventSourceArn names {part} {match.group(part)!r}, "
                f"but the stack's {part} is {expected!r}"
            )
    name = function_name(item["FunctionName"])
    if name is None or name not in functions:
        raise ManifestError(
            f'{where}: function {item["FunctionName"]!r} is not declared in "functions"'
        )
    position = item.get("StartingPosition")
    if position is None:
        raise ManifestError(f"{where}: StartingPosition is required for a Kinesis stream")
    if position not in STARTING_POSITIONS:
        raise ManifestError(
            f"{where}: StartingPosition must be one of {', '.join(STARTING_POSITIONS)}"
        )
    timestamp = item.get("StartingPositionTimestamp")
    if (position == "AT_TIMESTAMP") != (timestamp is not None):
        raise ManifestError(
            f"{where}: StartingPositionTimestamp goes with StartingPosition AT_TIMESTAMP, "
            "and only with it"
        )
    return EventSourceMappingSpec(
        function_name=name,
        stream_arn=arn,
        stream_name=stream,
        starting_position=position,
        starting_timestamp=None if timestamp is None else _epoch(timestamp, where),
        batch_size=_int_field(
            item, "BatchSize", DEFAULT_KINESIS_BATCH_SIZE, 1, MAX_KINESIS_BATCH_SIZE, where
        ),
        batching_window=_int_field(
            item, "MaximumBatchingWindowInSeconds", 0, 0, MAX_BATCHING_WINDOW, where
        ),
        maximum_retry_attempts=_int_field(
            item, "MaximumRetryAttempts", -1, -1, MAX_RETRY_ATTEMPTS, where
        ),
        bisect_on_error=item.get("BisectBatchOnFunctionError", False),
        enabled=item.get("Enabled", True),
    )


def _epoch(value: Any, where: str) -> float:
    """A timestamp as botocore accepts it (epoch seconds or ISO 8601) to epoch seconds."""
    from botocore.utils import parse_timestamp

    try:
        return parse_timestamp(value).timestamp()
    except (ValueError, TypeError):
        raise ManifestError(f"{where}: StartingPositionTimestamp is not a time") from None
