"""The local rules engine: every accepted publish, matched against every enabled rule.

The gateway's publish tap calls :meth:`RulesEngine.on_publish` for each accepted message
(MQTT, iot-data HTTP, lifecycle events, Basic Ingest). For each rule whose FROM filter matches,
the engine evaluates the compiled SQL and runs the rule's actions. Republish runs at once, so
room messages keep their order; the other actions run concurrently as tasks. Each action acts
as its rule's role (:mod:`.access`); when any action fails, refused or not, the rule's
errorAction (acting as its own role) gets one message listing every failure, in AWS's format.

Each publish's trace id (:mod:`infra.local.trace`) is carried through: the rule's republishes
and Lambda invocations inherit it, and each match, action and errorAction is one trace entry.
"""

from __future__ import annotations

import asyncio
import base64
import contextvars
import logging
import time
import uuid
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from infra.local.gateway.backpressure import WorkGauge
from infra.local.gateway.broker import PublishEvent
from infra.local.rules.actions import (
    Action,
    ActionFailed,
    RepublishAction,
    RuleServices,
    build_action,
)
from infra.local.rules.targets import action_target, resources
from infra.local.trace import TraceLog, current_trace, payload_preview
from iot_rules.loader import RuleDefinition
from iot_rules.sql import Result, SqlMessage, Statement, compile_sql

log = logging.getLogger("iotchat.rules")

# How many republish hops a message may take through rules before the engine stops it. AWS has
# no such limit, but a rule republishing to a topic it reads would otherwise loop forever here.
MAX_REPUBLISH_HOPS = 8
_hops: contextvars.ContextVar[int] = contextvars.ContextVar("republish_hops", default=0)

# Functions that call other services; statements using them are evaluated off the event loop.
_BLOCKING_FUNCTIONS = frozenset({"aws_lambda", "get_dynamodb"})


@dataclass
class CompiledRule:
    definition: RuleDefinition
    statement: Statement
    republish: list[RepublishAction]
    other_actions: list[Action]
    error_action: Action | None
    blocking: bool

    @property
    def name(self) -> str:
        return self.definition.name


def compile_rule(definition: RuleDefinition) -> CompiledRule:
    """Compile SQL and templates once; raises SqlError or KeyError for a broken rule."""
    version = definition.sql_version
    statement = compile_sql(definition.sql, version)
    name = definition.name
    actions = [build_action(spec, version, name) for spec in definition.actions]
    error_spec = definition.error_action
    return CompiledRule(
        definition=definition,
        statement=statement,
        republish=[a for a in actions if isinstance(a, RepublishAction)],
        other_actions=[a for a in actions if not isinstance(a, RepublishAction)],
        error_action=build_action(error_spec, version, name) if error_spec else None,
        blocking=bool(statement.functions_used & _BLOCKING_FUNCTIONS),
    )


@dataclass
class RuleStats:
    matched: int = 0
    actions_failed: int = 0
    error_actions_failed: int = 0


