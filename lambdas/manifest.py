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

    @classmethod
    def from_dict(cls, data: Any) -> Manifest:
        if not isinstance(data, dict) or not isinstance(data.get("functions"), list):
            raise ManifestError('manifest: must be an object with a "functions" list')
        unknown = sorted(set(data) - {"functions", "tables"})
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
        return cls(
            tuple(
                FunctionSpec.from_dict(item, f"functions[{index}]")
                for index, item in enumerate(data["functions"])
            ),
            tuple(tables),
        )

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
        return cls.from_dict(data)


def _check_table(table: Any, where: str) -> None:
    """A table entry must be a valid ``CreateTable`` request, per botocore's own model."""
    import botocore.session
    from botocore.validate import ParamValidator

    if not isinstance(table, dict):
        raise ManifestError(f"{where}: a table is a CreateTable request object")
    model = botocore.session.get_session().get_service_model("dynamodb")
    report = ParamValidator().validate(table, model.operation_model("CreateTable").input_shape)
    if report.has_errors():
        details = "; ".join(
            line.strip()
            for line in report.generate_report().splitlines()
            if line.strip() and not line.startswith("Parameter validation failed")
        )
        raise ManifestError(f"{where}: {details}")
