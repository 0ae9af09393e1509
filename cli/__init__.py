"""The ``iotchat`` command: the one place that reaches into every layer.

It imports the client library (client/), the local stack and the AWS deployment (infra/), the
rules (iot_rules/), the Lambda manifest (lambdas/) and the benchmarks, each only inside the
command that needs it, so ``iotchat --help`` stays fast. One module per command group:

- :mod:`cli.main`: the typer app; registers every command in the order ``--help`` lists them
- :mod:`cli.options`: ``--stack-file`` and ``--verbose``, shared by several groups
- :mod:`cli.stack`: ``up`` and ``logs``, the local stack
- :mod:`cli.chat`: ``send``, ``listen``, ``chat``, ``signup``, ``login``, ``logout``
- :mod:`cli.terminal`: the work behind those chat commands, and the one-line event format
- :mod:`cli.interactive`: the interactive ``chat`` (prompt_toolkit)
- :mod:`cli.rules`: ``rules check|eval``
- :mod:`cli.devices`: ``device create|revoke``, locally or on AWS
- :mod:`cli.edge`: ``edge run|package`` (the component itself is client/edge/)
- :mod:`cli.aws`: ``template``, ``deploy``, ``outputs``, ``destroy``, ``cost``
- :mod:`cli.bench`: ``bench``
"""
