"""Whole-model checkpoints: an mmdet detector or mmpretrain classifier built on mmdet's or
mmpretrain's ``RegNet``, translated for the same model built on ``RegNetBackbone``.

Only the backbone's tensors are renamed (mmdet's ``backbone.conv1``, ``backbone.layer1.0.bn1``
... become ``backbone.stem.conv``, ``backbone.layer1.0.norm1`` ...); every neck, head and other
tensor is kept as it is, so the translated model computes what the original computed.

Channel order: a trained detector expects the order its data preprocessor fed while it trained,
whatever its ImageNet initialisation expected (4 of mmdet's RegNet configs feed RGB to pycls's
BGR weights). So the order of a whole-model file is what its training config said
(``bgr_to_rgb`` / ``to_rgb`` in the config text mmengine and mmcv store in ``meta``), or what our
training runs record (``meta['regnet_channel_order']``), else unknown; first convs are never
flipped on a guess.
"""
import os
import re
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import torch

from .convert import STEM_WEIGHT, convert, flip_first_conv, parse_channel_order
from .errors import CheckpointError
from .files import check_output
from .formats import MMDET, OURS, unmatched_keys
from .io import file_sha256, read_checkpoint, write_atomic
from .state_dict import BACKBONE_PREFIX, model_state_dict

#: The first tensor of a backbone in mmdet's names.
_MMDET_STEM = 'conv1.weight'
#: A data preprocessor's conversion flag in a config's text (mmdet/mmseg 3.x, mmpretrain, and
#: mmdet 2.x's ``img_norm_cfg``).
_CONVERSION_FLAG = re.compile(r'\b(?:bgr_to_rgb|to_rgb)\s*=\s*(True|False)\b')


@dataclass
class TranslatedBackbone:
    """One backbone of a whole-model checkpoint.

    Attributes:
        prefix: where it sits in the model (``'backbone.'``).
        source_format: the layout its names were in ('mmdet' or 'regnet_backbone').
        channel_order: the order its first conv now expects ('RGB', 'BGR'), or None when the
            file does not say (a training checkpoint written without the record).
        renamed: how many tensors were renamed.
    """
    prefix: str
    source_format: str
    channel_order: Optional[str]
    renamed: int


def regnet_prefixes(keys: Iterable[str]) -> List[str]:
    """The prefixes (``'backbone.'``) under which ``keys`` hold a RegNetBackbone in our names."""
    return sorted(k[:-len(STEM_WEIGHT)] for k in keys if k.endswith(STEM_WEIGHT))


def mmdet_regnet_prefixes(state_dict: Mapping[str, torch.Tensor]) -> List[str]:
    """The prefixes under which a state dict holds a RegNet in mmdet's names (its stem, its
    first block, and nothing under the prefix that mmdet's RegNet layout lacks)."""
    found = []
    for key in state_dict:
        if not key.endswith(_MMDET_STEM):
            continue
        prefix = key[:-len(_MMDET_STEM)]
        if prefix and not prefix.endswith('.'):
            continue
        if prefix + 'layer1.0.conv1.weight' not in state_dict:
            continue
        sub = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
        if not unmatched_keys(MMDET, sub):
            found.append(prefix)
    return sorted(found)


def translate_model_state_dict(
        state_dict: Mapping[str, torch.Tensor], prefixes: Optional[Iterable[str]] = None,
        channel_orders: Optional[Mapping[str, Optional[str]]] = None,
        file_orders: Optional[Mapping[str, Optional[str]]] = None,
) -> Tuple[Dict[str, torch.Tensor], List[TranslatedBackbone]]:
    """Rename the RegNet backbones of a whole-model state dict to our layout.

    Args:
        state_dict: the model's tensors (a ``module.`` prefix already removed).
        prefixes: where to look for backbones (default: every prefix holding mmdet's RegNet
            names, see :func:`mmdet_regnet_prefixes`, and every one in ours). A prefix whose
            tensors are in neither layout is left alone.
        channel_orders: the order each prefix's first conv must expect (missing or None: keep
            the file's order).
        file_orders: the order each prefix's weights expect, as the file recorded it (missing
            or None: unknown, and then never flipped).

    Returns:
        the translated state dict (same tensor objects, except a flipped first conv) and one
        :class:`TranslatedBackbone` per backbone found.
    """
    channel_orders = dict(channel_orders or {})
    file_orders = dict(file_orders or {})
    mmdet = set(mmdet_regnet_prefixes(state_dict))
    ours = set(regnet_prefixes(state_dict))
    wanted = set(prefixes) if prefixes is not None else mmdet | ours
    out = dict(state_dict)
    found = []
    for prefix in sorted(wanted & (mmdet | ours)):
        order = parse_channel_order(file_orders.get(prefix))
        renamed = 0
        if prefix in mmdet:
            for key in [k for k in out if k.startswith(prefix)]:
                name = MMDET.to_ours(key[len(prefix):])
                if name is None:  # mmdet's classifier of a backbone-only file
                    continue
                out[prefix + name] = out.pop(key)
                renamed += 1
        target = parse_channel_order(channel_orders.get(prefix))
        if target is not None and order is not None and target != order:
            flip_first_conv(out, prefix + STEM_WEIGHT)
            order = target
        elif target is not None and order is None:
            order = target  # the file does not say; the model's declaration stands
        found.append(TranslatedBackbone(prefix, MMDET.name if prefix in mmdet else OURS, order,
                                        renamed))
    return out, found


