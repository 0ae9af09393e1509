"""The edge component: a device (a Raspberry Pi, a Greengrass core) that takes part in the chat.

The behaviour (:mod:`.agent`) is independent of how the device reaches AWS IoT Core; a transport
carries it either over mutual TLS with the device's own certificate (:mod:`.mtls`) or through the
Greengrass nucleus (:mod:`.ipc`). See docs/edge.md.
"""

COMPONENT_NAME = "com.iotchat.EdgeChat"
COMPONENT_VERSION = "0.1.0"
