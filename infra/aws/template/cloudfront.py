"""The web app on AWS: a private, versioned bucket read only through CloudFront, with the
app's own Content-Security-Policy (``client/webapp.py``) and the other security headers.
"""

from __future__ import annotations

from client.webapp import content_security_policy

from .base import Template, checkov_skip, policy_document
from .suppressions import BUCKET_LOGGING, CDN_LOGGING, CDN_TLS, CDN_WAF

# CloudFront is global: origin access control and response headers policy names are unique in
# the account, not per region (CreateOriginAccessControl and CreateResponseHeadersPolicy fail
# with ...AlreadyExists, https://docs.aws.amazon.com/cloudfront/latest/APIReference/
# API_CreateOriginAccessControl.html), so the name carries the region as well as the stack.
GLOBAL_NAME = "${AWS::StackName}-${AWS::Region}-web"

# Managed CloudFront policies (ids are fixed by AWS).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"


def web_csp() -> str:
    """The web app's Content-Security-Policy as an ``Fn::Sub`` string: the app's own policy
    (the one the local server sends) for an AWS config, plus the Lambda endpoint the sign-in
    step calls."""
    policy = content_security_policy(
        {"region": "${AWS::Region}", "iot": {"url": "wss://${IotDataEndpoint}/mqtt"}}
    )
    return policy.replace(
        "connect-src ", "connect-src https://lambda.${AWS::Region}.amazonaws.com ", 1
    )


def add_web(t: Template) -> None:
    """The private bucket, CloudFront in front of it, and the security headers."""
    t.add(
        "WebBucket",
        {
            "Type": "AWS::S3::Bucket",
            "DeletionPolicy": "Delete",
            "UpdateReplacePolicy": "Delete",
            "Metadata": checkov_skip(BUCKET_LOGGING),
            "Properties": {
                "BucketEncryption": {
                    "ServerSideEncryptionConfiguration": [
                        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
                    ]
                },
                "PublicAccessBlockConfiguration": {
                    "BlockPublicAcls": True,
                    "BlockPublicPolicy": True,
                    "IgnorePublicAcls": True,
                    "RestrictPublicBuckets": True,
                },
                "OwnershipControls": {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]},
                "VersioningConfiguration": {"Status": "Enabled"},
                "Tags": [{"Key": "iotchat:stack", "Value": {"Ref": "AWS::StackName"}}],
            },
        },
    )
    t.add(
        "WebOriginAccess",
        {
            "Type": "AWS::CloudFront::OriginAccessControl",
            "Properties": {
                "OriginAccessControlConfig": {
                    "Name": {"Fn::Sub": GLOBAL_NAME},
                    "Description": "CloudFront reads the private web bucket",
                    "OriginAccessControlOriginType": "s3",
                    "SigningBehavior": "always",
                    "SigningProtocol": "sigv4",
                }
            },
        },
    )
    t.add(
        "WebHeaders",
        {
            "Type": "AWS::CloudFront::ResponseHeadersPolicy",
            "Properties": {
                "ResponseHeadersPolicyConfig": {
                    "Name": {"Fn::Sub": GLOBAL_NAME},
                    "SecurityHeadersConfig": {
                        "ContentSecurityPolicy": {
                            "ContentSecurityPolicy": {"Fn::Sub": web_csp()},
                            "Override": True,
                        },
                        "ContentTypeOptions": {"Override": True},
                        "FrameOptions": {"FrameOption": "DENY", "Override": True},
                        "ReferrerPolicy": {"ReferrerPolicy": "no-referrer", "Override": True},
                        "StrictTransportSecurity": {
                            "AccessControlMaxAgeSec": 63072000,
                            "IncludeSubdomains": True,
                            "Override": True,
                        },
                    },
                    "CustomHeadersConfig": {
                        "Items": [
                            {
                                "Header": "Cross-Origin-Opener-Policy",
                                "Value": "same-origin",
                                "Override": True,
                            },
                            {
                                "Header": "Cross-Origin-Resource-Policy",
                                "Value": "same-origin",
                                "Override": True,
                            },
                        ]
                    },
                }
            },
        },
    )
    behaviour = {
        "TargetOriginId": "web",
        "ViewerProtocolPolicy": "redirect-to-https",
        "AllowedMethods": ["GET", "HEAD"],
        "CachedMethods": ["GET", "HEAD"],
        "Compress": True,
        "ResponseHeadersPolicyId": {"Ref": "WebHeaders"},
    }
    t.add(
        "WebDistribution",
        {
            "Type": "AWS::CloudFront::Distribution",
            "Metadata": checkov_skip(CDN_WAF, CDN_LOGGING, CDN_TLS),
            "Properties": {
                "DistributionConfig": {
                    "Enabled": True,
                    "Comment": {"Fn::Sub": "iotchat ${AWS::StackName} web app"},
                    "DefaultRootObject": "index.html",
                    "HttpVersion": "http2and3",
                    "IPV6Enabled": True,
                    "PriceClass": "PriceClass_100",
                    "Origins": [
                        {
                            "Id": "web",
                            "DomainName": {"Fn::GetAtt": ["WebBucket", "RegionalDomainName"]},
                            "S3OriginConfig": {"OriginAccessIdentity": ""},
                            "OriginAccessControlId": {"Fn::GetAtt": ["WebOriginAccess", "Id"]},
                        }
                    ],
                    "DefaultCacheBehavior": {**behaviour, "CachePolicyId": CACHING_OPTIMIZED},
                    "CacheBehaviors": [
                        {
                            **behaviour,
                            "PathPattern": "/config.json",
                            "CachePolicyId": CACHING_DISABLED,
                        }
                    ],
                    "ViewerCertificate": {"CloudFrontDefaultCertificate": True},
                }
            },
        },
    )
    t.add(
        "WebBucketPolicy",
        {
            "Type": "AWS::S3::BucketPolicy",
            "Properties": {
                "Bucket": {"Ref": "WebBucket"},
                "PolicyDocument": policy_document(
                    {
                        "Sid": "CloudFrontReadsThroughOriginAccessControl",
                        "Effect": "Allow",
                        "Principal": {"Service": "cloudfront.amazonaws.com"},
                        "Action": "s3:GetObject",
                        "Resource": {"Fn::Sub": "${WebBucket.Arn}/*"},
                        "Condition": {
                            "StringEquals": {
                                "AWS:SourceArn": {
                                    "Fn::Sub": "arn:${AWS::Partition}:cloudfront::"
                                    "${AWS::AccountId}:distribution/${WebDistribution}"
                                }
                            }
                        },
                    },
                    {
                        "Sid": "TlsOnly",
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [
                            {"Fn::GetAtt": ["WebBucket", "Arn"]},
                            {"Fn::Sub": "${WebBucket.Arn}/*"},
                        ],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    },
                ),
            },
        },
    )
    t.output("WebBucketName", {"Ref": "WebBucket"}, "Private bucket of the web app")
    t.output("WebDistributionId", {"Ref": "WebDistribution"}, "CloudFront distribution")
    t.output(
        "WebUrl",
        {"Fn::Sub": "https://${WebDistribution.DomainName}/"},
        "The web app (HTTPS only)",
    )
