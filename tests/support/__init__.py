"""Helpers shared by the tests and the benchmarks (which import this package too).

- :mod:`~tests.support.stack`: a local stack or a bare gateway on a thread of the test
  process, and the boto3 client for a stack's edge API;
- :mod:`~tests.support.stack_files`: the rules folder and manifest a test stack reads, and the
  rule actions and tables they are made of;
- :mod:`~tests.support.up_command`: the ``iotchat up`` arguments for a stack in its own process,
  and that process started and stopped around a test;
- :mod:`~tests.support.waiting`: polling with a deadline (``wait_for``, ``wait_until``);
- :mod:`~tests.support.wss_client`: a chat participant's paho connection over a SigV4
  WebSocket that records what it receives;
- :mod:`~tests.support.paho`: paho clients for every transport and protocol of the gateway;
- :mod:`~tests.support.raw_mqtt`: well-formed MQTT packets as bytes, from the project's codec;
- :mod:`~tests.support.cognito`: Cognito guests, users and their credentials;
- :mod:`~tests.support.messages_table`: what the messages table holds for a conversation;
- :mod:`~tests.support.sockets`: whether the server closes a raw socket in time; which TCP
  and Unix sockets a process listens on;
- :mod:`~tests.support.clock`: a clock the test moves by hand;
- :mod:`~tests.support.chat` and :mod:`~tests.support.web`: fixtures for the client library's
  tests and for the web app.

Helpers used by one test folder only stay in that folder.
"""
