"""Torch modules of the backbone (stem, SE, X block, RegNetBackbone)."""
from .backbone import RegNetBackbone
from .blocks import Downsample, SqueezeExcitation, Stem, XBlock

__all__ = ['RegNetBackbone', 'XBlock', 'Stem', 'SqueezeExcitation', 'Downsample']
