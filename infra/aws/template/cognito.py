"""Cognito (user pool, app client, identity pool and its roles) and the AWS-only sign-in step
(``infra/aws/sign_in.py``), which attaches the user IoT policy to a signed-in identity.
"""

from __future__ import annotations

from .base import Template, checkov_skip, logical_id, policy_document, service_trust
from .functions import lambda_function
from .suppressions import GUEST_ACCESS, SIGN_IN_ANY, SIGN_IN_DLQ, SIGN_IN_PERMISSIONS

SIGN_IN_HANDLER = "infra.aws.sign_in.handler"
# Units reserved for the sign-in step with ``--reserve-concurrency`` (a cap on what a flood of
# sign-ins may take from the account); none by default.
SIGN_IN_CONCURRENCY = 2


# The chat handle (lambdas/chat/people.py): a string custom attribute, set at sign-up only
# (immutable), 3-32 characters; the local pool declares the same
# (infra/local/cognito/user_pool.py, CUSTOM_ATTRIBUTES). Cognito cannot require a custom
# attribute nor keep it unique, so the chat claims each handle once in its state table.
# https://docs.aws.amazon.com/cognito-user-identity-pools/latest/APIReference/API_SchemaAttributeType.html
HANDLE_SCHEMA = {
    "Name": "handle",
    "AttributeDataType": "String",
    "Mutable": False,
    "Required": False,
    "StringAttributeConstraints": {"MinLength": "3", "MaxLength": "32"},
}


def add_cognito(t: Template) -> None:
    """The user pool, its app client and the identity pool with the guest and user roles."""
    t.add(
        "UserPool",
        {
            "Type": "AWS::Cognito::UserPool",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "UserPoolName": {"Fn::Sub": "${AWS::StackName}-users"},
                "UsernameAttributes": ["email"],
                "Schema": [HANDLE_SCHEMA],
                "AutoVerifiedAttributes": ["email"],
                "UserAttributeUpdateSettings": {
                    "AttributesRequireVerificationBeforeUpdate": ["email"]
                },
                "VerificationMessageTemplate": {"DefaultEmailOption": "CONFIRM_WITH_CODE"},
                "AccountRecoverySetting": {
                    "RecoveryMechanisms": [{"Name": "verified_email", "Priority": 1}]
                },
                "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": False},
                "Policies": {
                    "PasswordPolicy": {
                        "MinimumLength": 8,
                        "RequireUppercase": True,
                        "RequireLowercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": True,
                        "TemporaryPasswordValidityDays": 7,
                    }
                },
                "MfaConfiguration": "OFF",
                "DeletionProtection": "INACTIVE",
            },
        },
    )
    t.add(
        "UserPoolClient",
        {
            "Type": "AWS::Cognito::UserPoolClient",
            "Properties": {
                "ClientName": {"Fn::Sub": "${AWS::StackName}-clients"},
                "UserPoolId": {"Ref": "UserPool"},
                "GenerateSecret": False,
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                "PreventUserExistenceErrors": "ENABLED",
                "EnableTokenRevocation": True,
                "AccessTokenValidity": 60,
                "IdTokenValidity": 60,
                "RefreshTokenValidity": 30,
                "TokenValidityUnits": {
                    "AccessToken": "minutes",
                    "IdToken": "minutes",
                    "RefreshToken": "days",
                },
            },
        },
    )
    t.add(
        "IdentityPool",
        {
            "Type": "AWS::Cognito::IdentityPool",
            "Metadata": checkov_skip(GUEST_ACCESS),
            "Properties": {
                "AllowUnauthenticatedIdentities": True,
                "AllowClassicFlow": False,
                "CognitoIdentityProviders": [
                    {
                        "ClientId": {"Ref": "UserPoolClient"},
                        "ProviderName": {"Fn::GetAtt": ["UserPool", "ProviderName"]},
                        "ServerSideTokenCheck": True,
                    }
                ],
            },
        },
    )
    t.add(
        "IdentityPoolRoles",
        {
            "Type": "AWS::Cognito::IdentityPoolRoleAttachment",
            "Properties": {
                "IdentityPoolId": {"Ref": "IdentityPool"},
                "Roles": {
                    "authenticated": {"Fn::GetAtt": [t.roles["{stack}-user-role"], "Arn"]},
                    "unauthenticated": {"Fn::GetAtt": [t.roles["{stack}-guest-role"], "Arn"]},
                },
            },
        },
    )
    t.output("IdentityPoolId", {"Ref": "IdentityPool"}, "Cognito identity pool")
    t.output("UserPoolId", {"Ref": "UserPool"}, "Cognito user pool")
    t.output("UserPoolClientId", {"Ref": "UserPoolClient"}, "Cognito app client")


def add_sign_in(t: Template) -> None:
    """The AWS-only sign-in step: attach the user IoT policy to a signed-in identity."""
    user_policy = logical_id("iot", "policy", "user")
    t.add(
        "SignInRole",
        {
            "Type": "AWS::IAM::Role",
            "Metadata": checkov_skip(SIGN_IN_ANY, SIGN_IN_PERMISSIONS),
            "Properties": {
                "Description": "iotchat: the sign-in step (infra/aws/sign_in.py)",
                "AssumeRolePolicyDocument": service_trust("lambda.amazonaws.com"),
                "Policies": [
                    {
                        "PolicyName": "sign-in",
                        "PolicyDocument": policy_document(
                            {
                                "Sid": "AttachTheUserPolicy",
                                "Effect": "Allow",
                                "Action": "iot:AttachPolicy",
                                "Resource": "*",
                            },
                            {
                                "Sid": "IdentityFromToken",
                                "Effect": "Allow",
                                "Action": "cognito-identity:GetId",
                                "Resource": {
                                    "Fn::Sub": "arn:${AWS::Partition}:cognito-identity:"
                                    "${AWS::Region}:${AWS::AccountId}:identitypool/"
                                    "${IdentityPool}"
                                },
                            },
                            {
                                "Sid": "OwnLogs",
                                "Effect": "Allow",
                                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                                "Resource": {
                                    "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:"
                                    "${AWS::AccountId}:log-group:/aws/lambda/"
                                    "${AWS::StackName}-sign-in:*"
                                },
                            },
                        ),
                    }
                ],
            },
        },
    )
    function_id = lambda_function(
        t,
        "sign-in",
        handler=SIGN_IN_HANDLER,
        role={"Fn::GetAtt": ["SignInRole", "Arn"]},
        environment={
            "IDENTITY_POOL_ID": {"Ref": "IdentityPool"},
            "USER_POOL_PROVIDER": {"Fn::GetAtt": ["UserPool", "ProviderName"]},
            "USER_POLICY_NAME": {"Ref": user_policy},
        },
        timeout=10,
        memory=128,
        concurrency=SIGN_IN_CONCURRENCY if t.reserve_concurrency else None,
        dead_letters=False,
        skips=(SIGN_IN_DLQ,),
    )
    # The signed-in role may call it; AWS-only, so not part of policies/iam/user-role.json.
    t.allow_on_aws(
        "{stack}-user-role",
        "aws-sign-in",
        "SignInStep",
        "lambda:InvokeFunction",
        {"Fn::GetAtt": [function_id, "Arn"]},
    )
    t.output("SignInFunction", {"Ref": function_id}, "Attaches the user IoT policy")
    t.output("UserPolicyName", {"Ref": user_policy}, "IoT policy of signed-in users")
    t.output(
        "DevicePolicyName",
        {"Ref": logical_id("iot", "policy", "device")},
        "IoT policy for device certificates",
    )
