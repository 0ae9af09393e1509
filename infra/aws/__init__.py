"""Deploying to a real AWS account: the CloudFormation template built from ``iot_rules/``,
``policies/`` and the Lambda manifest (``template/``), the Lambda code zip (``package``), the
web app upload (``web``, from ``client/webapp.py``), deploy and destroy (``deploy``), the
AWS-only sign-in step (``sign_in``) and the cost model (``cost``).

Imports nothing from ``infra/local/``: what the local stack and AWS share lives in the
definition folders and ``client/webapp.py``, so neither side can drift from the other.
"""
