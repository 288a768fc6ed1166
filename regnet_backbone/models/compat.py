"""What ``RegNetBackbone`` takes over from mmdet's and mmpretrain's ``RegNet``: the defaults that
differ between the two codebases (chosen by mmengine's default scope, the registry that builds
the module), the arguments a
RegNet has no variant of, and mmdet's per-stage DCN and plugin configs.
"""
import copy
from typing import List, Optional, Sequence

from ..errors import ArchitectureError
from .blocks import PLUGIN_POSITIONS

#: mmdet's ``RegNet`` arguments that a RegNet has no variant of: accepted at their defaults.
MMDET_FIXED = dict(base_channels=32, deep_stem=False, avg_down=False)
#: The arguments whose default differs between mmdet's and mmpretrain's ``RegNet``, per
#: mmengine registry scope: mmdet's (``None``) unless mmpretrain's registry builds the model, so
#: that either codebase's configs migrate by changing only the type. The one table of them.
SCOPE_DEFAULTS = {
    None: dict(out_indices=(0, 1, 2, 3), norm_eval=True),
    'mmpretrain': dict(out_indices=(3, ), norm_eval=False),
}


def scope_defaults(scope: Optional[str]) -> dict:
    """``out_indices`` and ``norm_eval`` defaults for a registry ``scope`` (a config's
    ``default_scope``); mmdet's for ``None`` and any scope without a row of its own."""
    return dict(SCOPE_DEFAULTS[None], **SCOPE_DEFAULTS.get(scope, {}))


def current_scope() -> Optional[str]:
    """The scope mmengine builds in now (``DefaultScope``: the Runner's ``default_scope``, which
    also picks the registry that ``MODELS.build`` searches first); None outside one."""
    from mmengine.registry import DefaultScope
    current = DefaultScope.get_current_instance()
    return current.scope_name if current is not None else None


def stage_dcn(dcn: Optional[dict], stage_with_dcn: Optional[Sequence[bool]], num_stages: int,
               conv_cfg: Optional[dict]) -> List[Optional[dict]]:
    """The DCN conv config of each stage (None: a plain 3x3 conv), mmdet's way."""
    if dcn is None:
        return [None] * num_stages
    if not isinstance(dcn, dict) or 'type' not in dcn:
        raise ArchitectureError(f"dcn must be an mmcv conv config such as dict(type='DCNv2', "
                                f"deform_groups=1), got {dcn!r}.")
    flags = tuple(stage_with_dcn) if stage_with_dcn is not None else (False, ) * num_stages
    if len(flags) != num_stages:
        raise ArchitectureError(
            f'stage_with_dcn {flags} must have one entry per stage; this arch has '
            f'{num_stages} stages.')
    if conv_cfg is not None:
        raise ArchitectureError('conv_cfg must be None with dcn (as in mmdet); drop conv_cfg.')
    cfg = dict(dcn)
    if cfg.pop('fallback_on_stride', False):
        raise ArchitectureError(
            'dcn fallback_on_stride=True is not supported (mmdet applies it to one '
            'block only); set it to False.')
    return [copy.deepcopy(cfg) if flag else None for flag in flags]


def stage_plugins(plugins: Optional[Sequence[dict]], stage: int,
                   num_stages: int) -> List[dict]:
    """The plugins of ``stage`` (mmdet's ``make_stage_plugins``): those without ``stages`` or
    with ``stages[stage]`` true, as ``dict(cfg=..., position=...)``."""
    chosen = []
    for plugin in plugins or ():
        if not isinstance(plugin, dict) or 'cfg' not in plugin or 'position' not in plugin:
            raise ArchitectureError(
                f"each plugin must be dict(cfg=dict(type=...), position=...), got "
                f"{plugin!r}.")
        if plugin['position'] not in PLUGIN_POSITIONS:
            raise ArchitectureError(f"plugin position {plugin['position']!r}: use one of "
                                    f"{', '.join(PLUGIN_POSITIONS)}.")
        stages = plugin.get('stages')
        if stages is not None and len(stages) != num_stages:
            raise ArchitectureError(
                f'plugin stages {tuple(stages)} must have one entry per stage; this '
                f'arch has {num_stages} stages.')
        if stages is None or stages[stage]:
            chosen.append(dict(cfg=plugin['cfg'], position=plugin['position']))
    return chosen
