"""The local stack: every component of the chat's cloud side on one machine.

``iotchat up`` builds a :class:`LocalStack`, starts it, writes ``stack.json`` once every
component is ready and stops it cleanly on SIGINT or SIGTERM. Tests start the same object
in-process or as a subprocess, always with port 0.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from infra.local.rules.engine import RulesEngine
from iot_rules.loader import RULES_DIR, RuleDefinition, load_rules
from lambdas.manifest import MANIFEST_PATH, FunctionSpec, Manifest
from policies.render import LOCAL_NAMES

from .api.server import EdgeAPI, Health
from .ca import LocalCA
from .cognito import IDENTITY_TARGET_PREFIX, IDP_TARGET_PREFIX, CognitoAPI, LocalCognito
from .cognito.admin import CognitoAdmin
from .cognito.admin import services as cognito_admin_services
from .cognito.identity_pool import CREDENTIAL_LIFETIME
from .cognito.limits import CognitoLimits
from .dynamodb import DynamoDBLocal, ensure_tables
from .dynamodb import api as dynamodb_api
from .fd_limit import quiet_accept_errors, raise_open_files_limit
from .gateway import (
    ADMIN_ACCESS_KEY_ID,
    ADMIN_SECRET_ACCESS_KEY,
    Gateway,
    GatewayConfig,
    Limits,
    StaticCredentialStore,
)
from .gateway.policy_authorizer import PolicyAuthorizer
from .http import HttpLimits
from .iam import IamAuthorizer, Roles, RoleSessions
from .iam.roles import LAMBDA_ROLE_FILE
from .identity import LOCAL_ACCOUNT_ID, LOCAL_REGION, Credential
from .iot import IotControlPlane, IotPolicies, TopicRules
from .iot import service as iot_service
from .kinesis import KinesisLocal, ensure_streams
from .kinesis import api as kinesis_api
from .lambda_runtime import LambdaRuntime
from .lambda_runtime import api as lambda_api
from .lambda_runtime.credentials import DEFAULT_LIFETIME as LAMBDA_CREDENTIAL_LIFETIME
from .lambda_runtime.credentials import RoleCredentials
from .lambda_runtime.event_sources import EventSourceMappings, session_clients
from .logs import LocalLogs, LogsAPI
from .logs import service as logs_service
from .overview import StackOverview
from .port_owner import check_ports
from .registry import Registry, RegistryCredentialStore, watch_deactivations
from .rules.access import RuleAccess
from .rules.host import DirectJsonCaller, rule_services
from .state_files import PRIVATE_UMASK, private_dir, write_atomic
from .state_lock import StateDirLock
from .sts import service as sts_service
from .trace import FLUSH_INTERVAL, TRACE_FILE, TraceLog, publish_tap
from .web import WebServer, config_from_stack
from .web.developer import DeveloperPage, admin_check
from .web.server import web_limits

log = logging.getLogger("iotchat.stack")

DEFAULT_STATE_DIR = Path(".iotchat")
STACK_FILE_NAME = "stack.json"
DYNAMODB_DATA_DIR = "dynamodb"
DYNAMODB_LOG_FILE = "dynamodb.log"
KINESIS_DATA_DIR = "kinesis"
KINESIS_LOG_FILE = "kinesis.log"
COGNITO_DIR = "cognito"
# Persistent MQTT sessions, saved on a clean stop (docs/gateway.md).
GATEWAY_SESSION_FILE = Path("gateway") / "sessions.json"
# Expired Cognito keys stay known this long (so a late handshake reads "expired", not
# "unknown"), then are dropped so a long-running stack does not keep every key it issued.
EXPIRED_CREDENTIAL_GRACE = 3600.0
PRUNE_EVERY = 1000
# How long /_iotchat/health trusts its last look for the declared tables and streams.
DECLARED_CHECK_TTL = 3.0


def aws_client_factory(endpoint: str, region: str) -> Callable[[str], Any]:
    """The local admin's boto3 clients for the API endpoint, one per service: the stack's own
    housekeeping (the declared tables and streams, the health check). The rules engine and the
    Lambdas act as their own roles instead."""
    import boto3

    lock = threading.Lock()
    clients: dict[str, Any] = {}

    def client(service: str) -> Any:
        with lock:
            if service not in clients:
                session = boto3.session.Session(
                    aws_access_key_id=ADMIN_ACCESS_KEY_ID,
                    aws_secret_access_key=ADMIN_SECRET_ACCESS_KEY,
                    region_name=region,
                )
                clients[service] = session.client(service, endpoint_url=endpoint)
            return clients[service]

    return client


@dataclass
class StackOptions:
    state_dir: Path = DEFAULT_STATE_DIR
    host: str = "127.0.0.1"
    mqtt_port: int = 1883
    mqtts_port: int = 8883
    wss_port: int = 8443
    # MQTT over plain WebSocket for the web app on loopback (SigV4 still checked); None: off.
    ws_port: int | None = 8083
    api_port: int = 4566
    # The web app; None: not served.
    web_port: int | None = 8080
    region: str = LOCAL_REGION
    # Fills the {stack} placeholder of rules, policies and the manifest ("iotchat-messages").
    stack_name: str = LOCAL_NAMES["stack"]
    limits: Limits = field(default_factory=Limits)
    rules_dir: Path = RULES_DIR
    manifest: Path = MANIFEST_PATH
    # Lambda's asynchronous retry delays; AWS waits about 1 and 2 minutes, locally seconds.
    lambda_retry_delays: tuple[float, float] = (1.0, 2.0)
    # Event source mappings: how often an idle shard is read (AWS: about once a second), and
    # the first delay before a failed batch is retried (doubling up to 5 s).
    event_source_poll_interval: float = 0.2
    event_source_retry_delay: float = 0.5
    # Lifetime of the temporary credentials GetCredentialsForIdentity issues (AWS: 1 hour).
    cognito_credential_lifetime: float = CREDENTIAL_LIFETIME
    # Cognito's request rates, sign-in lockout, code attempts, unconfirmed users' lifetime.
    cognito_limits: CognitoLimits = field(default_factory=CognitoLimits)
    # Host names the HTTP and WebSocket listeners answer besides loopback ones (--allow-host).
    allowed_hosts: tuple[str, ...] = ()
    # The API endpoint's and the web app's deadlines, body and connection caps.
    http_limits: HttpLimits = field(default_factory=HttpLimits)
    # Record every publish, rule match, action and invocation in logs/rules-engine.jsonl.
    trace: bool = True

    def fixed_ports(self) -> dict[str, int | None]:
        """``iotchat up``'s port options and their values (0 or None: any free port)."""
        return {
            "--mqtt-port": self.mqtt_port,
            "--mqtts-port": self.mqtts_port,
            "--wss-port": self.wss_port,
            "--ws-port": self.ws_port,
            "--api-port": self.api_port,
            "--web-port": self.web_port,
        }


