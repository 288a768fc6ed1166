"""RegNetX/RegNetY backbones for OpenMMLab.

Importing this package registers ``RegNetBackbone`` so that ``type='RegNetBackbone'`` builds in
mmdet, mmseg and mmpretrain configs (add ``custom_imports=dict(imports=['regnet_backbone'])``).
"""
from .complexity import complexity
from .design_space import (AnyNetSpec, RegNetParams, adjust_widths_groups,
                           design_space_violations, generate_block_widths, in_design_space)
from .models import RegNetBackbone
from .presets import PRESETS, find_preset, get_preset, resolve_arch
from .registry import register_modules

__version__ = '0.1.0'

register_modules()

__all__ = [
    'AnyNetSpec', 'RegNetParams', 'RegNetBackbone', 'PRESETS', 'adjust_widths_groups',
    'complexity', 'design_space_violations', 'find_preset', 'generate_block_widths', 'get_preset',
    'in_design_space', 'resolve_arch', 'register_modules'
]
