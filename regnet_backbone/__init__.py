"""RegNetX/RegNetY backbones for OpenMMLab.

Importing this package registers ``RegNetBackbone``, the ``RegNetPretrained`` initializer, our
hooks and ``RegNetRunner`` in mmengine's root registries, which mmdet's, mmseg's and mmpretrain's
fall back to: ``type='RegNetBackbone'`` builds in their configs (add
``custom_imports=dict(imports=['regnet_backbone'])``) without importing them here.

The package is layered; nothing imports from a layer above it:

* :mod:`regnet_backbone.design`: the design-space math (pure Python, no torch).
* :mod:`regnet_backbone.models`: the torch modules.
* :mod:`regnet_backbone.checkpoints`: pretrained-checkpoint formats and conversion.
* :mod:`regnet_backbone.runtime`: OpenMMLab glue (the Runner, hooks, configs, the train and test commands).
* :mod:`regnet_backbone.apis`, :mod:`regnet_backbone.deploy`: inference and ONNX export.

Above the plugin, and never imported by it:

* :mod:`regnet_backbone.study`: design-space studies on a real recipe (``tools/study.py``).
* :mod:`regnet_backbone.demo`: the synthetic data and pictures of ``make demo``.
"""
from . import checkpoints  # noqa: F401  (registers RegNetPretrained)
from .design import (PRESETS, AnyNetSpec, RegNetParams, adjust_widths_groups, complexity,
                     design_space_violations, find_preset, generate_block_widths, get_preset,
                     in_design_space, resolve_arch)
from .models import RegNetBackbone
from .runtime import hooks as _hooks, runner as _runner  # noqa: F401  (registers them)

__version__ = '0.1.0'

__all__ = [
    'AnyNetSpec', 'RegNetParams', 'RegNetBackbone', 'PRESETS', 'adjust_widths_groups',
    'complexity', 'design_space_violations', 'find_preset', 'generate_block_widths', 'get_preset',
    'in_design_space', 'resolve_arch'
]
