"""Fixtures for tests that chat through a stack of their own (see tests.support.chat)."""

from tests.support.chat import chat_stack, new_client, stack_info

__all__ = ["chat_stack", "new_client", "stack_info"]
