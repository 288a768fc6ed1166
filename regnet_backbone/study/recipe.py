"""A trial's config from the study's base recipe, and how its backbone gets its weights.

:func:`trial_config` copies the base config for one sampled arch: ``model.backbone.arch``
replaced, ``init_cfg`` removed (no pretrained weights exist for a sampled arch), every neck /
head ``in_channels`` following the sampled widths
(:func:`regnet_backbone.runtime.channels.follow_backbone_channels`) and the training seed set
(``randomness.seed``). :func:`default_metric` reads the metric a study ranks by from the
recipe's evaluator.

A base recipe tuned for fine-tuning pretrained weights (mmdet's Mask R-CNN 1x:
``frozen_stages=1``, ``norm_eval=True``) would train random weights with its stem frozen at
initialisation and BatchNorm held at its initial statistics (mean 0, variance 1), so it never
normalises. A study therefore names how each trial starts (``init``):

* ``recipe``: the base recipe as written, from random weights. Only for a recipe that already
  trains everything (:func:`untrained_weights` finds nothing); any other is refused.
* ``scratch``: :func:`train_everything`: nothing frozen (``frozen_stages=-1``),
  ``norm_eval=False``, every backbone and neck norm trainable (``requires_grad=True``). BN
  becomes SyncBN: mmengine reverts SyncBN to BN when a run is not distributed, so a trial uses
  SyncBN exactly when it runs under a distributed launcher, and BN otherwise. GN stays GN. The
  schedule is not changed.
* ``pretrain``: two stages per trial: the sampled backbone is first trained by an mmpretrain
  classification recipe, converted, and the base recipe then fine-tunes from that file with its
  own ``frozen_stages`` / ``norm_eval`` (right for pretrained weights).

:func:`build_backbone` builds a trial's backbone on PyTorch's meta device (no memory, no
initialisation), so that a study can drop sampled archs its recipe's norm cannot build (e.g.
GroupNorm with 32 groups and a 104-channel stage) before any trial is written.

The recipe checks (:func:`untrained_weights`, :func:`build_backbone`)
return what they found and raise nothing for a bad recipe: the setup stage (:mod:`.prepare`)
decides what to refuse.
"""
import copy
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

from ..runtime.channels import BACKBONE_TYPE, follow_backbone_channels
from .layout import StudyError

INITS = ('recipe', 'scratch', 'pretrain')
#: mmcv's names of BatchNorm layers (``norm_eval`` freezes their statistics).
BN_TYPES = ('BN', 'BN1d', 'BN2d', 'BN3d', 'SyncBN', 'MMSyncBN', 'NaiveSyncBN')
SYNC_BN = 'SyncBN'


def backbone_default(name: str, scope: Optional[str] = None):
    """The value ``RegNetBackbone`` gives argument ``name`` when a config leaves it out, under
    the config's default ``scope`` (mmpretrain's ``norm_eval`` is False, mmdet's True)."""
    import inspect

    from ..models import RegNetBackbone, scope_defaults
    defaults = scope_defaults(scope)
    if name in defaults:
        return defaults[name]
    return inspect.signature(RegNetBackbone).parameters[name].default


def _norm_type(norm_cfg) -> str:
    kind = (norm_cfg or {}).get('type', '')
    return kind if isinstance(kind, str) else getattr(kind, '__name__', str(kind))


def is_batch_norm(norm_cfg) -> bool:
    """Whether ``norm_cfg`` (an mmcv norm config) builds a BatchNorm (BN, SyncBN, ...)."""
    return _norm_type(norm_cfg) in BN_TYPES


def untrained_weights(cfg) -> List[str]:
    """What ``cfg``'s backbone would leave at its random initialisation when trained without
    pretrained weights: one phrase per setting (``'frozen_stages=1'``, ``'norm_eval=True with
    BN'``, ``'norm_cfg requires_grad=False'``); empty when everything trains. RegNetBackbone's
    defaults under the config's scope count (:func:`backbone_default`: ``norm_eval`` is True in
    mmdet and mmseg configs and False in mmpretrain's unless the config says otherwise)."""
    backbone = cfg.get('model', {}).get('backbone') or {}
    scope = cfg.get('default_scope')
    found = []

    def setting(name):
        value = backbone.get(name)
        return backbone_default(name, scope) if value is None else value

    frozen = setting('frozen_stages')
    if isinstance(frozen, int) and frozen >= 0:
        found.append(f'frozen_stages={frozen}')
    norm_cfg = setting('norm_cfg')
    if setting('norm_eval') and is_batch_norm(norm_cfg):
        found.append(f'norm_eval=True with {_norm_type(norm_cfg)}')
    if not (norm_cfg or {}).get('requires_grad', True):
        found.append('norm_cfg requires_grad=False')
    return found


