"""iot_rules package."""