def trained_channel_order(meta) -> Optional[str]:
    """The order a trained model's data preprocessor fed, read from the config text that
    mmengine (``meta['cfg']``) and mmcv (``meta['config']``) store; None when absent or when the
    text sets both orders."""
    text = next((meta.get(k) for k in ('cfg', 'config') if isinstance(meta.get(k), str)), None)
    if not text:
        return None
    flags = set(_CONVERSION_FLAG.findall(text))
    if len(flags) != 1:
        return None
    return 'RGB' if flags.pop() == 'True' else 'BGR'


def translate_model_checkpoint(obj, channel_order: Optional[str] = None) -> Tuple[dict, List]:
    """A whole mmdet / mmpretrain model checkpoint (a Runner file or ``{'state_dict': ...}``)
    with its RegNet backbones in our names, as ``{'state_dict', 'meta'}``.

    ``channel_order``: the order the model was trained with, when the file's own config text
    does not say (:func:`trained_channel_order`); it is recorded, never applied by a flip.
    ``meta`` keeps the source's meta and records ``regnet_channel_order`` ({prefix: order or
    None}) and ``source_format``. Raises ``CheckpointError`` when the file holds no mmdet-style
    RegNet.
    """
    state_dict = model_state_dict(obj)
    prefixes = [p for p in mmdet_regnet_prefixes(state_dict) if p]
    if not prefixes:
        raise CheckpointError(
            'found no backbone in mmdet\'s RegNet names (backbone.conv1, backbone.layer1.0.conv1, '
            '...); --whole-model translates detectors and classifiers built on mmdet\'s or '
            'mmpretrain\'s RegNet. For a bare backbone drop --whole-model.')
    meta = dict(obj['meta']) if isinstance(obj.get('meta'), Mapping) else {}
    order = parse_channel_order(channel_order) or trained_channel_order(meta)
    translated, found = translate_model_state_dict(state_dict, prefixes,
                                                   file_orders={p: order for p in prefixes})
    meta.update(source_format=MMDET.name, converter='regnet_backbone.checkpoints',
                regnet_channel_order={b.prefix: b.channel_order for b in found})
    return {'state_dict': translated, 'meta': meta}, found


def convert_model_file(input_path: str, output_path: str, channel_order: Optional[str] = None,
                       force: bool = False) -> List[TranslatedBackbone]:
    """Translate the whole-model checkpoint at ``input_path`` (:func:`translate_model_checkpoint`)
    and write ``{'state_dict', 'meta'}`` atomically to ``output_path``; nothing is written on
    any error. The optimizer and scheduler states of a Runner file are dropped (a translated
    model is a starting point or an evaluation, not a run to resume)."""
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    check_output(output_path, force)
    translated, found = translate_model_checkpoint(read_checkpoint(input_path), channel_order)
    translated['meta'].update(source_file=os.path.basename(input_path),
                              source_sha256=file_sha256(input_path))
    write_atomic(translated, output_path, force=force)
    return found


def describe_contents(state_dict: Mapping[str, torch.Tensor]) -> Optional[str]:
    """What a state dict holds, when it can be told: ``'a model whose backbone is regnetx_400mf
    (...)'`` or ``'a bare RegNet backbone, regnetx_3.2gf (...)'``; None otherwise."""
    prefixed = any(isinstance(k, str) and k.startswith(BACKBONE_PREFIX) for k in state_dict)
    try:
        converted = convert(dict(state_dict), check=False)
    except (CheckpointError, ValueError, KeyError, IndexError):
        return None
    what = converted.architecture.describe()
    if prefixed:
        return f'a model whose backbone is {what}'
    return f'a bare RegNet backbone ({converted.source_format} names), {what}'
