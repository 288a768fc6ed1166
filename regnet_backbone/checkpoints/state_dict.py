"""State dicts inside checkpoint files: finding them, their prefixes, their shapes, comparing them.

One rule for every reader of a file (conversion, ``load_pretrained``, the Runner's strict loading,
whole-model translation, the checkpoint hook): the tensors are the file itself or the first of
:data:`WRAPPERS` holding a dict of tensors, and a ``module.`` prefix (DataParallel / DDP) is
removed from every name that has one, as mmengine's loader does.
"""
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Tuple, Union

import torch

from .errors import UnknownFormatError

#: Dict keys under which checkpoints nest their state dict, tried in this order (mmengine,
#: pycls, others).
WRAPPERS = ('state_dict', 'model_state', 'model')
#: What DataParallel and DistributedDataParallel put before every name.
WRAPPER_PREFIX = 'module.'
#: Where detectors, segmentors and classifiers keep their backbone.
BACKBONE_PREFIX = 'backbone.'
#: Examples of each kind of mismatch named in a message.
EXAMPLES = 3

Shapes = Dict[str, Tuple[int, ...]]


def is_state_dict(obj: Any) -> bool:
    """A non-empty dict of tensors under string names."""
    return isinstance(obj, Mapping) and bool(obj) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def find_state_dict(obj: Any) -> Dict[str, torch.Tensor]:
    """The dict of tensors in a loaded checkpoint: the object itself or the first of
    :data:`WRAPPERS` that holds one (the same object, not a copy, so it can be edited in place).

    Raises ``UnknownFormatError`` when there is none.
    """
    if is_state_dict(obj):
        return obj
    if isinstance(obj, Mapping):
        for key in WRAPPERS:
            if is_state_dict(obj.get(key)):
                return obj[key]
        keys = ', '.join(map(str, list(obj)[:6]))
        raise UnknownFormatError(
            f'found no state dict in the checkpoint (top-level keys: {keys or "none"}); '
            f'expected tensors at the top level or under {", ".join(WRAPPERS)}.')
    raise UnknownFormatError(f'the checkpoint holds a {type(obj).__name__}, not a dict of '
                             f'tensors; pass a model checkpoint.')


def strip_wrapper_prefix(state_dict: Mapping[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """A copy of ``state_dict`` without the ``module.`` prefix on any name that has it."""
    return {(k[len(WRAPPER_PREFIX):] if k.startswith(WRAPPER_PREFIX) else k): v
            for k, v in state_dict.items()}


def model_state_dict(obj: Any) -> Dict[str, torch.Tensor]:
    """The model's tensors in a loaded checkpoint (:func:`find_state_dict`), without ``module.``."""
    return strip_wrapper_prefix(find_state_dict(obj))


def select_prefix(state_dict: Mapping[str, torch.Tensor], prefix: str) -> Dict[str, torch.Tensor]:
    """The tensors whose names start with ``prefix``, prefix removed: mmengine's
    ``init_cfg=dict(type='Pretrained', prefix='backbone.')``. ``UnknownFormatError`` when none."""
    picked = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if not picked:
        raise UnknownFormatError(f'no tensor name starts with prefix {prefix!r} (e.g. '
                                 f'{", ".join(list(state_dict)[:3])}); fix the prefix.')
    return picked


def is_runner_checkpoint(obj: Any) -> bool:
    """Whether a loaded file is what mmengine's ``Runner.save_checkpoint`` writes."""
    return (isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping)
            and isinstance(obj.get('meta'), Mapping)
            and any(k in obj for k in ('message_hub', 'optimizer', 'param_schedulers')))


def shapes(tensors: Union[torch.nn.Module, Mapping[str, torch.Tensor]]) -> Shapes:
    """Names -> shapes of a module's state dict (a module on the meta device works) or of a
    dict of tensors."""
    if isinstance(tensors, torch.nn.Module):
        tensors = tensors.state_dict()
    return {k: tuple(v.shape) for k, v in tensors.items()}


@dataclass
class Mismatch:
    """Names of the target only (``missing``), of the source only (``unexpected``) and of both
    with different shapes (``wrong_shape``, as ``'name [source shape] != [target shape]'``)."""
    missing: List[str]
    unexpected: List[str]
    wrong_shape: List[str]

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.wrong_shape)

    def summary(self) -> str:
        """``'480 missing (a, b, c and 477 more); 12 unexpected (...)'``."""
        parts = []
        for label, items in (('missing', self.missing), ('unexpected', self.unexpected),
                             ('of the wrong shape', self.wrong_shape)):
            if items:
                more = f' and {len(items) - EXAMPLES} more' if len(items) > EXAMPLES else ''
                parts.append(f'{len(items)} {label} ({", ".join(items[:EXAMPLES])}{more})')
        return '; '.join(parts)


def compare(source: Shapes, target: Shapes) -> Mismatch:
    """What keeps tensors of ``source``'s names and shapes from loading strictly into a model
    of ``target``'s (both from :func:`shapes`)."""
    return Mismatch(
        missing=[k for k in target if k not in source],
        unexpected=[k for k in source if k not in target],
        wrong_shape=[f'{k} {list(source[k])} != {list(s)}' for k, s in target.items()
                     if k in source and tuple(source[k]) != tuple(s)])