@dataclass
class RulesEngine:
    services: RuleServices
    rules: list[CompiledRule] = field(default_factory=list)
    stats: dict[str, RuleStats] = field(default_factory=dict)
    # Where each match and action outcome is recorded (the stack's trace log), if anywhere.
    trace: TraceLog | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _pending: int = 0  # messages whose rules are queued for evaluation on the loop
    # Where the work in flight (queued evaluations and tasks, by count and payload bytes) is
    # reported: the gateway holds publishers while it is saturated (gateway/backpressure.py).
    work: WorkGauge | None = None

    def load(self, definitions: list[RuleDefinition]) -> None:
        self.rules = [compile_rule(d) for d in definitions if not d.disabled]
        self.stats = {rule.name: RuleStats() for rule in self.rules}
        log.info("rules loaded: %s", ", ".join(r.name for r in self.rules) or "none")

    # ------------------------------------------------------------------ feeding

    def on_publish(self, event: PublishEvent) -> None:
        """The gateway's publish tap: runs on the gateway's loop, must not block.

        The message's rules are evaluated in one callback right after the gateway's own work
        on it, in arrival order (so room messages keep their order). Only a rule that matched
        and has more than republish to do (or uses a function that calls a service) becomes a
        task: most rules a message reaches do not match it, and a task each cost more than
        their SQL."""
        hops = _hops.get()
        if hops >= MAX_REPUBLISH_HOPS:
            log.warning("dropping %r: more than %d republish hops", event.topic, hops)
            return
        topic = _rule_topic(event)
        rules = [
            rule
            for rule in self.rules
            # Basic Ingest goes to the named rule only.
            if (event.rule_name is None or event.rule_name == rule.name)
            and rule.statement.matches(topic)
        ]
        if not rules:
            return
        msg = _sql_message(event, topic)
        self._pending += 1
        if self.work is not None:
            self.work.add(len(event.payload))
        asyncio.get_running_loop().call_soon(
            self._evaluate_all, rules, msg, event.trace_id, context=contextvars.copy_context()
        )

    def _evaluate_all(self, rules: list[CompiledRule], msg: SqlMessage, trace_id: str) -> None:
        self._pending -= 1
        if self.work is not None:
            self.work.remove(len(msg.payload))
        # This callback's own context: what its actions publish or invoke carries the trace on.
        current_trace.set(trace_id or None)
        for rule in rules:
            if rule.blocking:
                self._spawn(self._process(rule, msg, trace_id), len(msg.payload))
                continue
            try:
                result = rule.statement.evaluate(msg, self.services.sql_context)
            except Exception as exc:
                self._evaluation_failed(rule, msg, trace_id, exc)
                continue
            if result is None:
                continue
            failures = self._matched(rule, msg, result, trace_id)
            if rule.other_actions or failures:
                self._spawn(self._act(rule, msg, result, failures, trace_id), len(msg.payload))

    def _spawn(self, coro: Coroutine[Any, Any, None], nbytes: int) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        work = self.work
        if work is None:
            task.add_done_callback(self._tasks.discard)
            return
        work.add(nbytes, task=True)

        def done(task: asyncio.Task[None]) -> None:
            self._tasks.discard(task)
            work.remove(nbytes, task=True)

        task.add_done_callback(done)

    async def drain(self, timeout: float = 10.0) -> None:
        """Wait for every in-progress rule execution (tests, shutdown)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while self._tasks or self._pending:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=remaining)
            else:
                await asyncio.sleep(0)  # the evaluations queued on the loop run first

    # ------------------------------------------------------------------ running a rule

    async def _process(self, rule: CompiledRule, msg: SqlMessage, trace_id: str = "") -> None:
        """A rule whose SQL calls a service (``aws_lambda()``, ``get_dynamodb()``): evaluated in
        a worker thread, then acted on like the others."""
        current_trace.set(trace_id or None)
        ctx = self.services.sql_context
        try:
            result = await asyncio.to_thread(rule.statement.evaluate, msg, ctx)
        except Exception as exc:
            self._evaluation_failed(rule, msg, trace_id, exc)
            return
        if result is None:
            return
        failures = self._matched(rule, msg, result, trace_id)
        await self._act(rule, msg, result, failures, trace_id)

    def _evaluation_failed(
        self, rule: CompiledRule, msg: SqlMessage, trace_id: str, exc: Exception
    ) -> None:
        log.exception("rule %s: SQL evaluation failed for %r: %s", rule.name, msg.topic, exc)
        self._trace(
            "RuleMatch", trace_id, rule, msg, ok=False, details=f"SQL evaluation failed: {exc}"
        )

    def _matched(
        self, rule: CompiledRule, msg: SqlMessage, result: Result, trace_id: str
    ) -> list[ActionFailed]:
        """Count and trace the match and republish at once; returns the republishes that
        failed."""
        self.stats[rule.name].matched += 1
        log.debug("rule %s matched %s from %s", rule.name, msg.topic, msg.client_id)
        self._trace("RuleMatch", trace_id, rule, msg, details=_output_preview(result))
        failures: list[ActionFailed] = []
        token = _hops.set(_hops.get() + 1)
        try:
            for republish in rule.republish:
                began = time.perf_counter()
                try:
                    republish.publish_now(result, msg, self.services)
                except ActionFailed as refused:
                    failures.append(refused)
                    self._trace_action(trace_id, rule, msg, republish, began, refused)
                else:
                    self._trace_action(trace_id, rule, msg, republish, began, None)
        finally:
            _hops.reset(token)
        return failures

    async def _act(
        self,
        rule: CompiledRule,
        msg: SqlMessage,
        result: Result,
        failures: list[ActionFailed],
        trace_id: str,
    ) -> None:
        """The rule's other actions, concurrently; then its errorAction if anything failed."""
        if rule.other_actions:
            outcomes = await asyncio.gather(
                *(self._run_timed(a, result, msg) for a in rule.other_actions),
            )
            for action, (outcome, began) in zip(rule.other_actions, outcomes, strict=True):
                failed: ActionFailed | None = None
                if isinstance(outcome, ActionFailed):
                    failed = outcome
                elif isinstance(outcome, BaseException):
                    failed = action.fail(f"{type(outcome).__name__}: {outcome}")
                if failed is not None:
                    failures.append(failed)
                self._trace_action(trace_id, rule, msg, action, began, failed)
        if failures:
            self.stats[rule.name].actions_failed += len(failures)
            for failure in failures:
                log.warning(
                    "rule %s: %s on %s failed: %s",
                    rule.name,
                    failure.action,
                    failure.resource,
                    failure.message,
                )
            await self._error_action(rule, msg, failures, trace_id)

    async def _error_action(
        self, rule: CompiledRule, msg: SqlMessage, failures: list[ActionFailed], trace_id: str = ""
    ) -> None:
        if rule.error_action is None:
            return
        body = error_payload(rule.name, msg, failures, trace_id)
        result = Result(value=body, raw=None)
        began = time.perf_counter()
        try:
            if isinstance(rule.error_action, RepublishAction):
                rule.error_action.publish_now(result, msg, self.services)
            else:
                await rule.error_action.run(result, msg, self.services)
        except ActionFailed as failure:
            self.stats[rule.name].error_actions_failed += 1
            log.error(
                "rule %s: errorAction %s failed too: %s", rule.name, failure.action, failure.message
            )
            self._trace_action(trace_id, rule, msg, rule.error_action, began, failure, True)
        else:
            self._trace_action(trace_id, rule, msg, rule.error_action, began, None, True)

    async def _run_timed(
        self, action: Action, result: Result, msg: SqlMessage
    ) -> tuple[BaseException | None, float]:
        """Run one action; its failure (if any) and when it began, never raised."""
        began = time.perf_counter()
        try:
            await action.run(result, msg, self.services)
        except Exception as exc:
            return exc, began
        return None, began

    # ------------------------------------------------------------------ tracing

    def _trace(
        self,
        event_type: str,
        trace_id: str,
        rule: CompiledRule,
        msg: SqlMessage,
        *,
        ok: bool = True,
        **fields: object,
    ) -> None:
        if self.trace is not None:
            self.trace.emit(
                event_type,
                trace_id,
                ok=ok,
                clientId=msg.client_id,
                topicName=msg.topic,
                ruleName=rule.name,
                **fields,
            )

    def _trace_action(
        self,
        trace_id: str,
        rule: CompiledRule,
        msg: SqlMessage,
        action: Action,
        began: float,
        failed: ActionFailed | None,
        error_action: bool = False,
    ) -> None:
        """One ``RuleExecution`` entry: the action, its substituted target, how it went."""
        if self.trace is None:
            return
        target = (
            failed.resource if failed else action_target(action, msg, self.services.sql_context)
        )
        self._trace(
            "RuleExecution",
            trace_id,
            rule,
            msg,
            ok=failed is None,
            ruleAction=action.name,
            resources=resources(action, target),
            durationMs=round((time.perf_counter() - began) * 1000, 3),
            details=failed.message if failed else None,
            errorAction=True if error_action else None,
        )


