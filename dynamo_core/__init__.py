"""dynamo: Dynamo-Depth as a library. Networks, geometry, losses, data, training and evaluation."""

__version__ = "0.1.0"
