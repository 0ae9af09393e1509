"""Stand-ins the chat domain's unit tests share."""

from __future__ import annotations

from typing import Any

from lambdas.chat.protocol import ProtocolError


class Tokens:
    """Stands in for Cognito's GetId: a token names an identity and carries claims."""

    def __init__(self) -> None:
        self.issued: dict[str, tuple[str, dict[str, Any]]] = {}

    def issue(self, identity: str, **claims: Any) -> str:
        token = f"token-{len(self.issued)}"
        self.issued[token] = (identity, {"sub": f"sub-{identity[-4:]}", **claims})
        return token

    def identity_of(self, token: str) -> tuple[str, dict[str, Any]]:
        if token not in self.issued:
            raise ProtocolError("NOT_AUTHORIZED", "the sign-in token was not accepted")
        return self.issued[token]
