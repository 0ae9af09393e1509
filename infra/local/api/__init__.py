"""The local stack's AWS API endpoint (``AWS_ENDPOINT_URL``): one HTTP port for every AWS API."""
