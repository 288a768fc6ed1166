"""Torch modules of the backbone (stem, SE, X block, RegNetBackbone)."""
from .backbone import DEFAULT_ARCH, SCOPE_DEFAULTS, RegNetBackbone, scope_defaults
from .blocks import Downsample, SqueezeExcitation, Stem, XBlock

__all__ = ['DEFAULT_ARCH', 'SCOPE_DEFAULTS', 'scope_defaults', 'RegNetBackbone', 'XBlock', 'Stem', 'SqueezeExcitation', 'Downsample']