class LocalStack:
    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.state_dir = options.state_dir.resolve()
        # 0700, before anything is written in it (docs/security.md: private state).
        private_dir(self.state_dir)
        self.static_credentials = StaticCredentialStore()
        self.registry = Registry.open(
            self.state_dir, region=options.region, account_id=LOCAL_ACCOUNT_ID
        )
        # Access keys (admin, Cognito) from the static store, certificates from the registry.
        self.credentials = RegistryCredentialStore(self.static_credentials, self.registry)
        # IAM for every door: the project's roles, their sessions' keys, one authorizer.
        self.roles = Roles(
            region=options.region, account=LOCAL_ACCOUNT_ID, stack=options.stack_name
        )
        self.iam = IamAuthorizer(self.roles)
        self.role_sessions = RoleSessions(self._add_temporary_credential)
        self.authorizer: PolicyAuthorizer | None = None
        self.gateway: Gateway | None = None
        self._registry_watch: asyncio.Task[None] | None = None
        self.ca: LocalCA | None = None
        self.dynamodb = DynamoDBLocal(
            self.state_dir / DYNAMODB_DATA_DIR,
            self.state_dir / DYNAMODB_LOG_FILE,
        )
        self.kinesis = KinesisLocal(
            self.state_dir / KINESIS_DATA_DIR,
            self.state_dir / KINESIS_LOG_FILE,
            region=options.region,
            account_id=LOCAL_ACCOUNT_ID,
        )
        self.event_sources: EventSourceMappings | None = None
        self.edge: EdgeAPI | None = None
        self.web: WebServer | None = None
        self.web_port: int | None = None
        # Rule actions reach DynamoDB directly (see rules_host.DirectJsonCaller).
        self.direct_json = DirectJsonCaller(
            lambda service: self._dynamodb_endpoint() if service == "dynamodb" else None,
            options.region,
        )
        self.api_port: int | None = None
        self.lambdas: LambdaRuntime | None = None
        self.rules: RulesEngine | None = None
        # The topic rules the engine obeys: the project's, and what the IoT API changed.
        self.topic_rules: TopicRules | None = None
        # The project's IoT policies and those made with CreatePolicy (kept in the state dir).
        self.iot_policies = IotPolicies(self.state_dir, self.names)
        self.cognito: LocalCognito | None = None
        # Every message's steps (infra/local/trace.py), in memory and in the state dir.
        self.trace = TraceLog(
            self.state_dir / TRACE_FILE if options.trace else None, LOCAL_ACCOUNT_ID
        )
        self._trace_flusher: asyncio.Task[None] | None = None
        self._temporary_issued = 0
        # The manifest's tables and streams, and the admin's clients that look for them.
        self._declared: tuple[list[str], list[str]] = ([], [])
        self._admin_client: Any = None
        self._missing: tuple[float, tuple[str, ...]] | None = None
        self._missing_lock: asyncio.Lock | None = None
        self.ready = False

    @property
    def names(self) -> dict[str, str]:
        """The values of the ``{region}``, ``{account}`` and ``{stack}`` placeholders."""
        return {
            "region": self.options.region,
            "account": LOCAL_ACCOUNT_ID,
            "stack": self.options.stack_name,
        }

    @property
    def declared_tables(self) -> list[str]:
        """The manifest's DynamoDB tables (known once the backend has started)."""
        return list(self._declared[0])

    @property
    def stack_file(self) -> Path:
        return self.state_dir / STACK_FILE_NAME

    async def start(self) -> None:
        """Start every component; on any failure stop what did start, then re-raise."""
        # 0700 and every file in it 0600, whatever an older version or a wrapper (up.log) left.
        private_dir(self.state_dir, tree=True)
        raise_open_files_limit()
        quiet_accept_errors(asyncio.get_running_loop())
        # A stale file from a previous run must not look like a ready stack.
        self.stack_file.unlink(missing_ok=True)
        try:
            await self._start_components()
        except BaseException:
            await self.stop()
            raise
        self.ready = True
        self._write_stack_file()
        log.info("local stack ready; stack file %s", self.stack_file)

    async def _start_components(self) -> None:
        opts = self.options
        self.ca = LocalCA.load_or_create(self.state_dir / "ca")
        self.ca.server_certificate(hostnames=("localhost",), ips=("127.0.0.1",))
        # Credentials issued before a restart and not yet expired are registered again here.
        self.cognito = LocalCognito.load_or_create(
            self.state_dir / COGNITO_DIR,
            opts.region,
            self._add_temporary_credential,
            credential_lifetime=opts.cognito_credential_lifetime,
            limits=opts.cognito_limits,
        )
        config = GatewayConfig(
            host=opts.host,
            mqtt_port=opts.mqtt_port,
            mqtts_port=opts.mqtts_port,
            wss_port=opts.wss_port,
            ws_port=opts.ws_port,
            mtls_context=self.ca.server_ssl_context(require_client_cert=True),
            wss_context=self.ca.server_ssl_context(require_client_cert=False),
            region=opts.region,
            limits=opts.limits,
            session_file=self.state_dir / GATEWAY_SESSION_FILE,
            allowed_hosts=opts.allowed_hosts,
        )
        self.authorizer = self._policy_authorizer()
        self.gateway = Gateway(config, credentials=self.credentials, authorizer=self.authorizer)
        # dynalite and kinesalite (Node processes) take the longest to come up: start them
        # alongside the rest.
        node_started = [
            asyncio.ensure_future(self.dynamodb.start()),
            asyncio.ensure_future(self.kinesis.start()),
        ]
        try:
            await self.gateway.start()
            if opts.trace:
                # Before the rules engine's tap: a message's Publish-In entry comes first.
                self.gateway.add_tap(publish_tap(self.trace))
                self._trace_flusher = asyncio.ensure_future(self._flush_trace())
            # A certificate leaving ACTIVE (here or via the CLI) disconnects its connections.
            self._registry_watch = asyncio.ensure_future(
                watch_deactivations(self.registry, self.gateway.disconnect_certificates)
            )
            self.edge = EdgeAPI(
                gateway=self.gateway,
                credentials=self.credentials,
                iam=self.iam,
                region=opts.region,
                health=self._health_status,
                backends=(
                    dynamodb_api.backend(
                        self._dynamodb_endpoint, region=opts.region, account=LOCAL_ACCOUNT_ID
                    ),
                    # Event source pollers hear of each put, to read at once, not next poll.
                    kinesis_api.backend(
                        self._kinesis_endpoint,
                        self._kinesis_written,
                        region=opts.region,
                        account=LOCAL_ACCOUNT_ID,
                    ),
                ),
                allowed_hosts=opts.allowed_hosts,
                limits=opts.http_limits,
            )
            self.edge.add_service(sts_service(self.roles))
            # Rule files are checked before anything runs, so a broken rule stops `iotchat
            # up` with the file and the problem named.
            self.topic_rules = TopicRules(
                self.state_dir, load_rules(opts.rules_dir, self.names), self._apply_rules
            )
            self.edge.add_service(
                iot_service(
                    IotControlPlane(
                        self.registry,
                        self.ca,
                        self.topic_rules,
                        self.iot_policies,
                        opts.host,
                        self.names,
                    )
                )
            )
            # Sign-up and sign-in unsigned; the read and admin calls signed, IAM-checked.
            idp_admin, identity_admin = cognito_admin_services(
                CognitoAdmin(self.cognito, opts.stack_name), opts.region
            )
            cognito_api = CognitoAPI(
                self.cognito,
                identity_admin=self.edge.signed.handler(identity_admin),
                idp_admin=self.edge.signed.handler(idp_admin),
            )
            self.edge.add_target(IDENTITY_TARGET_PREFIX, cognito_api.identity)
            self.edge.add_target(IDP_TARGET_PREFIX, cognito_api.idp)
            self.api_port = await self.edge.start(opts.host, opts.api_port)
            if opts.web_port is not None:
                # Served from the stack file's own view, so the page and the CLI agree.
                self.web = WebServer(
                    lambda: config_from_stack(self.describe()),
                    allowed_hosts=opts.allowed_hosts,
                    limits=web_limits(opts.http_limits),
                    developer=DeveloperPage(
                        StackOverview(self),
                        self.trace,
                        admin_check(ADMIN_ACCESS_KEY_ID, ADMIN_SECRET_ACCESS_KEY),
                    ),
                )
                self.web_port = await self.web.start(opts.host, opts.web_port)
        finally:
            # Never leave a child starting unobserved, whether or not the rest succeeded.
            await asyncio.gather(*node_started, return_exceptions=True)
        for started in node_started:
            started.result()
        await self._start_backend()

    async def _start_backend(self) -> None:
        """Lambda runtime and rules engine: they reach the rest through the edge API."""
        opts = self.options
        assert self.gateway is not None
        endpoint = f"http://{opts.host}:{self.api_port}"
        assert self.topic_rules is not None
        names = self.names
        manifest = Manifest.load(opts.manifest, **names)
        rules = self.topic_rules.definitions()
        self._declared = (manifest.table_names, manifest.stream_names)
        self._admin_client = aws_client_factory(endpoint, opts.region)
        # No keys here: each worker gets its own session of the function's execution role.
        env = {
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": opts.region,
            "AWS_DEFAULT_REGION": opts.region,
        }
        if self.cognito is not None:
            # The commands Lambda checks sign-in tokens with the identity pool (hello).
            env["IDENTITY_POOL_ID"] = self.cognito.identity_pool.pool_id
            env["USER_POOL_PROVIDER"] = self.cognito.user_pool.provider_name
        if manifest.tables:
            dynamodb = aws_client_factory(endpoint, opts.region)("dynamodb")
            created = await asyncio.to_thread(ensure_tables, dynamodb, manifest.tables)
            if created:
                log.info("created DynamoDB tables: %s", ", ".join(created))
        if manifest.streams:
            kinesis = aws_client_factory(endpoint, opts.region)("kinesis")
            created = await asyncio.to_thread(ensure_streams, kinesis, manifest.streams)
            if created:
                log.info("created Kinesis streams: %s", ", ".join(created))
        self.lambdas = LambdaRuntime(
            manifest,
            self.state_dir,
            env,
            retry_delays=opts.lambda_retry_delays,
            region=opts.region,
            account_id=LOCAL_ACCOUNT_ID,
            credentials=self._lambda_credentials,
        )
        await self.lambdas.start()
        # Lambda and CloudWatch Logs on the API endpoint, over the runtime and its log files.
        assert self.edge is not None
        function_role = self.roles.by_file(LAMBDA_ROLE_FILE).arn
        self.edge.add_service(
            lambda_api.service(
                lambda_api.LambdaAPI(self.lambdas, function_role, opts.manifest),
                opts.region,
                LOCAL_ACCOUNT_ID,
            )
        )
        logs = LocalLogs(self.state_dir, manifest.names())
        self.edge.add_service(logs_service(LogsAPI(logs, opts.region, LOCAL_ACCOUNT_ID)))
        self.lambdas.trace = self.trace if opts.trace else None
        # Pollers start before the rules engine, so no record a rule puts is older than them.
        self.event_sources = EventSourceMappings(
            manifest.event_source_mappings,
            self.lambdas,
            # Pollers read the stream as the function's execution role, as on AWS.
            session_clients(endpoint, opts.region),
            self.state_dir,
            region=opts.region,
            account_id=LOCAL_ACCOUNT_ID,
            poll_interval=opts.event_source_poll_interval,
            retry_delay=opts.event_source_retry_delay,
            role_arn=lambda _function: self.roles.by_file(LAMBDA_ROLE_FILE).arn,
        )
        await self.event_sources.start()
        self.rules = RulesEngine(
            rule_services(
                self.gateway,
                self.lambdas,
                endpoint,
                opts.region,
                LOCAL_ACCOUNT_ID,
                # Each action acts as its roleArn, decided by the stack's one IAM authorizer.
                RuleAccess(self.roles, self.iam, self.role_sessions),
                aws_json=self.direct_json,
            )
        )
        self.rules.load(rules)
        self.rules.trace = self.trace if opts.trace else None
        # Rule work in flight holds publishers back when saturated (docs/gateway.md).
        self.rules.work = self.gateway.broker.hold.work
        self.gateway.add_tap(self.rules.on_publish)

    async def _flush_trace(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            self.trace.flush()

    def _apply_rules(self, definitions: list[RuleDefinition]) -> None:
        """Run a changed rule set (IoT API) in the engine; raises if a rule does not compile."""
        if self.rules is not None:
            self.rules.load(definitions)

    def _lambda_credentials(self, spec: FunctionSpec) -> RoleCredentials:
        """A new session of the function's execution role, named after the function (every
        chat function runs as ``<stack>-backend-lambda``, as the template makes it)."""
        role = self.roles.by_file(LAMBDA_ROLE_FILE)
        return self.role_sessions.issue(role, spec.name, lifetime=LAMBDA_CREDENTIAL_LIFETIME)

    def _policy_authorizer(self) -> PolicyAuthorizer:
        """Policy files decide; attachments come from Cognito (identities) and the registry
        (certificates), and any change to them drops the cached decisions."""
        assert self.cognito is not None
        attachments = self.cognito.attachments
        registry = self.registry

        def attached(target: str) -> list[str]:
            return [*attachments.list_attached(target), *registry.attached_policies(target)]

        authorizer = PolicyAuthorizer(
            roles=self.roles,
            attached_policies=attached,
            connection_attributes=lambda principal, client_id: registry.connection_attributes(
                principal.identifier, client_id
            ),
            created_policy=self.iot_policies.policy,
        )
        loop = asyncio.get_running_loop()

        def invalidate(*_: object) -> None:
            loop.call_soon_threadsafe(authorizer.invalidate)

        attachments.on_change(invalidate)
        registry.on_change.append(invalidate)
        self.iot_policies.on_change.append(invalidate)
        return authorizer

    def _add_temporary_credential(self, credential: Credential) -> None:
        """Register a temporary key (GetCredentialsForIdentity, a role session); now and then
        drop long-expired ones."""
        self.static_credentials.add(credential)
        self._temporary_issued += 1
        if self._temporary_issued % PRUNE_EVERY == 0:
            cutoff = time.time() - EXPIRED_CREDENTIAL_GRACE
            stale = [
                key
                for key, held in self.static_credentials.credentials.items()
                if held.expires_at is not None and held.expires_at < cutoff
            ]
            for key in stale:
                del self.static_credentials.credentials[key]

    def _dynamodb_endpoint(self) -> Path | None:
        """dynalite's Unix socket while it runs."""
        return self.dynamodb.socket_path if self.dynamodb.running else None

    def _kinesis_endpoint(self) -> Path | None:
        """kinesalite's Unix socket while it runs."""
        return self.kinesis.socket_path if self.kinesis.running else None

    def _kinesis_written(self, stream_name: str) -> None:
        if self.event_sources is not None:
            self.event_sources.records_put(stream_name)

    async def _health_status(self) -> Health:
        components = {
            "gateway": "ok" if self.gateway is not None else "starting",
            "dynamodb": "ok" if self.dynamodb.running else "down",
            "kinesis": "ok" if self.kinesis.running else "down",
            "lambda": "ok" if self.lambdas is not None else "starting",
            "rules": "ok" if self.rules is not None else "starting",
        }
        if self.options.web_port is not None:
            components["web"] = "ok" if self.web_port is not None else "starting"
        healthy = self.ready and all(state == "ok" for state in components.values())
        problems = await self._missing_declared() if healthy else ()
        # The gateway's counters: drops, refusals, backpressure (docs/gateway.md).
        metrics = self.gateway.counters() if self.gateway is not None else {}
        return Health(healthy, components, problems, metrics)

    async def _missing_declared(self) -> tuple[str, ...]:
        """What the manifest declares but DynamoDB or Kinesis no longer has (an admin's
        DeleteTable, say), one reason each; looked up at most every few seconds."""
        if self._missing_lock is None:
            self._missing_lock = asyncio.Lock()
        async with self._missing_lock:
            now = time.monotonic()
            if self._missing is None or now - self._missing[0] >= DECLARED_CHECK_TTL:
                self._missing = (now, await asyncio.to_thread(self._look_for_declared))
            return self._missing[1]

    def _look_for_declared(self) -> tuple[str, ...]:
        tables, streams = self._declared
        if self._admin_client is None or not (tables or streams):
            return ()
        reasons: list[str] = []
        try:
            if tables:
                pages = self._admin_client("dynamodb").get_paginator("list_tables").paginate()
                existing = {name for page in pages for name in page.get("TableNames", [])}
                reasons += [f"DynamoDB table {t} is missing" for t in tables if t not in existing]
            if streams:
                pages = self._admin_client("kinesis").get_paginator("list_streams").paginate()
                existing = {name for page in pages for name in page.get("StreamNames", [])}
                reasons += [f"Kinesis stream {s} is missing" for s in streams if s not in existing]
        except Exception as exc:  # the emulator is restarting: its component says so
            log.debug("could not look for the declared tables and streams: %s", exc)
            return ()
        return tuple(reasons)

    def describe(self) -> dict[str, Any]:
        """The stack file's content (the same shape ``iotchat deploy`` writes for AWS)."""
        assert self.gateway is not None and self.ca is not None and self.cognito is not None
        ports = self.gateway.ports
        host = self.options.host
        return {
            "kind": "local",
            "stackName": self.options.stack_name,
            "region": self.options.region,
            "accountId": LOCAL_ACCOUNT_ID,
            "iot": {
                "host": host,
                "wssPort": ports["wss"],
                "mqttsPort": ports["mqtts"],
                "mqttPort": ports["mqtt"],
                **({"wsPort": ports["ws"]} if "ws" in ports else {}),
                "caFile": str(self.ca.ca_path),
            },
            "api": {"endpoint": f"http://{host}:{self.api_port}"},
            # DynamoDB is served through the edge API, like every other AWS API of the stack.
            "dynamodb": {"endpoint": f"http://{host}:{self.api_port}"},
            "kinesis": {"endpoint": f"http://{host}:{self.api_port}"},
            "cognito": self.cognito.describe(),
            **({"web": {"url": f"http://{host}:{self.web_port}/"}} if self.web_port else {}),
            "admin": {
                "accessKeyId": ADMIN_ACCESS_KEY_ID,
                "secretAccessKey": ADMIN_SECRET_ACCESS_KEY,
            },
        }

    def _write_stack_file(self) -> None:
        # 0600: it names the admin's keys (test/test locally, but still nobody else's business).
        write_atomic(self.stack_file, (json.dumps(self.describe(), indent=2) + "\n").encode())

    async def _drain_backend(self, timeout: float = 30.0) -> None:
        """Let rule actions and the asynchronous invocations they queued finish (and the
        rules those invocations trigger), within ``timeout``."""
        for _ in range(2):
            if self.rules is not None:
                await self.rules.drain(timeout=timeout / 2)
            if self.lambdas is not None:
                try:
                    await self.lambdas.drain(timeout=timeout / 2)
                except TimeoutError as exc:
                    log.warning("stopping with Lambda work unfinished: %s", exc)

    async def stop(self) -> None:
        self.ready = False
        self.stack_file.unlink(missing_ok=True)
        if self._registry_watch is not None:
            self._registry_watch.cancel()
        # The gateway goes first: closing its connections emits their disconnected events,
        # and the rules and Lambdas must still be there to record them (otherwise whoever was
        # connected would still be "online" after a restart). Lambdas publish through the
        # edge API to the stopped gateway, which simply has nobody left to deliver to.
        if self.gateway is not None:
            await self.gateway.stop()
        await self._drain_backend()
        if self.gateway is not None:
            # Again, now that the drained rules' last republishes reached the offline sessions.
            self.gateway.save_sessions()
        # Pollers read through the edge API and invoke the runtime: they stop before both.
        if self.event_sources is not None:
            await self.event_sources.stop()
        if self.web is not None:
            await self.web.stop()
        if self.edge is not None:
            await self.edge.stop()
        if self.cognito is not None:
            await asyncio.to_thread(self.cognito.close)
        if self.lambdas is not None:
            await self.lambdas.stop()
        await self.direct_json.close()
        await asyncio.gather(self.dynamodb.stop(), self.kinesis.stop())
        if self._trace_flusher is not None:
            self._trace_flusher.cancel()
        self.trace.close()


async def run_until_signalled(
    options: StackOptions, on_ready: Callable[[LocalStack], None] | None = None
) -> None:
    """Run the stack in the foreground until SIGINT or SIGTERM.

    The state dir's lock comes first (:mod:`.state_lock`: a second stack on the same dir
    raises ``StackAlreadyRunning`` having changed nothing), then the fixed ports are checked
    (``PortInUse`` names the option), then the stack starts; ``on_ready`` runs once it serves.
    """
    # What the stack and its children (dynalite, kinesalite, Lambda workers) create later is
    # private too, whoever creates it.
    os.umask(PRIVATE_UMASK)
    lock = StateDirLock(options.state_dir.resolve())
    lock.acquire()
    try:
        check_ports(options.host, options.fixed_ports())
        stack = LocalStack(options)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stack.start()
        try:
            web = stack.describe().get("web", {}).get("url")
            lock.record(web_url=web)
            if on_ready is not None:
                on_ready(stack)
            await stop.wait()
        finally:
            log.info("stopping")
            await stack.stop()
    finally:
        lock.release()
