"""The rclpy (rosidl) Python class of a message type string, for nodes that subscribe by preset.

Node-side only: it imports the built interface packages (``bora_msgs.msg``, ``sensor_msgs.msg``...),
which library code never does (``data/bag_schema.py`` reads the ``.msg`` definitions with rosbags'
own parser instead).
"""

from __future__ import annotations

import importlib

from bora_trainer.data.bag_schema import normalize_type


def import_msg_class(msgtype: str):
    """``pkg/msg/Type`` (or ``pkg/Type``) -> the message class; ImportError/AttributeError if absent."""
    pkg, _, name = normalize_type(msgtype).split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)
