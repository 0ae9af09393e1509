"""The AWS IoT control plane of the local stack, as the AWS CLI and boto3 reach it.

``service`` holds the operations over the registry, the project's IoT policies and the topic
rules, ``topic_rules`` the rule set the running engine obeys (and what the API changed of it,
kept in the state dir), ``api`` how the API endpoint serves them, ``access`` what IAM must
allow for each, ``errors`` AWS IoT's error codes and statuses.
"""

from .api import service
from .policies import IotPolicies
from .service import IotControlPlane
from .topic_rules import TopicRules

__all__ = ["IotControlPlane", "IotPolicies", "TopicRules", "service"]