def error_payload(
    rule_name: str, msg: SqlMessage, failures: list[ActionFailed], trace_id: str = ""
) -> dict[str, Any]:
    """AWS's error action message: one per rule and message, listing every failed action;
    ``cloudwatchTraceId`` is the message's trace id, as in the rules engine's log entries."""
    return {
        "ruleName": rule_name,
        "topic": msg.topic,
        "cloudwatchTraceId": trace_id or str(uuid.uuid4()),
        "clientId": msg.client_id,
        "base64OriginalPayload": base64.b64encode(msg.payload).decode(),
        "failures": [
            {"failedAction": f.action, "failedResource": f.resource, "errorMessage": f.message}
            for f in failures
        ],
    }


def _output_preview(result: Result) -> str:
    """The SELECT output as a trace entry's ``details`` (shortened like a payload)."""
    return payload_preview(result.to_bytes())


def _rule_topic(event: PublishEvent) -> str:
    """Basic Ingest: the rule sees the topic without its ``$aws/rules/<rule>/`` prefix."""
    return event.topic.split("/", 3)[3] if event.rule_name is not None else event.topic


def _sql_message(event: PublishEvent, topic: str) -> SqlMessage:
    props = event.properties or {}
    from infra.local.gateway.codec import Prop

    named: dict[str, object] = {}
    for key, name in (
        (Prop.CONTENT_TYPE, "content_type"),
        (Prop.RESPONSE_TOPIC, "response_topic"),
        (Prop.PAYLOAD_FORMAT_INDICATOR, "format_indicator"),
        (Prop.MESSAGE_EXPIRY_INTERVAL, "message_expiry"),
    ):
        if key in props:
            named[name] = props[key]
    if Prop.CORRELATION_DATA in props:
        named["correlation_data"] = base64.b64encode(props[Prop.CORRELATION_DATA]).decode()
    return SqlMessage(
        topic=topic,
        payload=event.payload,
        client_id=event.client_id,
        principal=event.principal.identifier if event.principal else None,
        timestamp_ms=event.timestamp_ms,
        trace_id=(event.trace_id or str(uuid.uuid4())) if event.source == "mqtt" else None,
        user_properties=tuple(props.get(Prop.USER_PROPERTY, ())),
        properties=named,
    )
