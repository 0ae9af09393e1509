"""STS's UserId for each kind of caller, as AWS shapes it."""

from __future__ import annotations

from infra.local.sts.api import role_id, user_id


def test_user_ids_by_caller():
    assert user_id("arn:aws:iam::000000000000:root", "000000000000") == "000000000000"
    session = user_id(
        "arn:aws:sts::000000000000:assumed-role/iotchat-guest-role/CognitoIdentityCredentials",
        "000000000000",
    )
    assert session == f"{role_id('iotchat-guest-role')}:CognitoIdentityCredentials"
    assert role_id("iotchat-guest-role").startswith("AROA") and len(role_id("x")) == 21
    assert role_id("a") != role_id("b")
