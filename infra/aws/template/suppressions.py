"""Checkov findings the template suppresses, each with the reason it does not apply.

Each is ``(check id, reason)``, attached to a resource with :func:`.base.checkov_skip`; the
tests refuse an empty reason.
"""

from __future__ import annotations

NO_VPC = (
    "CKV_AWS_117",
    "The functions reach only regional AWS APIs (IoT data, DynamoDB, Kinesis); a VPC would add "
    "NAT or endpoint charges and no isolation.",
)
ENV_KMS = (
    "CKV_AWS_173",
    "The environment holds table and endpoint names, no secrets; Lambda encrypts it at rest "
    "with the AWS managed key.",
)
LOG_KMS = (
    "CKV_AWS_158",
    "Log groups are encrypted at rest by CloudWatch Logs by default; the chat logs no message "
    "text, and a customer managed key costs $1 a month per key.",
)
DYNAMO_CMK = (
    "CKV_AWS_119",
    "Tables are encrypted with the AWS managed DynamoDB key (SSE enabled); a customer managed "
    "key costs $1 a month and adds nothing for a chat.",
)
SIGN_IN_DLQ = (
    "CKV_AWS_116",
    "Invoked synchronously by the signed-in client, which sees and retries any error; a "
    "dead-letter queue applies to asynchronous invokes only.",
)
STREAM_DLQ = (
    "CKV_AWS_116",
    "Invoked by the Kinesis event source mapping (retries and bisection configured on the "
    "mapping); a function dead-letter queue applies to asynchronous invokes only.",
)
SIGN_IN_ANY = (
    "CKV_AWS_111",
    "iot:AttachPolicy to a Cognito identity is authorised on Resource '*' (the target is an "
    "identity id, not an ARN); the function attaches only the stack's user policy, to the "
    "identity Cognito derives from the caller's ID token.",
)
SIGN_IN_PERMISSIONS = (
    "CKV_AWS_109",
    "The sign-in step's purpose is iot:AttachPolicy (permissions management); see CKV_AWS_111 "
    "for its scope.",
)
GUEST_ACCESS = (
    "CKV_AWS_366",
    "Guests chat by design (docs/policies.md): the guest role grants only the chat's own "
    "topics, keyed on the identity id Cognito issued.",
)
BUCKET_LOGGING = (
    "CKV_AWS_18",
    "A static web app read only through CloudFront; access logging would need a second bucket "
    "and is left to the operator.",
)
CDN_WAF = (
    "CKV_AWS_68",
    "A web ACL costs at least $5 a month at rest; the distribution serves static files only "
    "(the chat traffic goes to AWS IoT Core, not through CloudFront).",
)
CDN_LOGGING = (
    "CKV_AWS_86",
    "Access logging needs a log bucket with ACLs enabled; left to the operator.",
)
CDN_TLS = (
    "CKV_AWS_174",
    "The default *.cloudfront.net certificate is used (no custom domain), for which "
    "CloudFront fixes the TLS policy; viewers are redirected to HTTPS.",
)
QUEUE_CMK = (
    "CKV_AWS_27",
    "The queue uses SQS managed server-side encryption; a KMS key adds cost and nothing else.",
)
NO_RESERVATION = (
    "CKV_AWS_115",
    "No reserved concurrency by default: Lambda keeps 100 units unreserved, so a reservation "
    "fails the stack on a new or low-quota account; deploy --reserve-concurrency reserves the "
    "manifest's units after checking the account's unreserved concurrency.",
)
