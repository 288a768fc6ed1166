"""The design-space layer: pure Python, no torch.

* :mod:`.space`: what to build (:class:`AnyNetSpec`) and the AnyNetX_A..E constraints.
* :mod:`.regnet`: the quantized linear rule that generates RegNets.
* :mod:`.complexity`: flops, params and activations in pycls's convention.
* :mod:`.presets` and :mod:`.zoo`: the named models and their summaries.
"""
from .complexity import complexity
from .presets import PRESETS, Preset, find_preset, get_preset, resolve_arch
from .regnet import (RegNetParams, adjust_widths_groups, generate_block_widths,
                     group_blocks_into_stages, spec_from_dict)
from .space import AnyNetSpec, design_space_violations, in_design_space

__all__ = [
    'AnyNetSpec', 'PRESETS', 'Preset', 'RegNetParams', 'adjust_widths_groups', 'complexity',
    'design_space_violations', 'find_preset', 'generate_block_widths', 'get_preset',
    'group_blocks_into_stages', 'in_design_space', 'resolve_arch', 'spec_from_dict'
]
