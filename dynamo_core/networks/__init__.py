"""The networks of Dynamo-Depth, with parameter names identical to the released checkpoints."""

from .decoders import DepthDecoder, LiteDepthDecoder, MotionDecoder, PoseDecoder
from .litemono import LiteMonoEncoder
from .resnet import ResnetEncoder

__all__ = ["DepthDecoder", "LiteDepthDecoder", "LiteMonoEncoder", "MotionDecoder", "PoseDecoder", "ResnetEncoder"]