def _trainable_norm(norm_cfg: Optional[dict]) -> dict:
    norm_cfg = dict(norm_cfg if norm_cfg is not None else backbone_default('norm_cfg'))
    if is_batch_norm(norm_cfg):
        norm_cfg['type'] = SYNC_BN
    norm_cfg['requires_grad'] = True
    return norm_cfg


def _necks(model) -> List[Tuple[str, dict]]:
    neck = model.get('neck')
    if isinstance(neck, dict):
        return [('model.neck', neck)]
    if isinstance(neck, (list, tuple)):
        return [(f'model.neck[{i}]', n) for i, n in enumerate(neck) if isinstance(n, dict)]
    return []


def train_everything(cfg) -> List[str]:
    """Make ``cfg`` train its backbone from scratch (``init='scratch'``), in place.

    Backbone: ``frozen_stages=-1``, ``norm_eval=False``, norm ``requires_grad=True`` and BN
    types made SyncBN (which mmengine reverts to BN outside distributed runs). Neck: the same
    for its ``norm_cfg`` when it has one (a neck without norms keeps none). The schedule,
    optimizer and heads are left as they are.

    Returns:
        one ``'KEY: OLD -> NEW'`` line per change (empty when the recipe already trained
        everything the same way).
    """
    model = cfg.model
    backbone = model.backbone
    scope = cfg.get('default_scope')
    changes = []

    def put(node, key, value, where, default):
        old = node.get(key)
        old = default if old is None else old
        if old != value:
            changes.append(f'{where}.{key}: {old} -> {value}')
        node[key] = value

    def put_backbone(key, value):
        put(backbone, key, value, 'model.backbone', backbone_default(key, scope))

    put_backbone('frozen_stages', -1)
    put_backbone('norm_eval', False)
    old_norm = backbone.get('norm_cfg') or backbone_default('norm_cfg')
    put_backbone('norm_cfg', _trainable_norm(old_norm))
    for where, neck in _necks(model):
        if neck.get('norm_cfg') is not None:
            put(neck, 'norm_cfg', _trainable_norm(neck['norm_cfg']), where, None)
    return [c.replace("'", '') for c in changes]


def schedule_of(cfg) -> Dict[str, object]:
    """How long ``cfg`` trains: ``{'max_iters': N}`` or ``{'max_epochs': N}``, plus
    ``dataset_repeats`` when the training set is a ``RepeatDataset`` (mmdet's LSJ recipes: 25
    epochs of a 4x repeated COCO are 100 passes), and ``text``, a phrase for reports
    (``'12 epochs'``, ``'400 iterations'``)."""
    train_cfg = cfg.get('train_cfg') or {}
    out: Dict[str, object] = {}
    if train_cfg.get('max_iters') is not None:
        out['max_iters'] = int(train_cfg['max_iters'])
        text = f'{out["max_iters"]} iteration{"s" if out["max_iters"] != 1 else ""}'
    elif train_cfg.get('max_epochs') is not None:
        out['max_epochs'] = int(train_cfg['max_epochs'])
        text = f'{out["max_epochs"]} epoch{"s" if out["max_epochs"] != 1 else ""}'
        dataset = (cfg.get('train_dataloader') or {}).get('dataset') or {}
        if dataset.get('type') == 'RepeatDataset' and isinstance(dataset.get('times'), int):
            out['dataset_repeats'] = dataset['times']
            text += (f' of a {dataset["times"]}x repeated training set '
                     f'({out["max_epochs"] * dataset["times"]} passes over the data)')
    else:
        text = 'the schedule of the config\'s train_cfg'
    out['text'] = text
    return out


def build_backbone(backbone: dict):
    """Build the ``RegNetBackbone`` of a config's ``model.backbone`` dict on the meta device
    (shapes only: no memory, no initialisation, no file read).

    Returns:
        ``(module, None)``, or ``(None, reason)`` when it cannot be built; ``reason`` is one
        line naming the norm (``'ValueError with norm_cfg GN(num_groups=32):
        num_channels must be divisible by num_groups'``), the same for every arch that fails
        the same way.
    """
    import torch

    from ..models import RegNetBackbone
    kwargs = {k: v for k, v in backbone.items() if k != 'type'}
    kwargs.pop('init_cfg', None)  # never read here; its form is checked when a trial starts
    try:
        with torch.device('meta'):
            return RegNetBackbone(**kwargs), None
    except (ValueError, TypeError, KeyError, AssertionError, RuntimeError) as e:
        text = str(e).strip().splitlines()
        # one reason per kind of failure: torch names the channel count of the layer that
        # failed ("num_channels (104) must be divisible by num_groups (32)"), which varies
        text = re.sub(r'\s*\(\d+\)', '', text[0]) if text else type(e).__name__
        return None, f'{type(e).__name__} with norm_cfg {describe_norm(backbone)}: {text}'


