"""The design-space layer: pure Python (NumPy for the fit), no torch.

* :mod:`.space`: what to build (:class:`AnyNetSpec`) and the AnyNetX_A..E constraints.
* :mod:`.regnet`: the quantized linear rule that generates RegNets.
* :mod:`.complexity`: flops, params and activations in pycls's convention.
* :mod:`.presets` and :mod:`.summary`: the named models (the zoo) and their summaries.
* :mod:`.sampling`: seeded samplers of the paper's design spaces under a complexity window.
* :mod:`.fit`: the quantized linear fit (e_fit) of any network's block widths.
* :mod:`.results`: a study's ``results.json`` and metric-to-error conversion.
"""
from .complexity import complexity
from .fit import FitResult, block_widths_of, fit_regnet
from .presets import PRESETS, Preset, find_preset, get_preset, resolve_arch
from .regnet import (RegNetParams, adjust_widths_groups, generate_block_widths,
                     group_blocks_into_stages, spec_from_dict)
from .results import errors_for, load_results, metric_to_error
from .sampling import SPACES, Sample, SamplingError, sample
from .space import AnyNetSpec, design_space_violations, in_design_space

__all__ = [
    'AnyNetSpec', 'FitResult', 'PRESETS', 'Preset', 'RegNetParams', 'SPACES', 'Sample',
    'SamplingError', 'adjust_widths_groups', 'block_widths_of', 'complexity',
    'design_space_violations', 'errors_for', 'find_preset', 'fit_regnet', 'generate_block_widths',
    'get_preset', 'group_blocks_into_stages', 'in_design_space', 'load_results',
    'metric_to_error', 'resolve_arch', 'sample', 'spec_from_dict'
]
