"""The ``iotchat`` command: the one place that reaches into every layer."""
