"""IoT and IAM policies as data, and the one evaluator that decides requests against them.

``iot/*.json`` and ``iam/*.json`` are the policy documents with ``{region}``, ``{account}`` and
``{stack}`` placeholders (``render`` fills them locally and turns them into ``Fn::Sub`` for
CloudFormation); ``model``, ``conditions``, ``variables`` and ``globs`` parse them into cheap
statements; ``evaluator`` decides a request as AWS IAM and AWS IoT Core do; ``arns`` builds and
reads the ARNs every folder uses; ``matrix`` documents who may do what.

Imports nothing from ``infra/`` or any other folder of the project: ``iot_rules/``,
``lambdas/``, the local stack and the AWS template all build on it.
"""
