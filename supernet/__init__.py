"""Once-for-all elastic supernets (MobileNetV3, ResNet-50), their search spaces and tools."""

from .bn_calibration import recalibrate_bn
from .mbv3 import MobileNetV3, OFAMobileNetV3
from .mbv3_space import MBV3Config, MBV3Space
from .ofa_interop import convert_ofa_state_dict, is_ofa_state_dict
from .predictor import AccuracyPredictor
from .profiling import profile
from .registry import build_supernet, list_supernets, register_supernet, supernet_spec
from .resnet import OFAResNet50, ResNet
from .resnet_space import ResNetConfig, ResNetSpace
from .sorting import ChannelPermutations, apply_permutations
from .space import GeneSpace

__all__ = [
    "OFAMobileNetV3",
    "MobileNetV3",
    "MBV3Space",
    "MBV3Config",
    "OFAResNet50",
    "ResNet",
    "ResNetSpace",
    "ResNetConfig",
    "GeneSpace",
    "recalibrate_bn",
    "profile",
    "AccuracyPredictor",
    "ChannelPermutations",
    "apply_permutations",
    "convert_ofa_state_dict",
    "is_ofa_state_dict",
    "register_supernet",
    "list_supernets",
    "supernet_spec",
    "build_supernet",
]
