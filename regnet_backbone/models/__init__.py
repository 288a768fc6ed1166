"""Torch modules of the backbone: ``blocks`` (stem, SE, X block), ``backbone`` (``RegNetBackbone``),
``compat`` (mmdet's and mmpretrain's ``RegNet`` arguments and defaults), ``fusion`` (deploy-mode
conv+BN folding), ``layers`` (conv/norm builders)."""
from .backbone import DEFAULT_ARCH, RegNetBackbone
from .compat import scope_defaults
from .blocks import Downsample, SqueezeExcitation, Stem, XBlock

__all__ = ['DEFAULT_ARCH', 'scope_defaults', 'RegNetBackbone', 'XBlock', 'Stem',
           'SqueezeExcitation', 'Downsample']
