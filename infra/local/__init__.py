"""Everything the local stack runs: one folder per emulated AWS service, plus what they share.

Services: ``gateway`` (AWS IoT Core's device gateway), ``rules`` (the IoT rules engine),
``lambda_runtime``, ``cognito``, ``registry`` (IoT certificates and things), ``dynamodb`` and
``kinesis`` (Node emulators), ``api`` (the ``AWS_ENDPOINT_URL`` endpoint) and ``web`` (the web
app's server). Shared: ``identity`` (principals and credentials), ``iam`` (roles and their
policies), ``sigv4``, ``ca``, ``http`` (aiohttp serving), ``state_files`` and
``node_service``. ``stack`` wires them into what ``iotchat up`` runs.
"""
