"""The local IoT rules engine: matches each publish, runs the rules SQL, performs the actions.

``engine`` matches publishes against the compiled rules and reports failures to each rule's
error action, ``actions`` holds one class per action type (republish, Lambda, DynamoDB,
Kinesis), ``access`` decides what each action's role may do (IAM, as on AWS), and ``host``
connects the actions to the stack's gateway, Lambda runtime and AWS APIs.
The SQL itself is compiled by :mod:`iot_rules.sql`.
"""