def describe_norm(backbone: dict) -> str:
    """``'GN(num_groups=32)'``, ``'SyncBN'``: the backbone's norm in a few characters."""
    norm_cfg = dict(backbone.get('norm_cfg') or backbone_default('norm_cfg'))
    kind = _norm_type(norm_cfg)
    extra = {k: v for k, v in norm_cfg.items() if k not in ('type', 'requires_grad')}
    return kind + (f'({", ".join(f"{k}={v}" for k, v in extra.items())})' if extra else '')


# --- trial configs --------------------------------------------------------------------------------
def default_metric(cfg) -> str:
    """The validation metric a study ranks by, from the config's evaluator.

    ``coco/bbox_mAP`` (``coco/segm_mAP`` for a segm-only CocoMetric) for mmdet's CocoMetric,
    ``mIoU`` for mmseg's IoUMetric, ``accuracy/top1`` for mmpretrain's Accuracy.
    """
    evaluators = cfg.get('val_evaluator')
    evaluators = evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]
    for ev in evaluators:
        kind = (ev or {}).get('type', '')
        kind = kind.split('.')[-1] if isinstance(kind, str) else getattr(kind, '__name__', '')
        if kind == 'CocoMetric':
            metrics = ev.get('metric', 'bbox')
            metrics = [metrics] if isinstance(metrics, str) else list(metrics)
            return f'coco/{"bbox" if "bbox" in metrics else metrics[0]}_mAP'
        if kind == 'IoUMetric':
            return 'mIoU'
        if kind in ('Accuracy', 'SingleLabelMetric'):
            return 'accuracy/top1'
    raise StudyError('cannot tell the metric from the config\'s val_evaluator '
                     f'({[(e or {}).get("type") for e in evaluators]}); pass --metric KEY')


def absolute_data_paths(cfg, base: str) -> None:
    """Make every relative dataset ``data_root`` and evaluator ``ann_file`` absolute (against
    ``base``), so that a trial config reads the same data from any working directory."""
    def fix(node):
        if isinstance(node, dict):
            for key in ('data_root', 'ann_file'):
                value = node.get(key)
                if isinstance(value, str) and value and '://' not in value and \
                        not osp.isabs(value) and (key == 'data_root' or 'data_root' not in node):
                    node[key] = osp.join(base, value)
            for value in node.values():
                fix(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                fix(value)
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator',
                'test_evaluator'):
        if cfg.get(key) is not None:
            fix(cfg[key])
    datasets = [d for d in [cfg.get('train_dataloader', {}).get('dataset')] if d]
    if isinstance(cfg.get('data_root'), str) and datasets and datasets[0].get('data_root'):
        cfg.data_root = datasets[0]['data_root']  # the top-level variable agrees


def backbone_of(cfg, where: str = "the base config's "):
    """``cfg.model.backbone``; :class:`StudyError` unless it is a ``RegNetBackbone``
    (``where`` begins the message: ``"the base config's "`` or ``'--pretrain CLS.py: '``)."""
    backbone = cfg.get('model', {}).get('backbone')
    if not backbone or backbone.get('type') != BACKBONE_TYPE:
        raise StudyError(f'{where}model.backbone must be type={BACKBONE_TYPE!r}, got '
                         f'{(backbone or {}).get("type")!r}')
    return backbone


def trial_config(base_cfg, arch: dict, *, seed: Optional[int] = None,
                 pretrained: Optional[str] = None):
    """A copy of ``base_cfg`` that trains ``arch``: ``model.backbone.arch`` replaced,
    ``init_cfg`` and ``load_from`` removed, neck / head ``in_channels`` derived.

    Args:
        seed: the training seed, written as ``randomness.seed`` (the base's other
            ``randomness`` keys kept); None keeps the base's.
        pretrained: a converted backbone checkpoint to start from instead (``init_cfg =
            dict(type='Pretrained', checkpoint=pretrained)``), as a two-stage trial's
            fine-tuning does.

    Returns:
        ``(cfg, changes)``: the new mmengine Config and the ``in_channels`` changes made.
    """
    cfg = copy.deepcopy(base_cfg)
    backbone = backbone_of(cfg)
    if cfg.get('arch') is not None and cfg.get('arch') == backbone.get('arch'):
        cfg.arch = copy.deepcopy(arch)  # the base's top-level `arch = ...` variable: no stale name
    backbone['arch'] = copy.deepcopy(arch)
    backbone.pop('init_cfg', None)
    if pretrained:
        backbone['init_cfg'] = dict(type='Pretrained', checkpoint=pretrained)
    cfg.load_from = None
    cfg.resume = False
    if seed is not None:
        cfg.randomness = dict(cfg.get('randomness') or {}, seed=int(seed))
    try:
        changes = follow_backbone_channels(cfg)
    except ValueError as e:
        raise StudyError(f'cannot derive in_channels for arch {arch}: {e}') from None
    return cfg, changes
