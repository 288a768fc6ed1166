"""A config for a scaled network (:mod:`regnet_backbone.design.scaling`): the scaled arch, the
channels that follow it, and the image sizes that follow its resolution factor.

* :func:`scaled_config` takes a base mmdet / mmseg / mmpretrain config whose backbone is a
  ``RegNetBackbone`` and builds the config of the scaled network as ``tools/study.py setup``
  builds a trial (:func:`.study.recipe.trial_config`): ``model.backbone.arch`` replaced, ``init_cfg``
  and ``load_from`` removed (no weights exist yet for a new arch) and every neck / head
  ``in_channels`` following the new widths.
* :func:`scale_image_sizes`: where the strategy scales the resolution (r != 1), the pipelines'
  image sizes are multiplied by r and rounded to a multiple of 32 for mmdet and mmseg (the
  backbone's output stride) and of 4 for mmpretrain (pycls's rounding of its train and test
  image sizes, where 32 would undo a small r at 224): ``Resize`` / ``RandomResize`` /
  ``RandomResizedCrop`` / ``ResizeEdge`` ``scale``, ``RandomChoiceResize`` ``scales``,
  ``CenterCrop`` / ``RandomCrop`` ``crop_size`` (integer sizes only: a relative crop is a
  fraction and stays), and a segmentor's ``data_preprocessor.size``.

Library code: nothing here prints; problems raise :class:`~regnet_backbone.runtime.errors.ToolError` subclasses.
"""
import copy
from typing import List, Optional, Tuple

from ..design.scaling import SIZE_MULTIPLE, ScaledArch
from ..runtime.config import codebase_of, load_config
from ..runtime.errors import ToolError
from .recipe import trial_config

#: Image sizes in a scaled config are rounded to a multiple of this, per codebase.
IMAGE_MULTIPLES = {'mmdet': 32, 'mmseg': 32, 'mmpretrain': SIZE_MULTIPLE}
#: Transform type -> the keys that hold its image size.
SIZE_KEYS = {
    'Resize': ('scale', ), 'RandomResize': ('scale', ), 'RandomChoiceResize': ('scales', ),
    'RandomResizedCrop': ('scale', ), 'ResizeEdge': ('scale', ), 'CenterCrop': ('crop_size', ),
    'RandomCrop': ('crop_size', ), 'SegDataPreProcessor': ('size', ),
}


class ScalingConfigError(ToolError, ValueError):
    """The base config cannot take the scaled network."""


def _type_name(node: dict) -> str:
    kind = node.get('type', '')
    kind = kind if isinstance(kind, str) else getattr(kind, '__name__', '')
    return kind.split('.')[-1]


def _scaled_value(value, r: float, multiple: int):
    """Every integer in ``value`` (an int, or nested tuples / lists of ints) times r, rounded to
    a multiple of ``multiple``; floats (relative sizes, ratios) are left as they are."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return max(multiple, round(value * r / multiple) * multiple)
    if isinstance(value, (list, tuple)):
        return type(value)(_scaled_value(v, r, multiple) for v in value)
    return value


def scale_image_sizes(cfg, r: float, multiple: int = 32) -> List[str]:
    """Multiply the image sizes of every transform of ``cfg`` (see :data:`SIZE_KEYS`) by ``r``,
    rounded to multiples of ``multiple``, in place.

    Returns:
        one line per change, e.g. ``'train_dataloader.dataset.pipeline[2] Resize.scale:
        (1333, 800) -> (1440, 864)'``; nothing when ``r == 1``.
    """
    changes: List[str] = []
    if r == 1:
        return changes

    def walk(node, path: str) -> None:
        if isinstance(node, dict):
            kind = _type_name(node)
            for key in SIZE_KEYS.get(kind, ()):
                if key in node:
                    old = node[key]
                    new = _scaled_value(old, r, multiple)
                    if new != old:
                        node[key] = new
                        changes.append(f'{path} {kind}.{key}: {old} -> {new}')
            for key, value in node.items():
                walk(value, f'{path}.{key}' if path else str(key))
        elif isinstance(node, (list, tuple)):
            for i, value in enumerate(node):
                walk(value, f'{path}[{i}]')

    for key in list(cfg.keys()):
        walk(cfg[key], key)
    return changes


def scaled_config(base_config: str, scaled: ScaledArch,
                  cfg_options: Optional[dict] = None) -> Tuple[object, List[str]]:
    """The config of ``scaled`` built from ``base_config`` (a path).

    Returns:
        ``(cfg, notes)``: an mmengine Config and one line per change beyond the arch (the
        ``in_channels`` that followed, the image sizes that followed r).

    Raises:
        ConfigError: the base config cannot be read; ScalingConfigError: its backbone is not a
        ``RegNetBackbone`` or its heads cannot follow the new widths.
    """
    base = load_config(base_config, cfg_options)
    try:
        cfg, notes = trial_config(base, copy.deepcopy(scaled.arch))
    except ToolError as error:
        raise ScalingConfigError(str(error)) from None
    notes = list(notes)
    multiple = IMAGE_MULTIPLES[codebase_of(cfg)]
    sizes = scale_image_sizes(cfg, scaled.resolution, multiple)
    if sizes:
        notes.append(f'image sizes x r = {scaled.resolution:.4f}, rounded to multiples of '
                     f'{multiple}:')
        notes += [f'  {line}' for line in sizes]
    return cfg, notes
