"""The local stack's AWS API endpoint (``AWS_ENDPOINT_URL``): one HTTP port for every AWS API.

``server`` routes requests (by ``X-Amz-Target`` or path) and serves iot-data publish and
health, ``backend`` is how forwarded services (DynamoDB, Kinesis) describe themselves, and
``cors`` lets the web app on a loopback origin call it from a browser.
"""
