"""Configs for tools/train.py and test.py: read them, tell mmdet, mmseg and mmpretrain apart,
apply the command-line options the way those codebases' own tools do, and adapt a GPU config to
a machine without CUDA. The neck's and heads' ``in_channels`` follow the backbone's arch.
"""
import logging
import os.path as osp
from typing import List, Optional

from .channels import BACKBONE_TYPE, follow_backbone_channels
from .errors import CheckpointNotFoundError, ConfigError, ToolError
from .hooks import use_regnet_hooks
from .hooks.atomic_checkpoint import use_atomic_checkpoints

CODEBASES = ('mmdet', 'mmseg', 'mmpretrain')


DEMO_HINT = 'or run `make demo` to train on a generated synthetic dataset instead'


#: Config key: True lets ``load_from`` / ``--resume`` / tools/test.py and the backbone's
#: ``Pretrained`` init load a checkpoint that fits the model only partly (a warning, not an error).
PARTIAL_LOAD = 'partial_load'


PRETRAINED_DOC = 'docs/pretrained.md'


def load_config(path: str, cfg_options: Optional[dict] = None):
    """Read an mmengine config file and merge ``--cfg-options`` into it.

    Importing the config's ``custom_imports`` (``regnet_backbone``) registers the backbone.
    """
    from mmengine.config import Config
    if not osp.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    try:
        cfg = Config.fromfile(path)
    # a missing package or _base_, a syntax error, a value that cannot merge with its base
    except (ImportError, SyntaxError, FileNotFoundError, TypeError, KeyError, NameError) as e:
        raise ConfigError(f'cannot read config {path}: {type(e).__name__}: '
                          f'{str(e).splitlines()[0] if str(e) else ""}') from e
    if cfg_options:
        try:
            cfg.merge_from_dict(cfg_options)
        except (TypeError, KeyError, ValueError, AttributeError) as e:
            raise ConfigError(f'--cfg-options cannot be applied to {path}: '
                              f'{str(e).splitlines()[0] if str(e) else type(e).__name__}') from e
    return cfg


def codebase_of(cfg) -> str:
    """``'mmdet'``, ``'mmseg'`` or ``'mmpretrain'``, from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in CODEBASES:
        raise ConfigError(f'unsupported config: default_scope is {scope!r}; tools/train.py and '
                          f'tools/test.py run mmdet, mmseg and mmpretrain configs only.')
    return scope


def registries(scope: str):
    """``(MODELS, DATASETS)`` of a codebase; importing it registers its modules."""
    if scope == 'mmdet':
        from mmdet.registry import DATASETS, MODELS
    elif scope == 'mmseg':
        from mmseg.registry import DATASETS, MODELS
    else:
        from mmpretrain.registry import DATASETS, MODELS
    return MODELS, DATASETS


def _stem(config_path: str) -> str:
    return osp.splitext(osp.basename(config_path))[0]


def _replace_type(node, old: str, new: str):
    """A copy of a nested config with every ``type=old`` replaced by ``type=new``."""
    if isinstance(node, dict):
        return type(node)({k: (new if k == 'type' and v == old else _replace_type(v, old, new))
                           for k, v in node.items()})
    if isinstance(node, (list, tuple)):
        return type(node)(_replace_type(v, old, new) for v in node)
    return node


def adapt_to_machine(cfg, launcher: str, cuda: Optional[bool] = None) -> None:
    """Make a GPU config run where CUDA is absent.

    Without CUDA and with a launcher, processes talk through gloo (nccl needs GPUs), SyncBN
    becomes BN (it has no CPU kernel; mmengine reverts it by itself only when not distributed)
    and DDP wraps a CPU module (no ``device_ids``). With CUDA nothing changes.
    """
    import torch
    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda or launcher == 'none':
        return
    env_cfg = dict(cfg.get('env_cfg') or {})
    env_cfg['dist_cfg'] = dict(env_cfg.get('dist_cfg') or {}, backend='gloo')
    cfg.env_cfg = env_cfg
    cfg.model = _replace_type(cfg.model, 'SyncBN', 'BN')
    cfg.pop('sync_bn', None)
    wrapper = dict(cfg.get('model_wrapper_cfg') or {})
    wrapper.setdefault('type', 'MMDistributedDataParallel')
    wrapper.setdefault('broadcast_buffers', False)
    wrapper.setdefault('find_unused_parameters', cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper


def _log(message: str, level: int = logging.INFO) -> None:
    """One line in mmengine's current logger (stdout before the Runner exists)."""
    from mmengine.logging import print_log
    print_log(message, logger='current', level=level)


def backbone_cfg(cfg) -> Optional[dict]:
    model = cfg.get('model')
    backbone = model.get('backbone') if model else None
    if isinstance(backbone, dict) and backbone.get('type') == BACKBONE_TYPE:
        return backbone
    return None


def pretrained_entries(backbone: dict) -> List[dict]:
    init = backbone.get('init_cfg')
    entries = list(init) if isinstance(init, (list, tuple)) else [init]
    return [e for e in entries if isinstance(e, dict) and e.get('type') == 'Pretrained']


def follow_channels(cfg) -> List[str]:
    """Check the backbone's arguments that the config names and set the neck's / heads'
    ``in_channels`` to the backbone's output channels (:func:`follow_backbone_channels`),
    logging each change. A bad ``arch`` or ``out_indices`` raises :class:`ConfigError`."""
    try:
        changes = follow_backbone_channels(cfg)
    except (ValueError, TypeError, KeyError) as e:
        text = str(e).strip("'\"")
        where = 'model.backbone.arch' if 'arch' in text else 'model.backbone'
        raise ConfigError(f'{where}: {text}') from None
    for change in changes:
        _log(f'in_channels follow the backbone: {change}')
    return changes


def _apply_partial_load(cfg) -> None:
    """``partial_load=True`` reaches the backbone's ``Pretrained`` init as ``strict=False``."""
    backbone = backbone_cfg(cfg)
    if cfg.get(PARTIAL_LOAD) and backbone is not None:
        for entry in pretrained_entries(backbone):
            entry['strict'] = False


def configure_training(cfg, config_path: str, *, work_dir: Optional[str] = None,
                       amp: bool = False, resume: Optional[str] = None,
                       auto_scale_lr: bool = False, launcher: str = 'none') -> None:
    """Apply tools/train.py's options to ``cfg`` in place (mmdet's and mmseg's semantics).

    Args:
        work_dir: output folder; default: the config's ``work_dir``, else
            ``./work_dirs/<config name>``.
        amp: mixed precision (``AmpOptimWrapper`` with a dynamic loss scale).
        resume: None (start fresh, or from ``load_from``), ``'auto'`` (the latest checkpoint in
            the work dir) or a checkpoint path.
        auto_scale_lr: scale the learning rate by (GPUs x batch) / ``auto_scale_lr.base_batch_size``
            (mmdet configs carry that setting; mmseg's do not).
        launcher: ``none``, ``pytorch``, ``slurm`` or ``mpi``.

    Also: the neck's / heads' ``in_channels`` follow the backbone's arch (changes are logged;
    a misspelled arch raises :class:`ConfigError`) and ``partial_load=True`` reaches the
    backbone's ``Pretrained`` init. The files the run will load (pretrained backbone, resume
    checkpoint, ``load_from``) are checked by :func:`train`.
    """
    codebase_of(cfg)
    follow_channels(cfg)
    _apply_partial_load(cfg)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('./work_dirs', _stem(config_path))
    if amp:
        import torch
        if not torch.cuda.is_available():
            raise ToolError('--amp needs a CUDA GPU (mmengine\'s AmpOptimWrapper has no CPU '
                            'mode); drop --amp to train in fp32.')
        if cfg.optim_wrapper.get('type', 'OptimWrapper') != 'AmpOptimWrapper':
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.loss_scale = 'dynamic'
    if resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif resume is not None:
        if not osp.isfile(resume):
            raise CheckpointNotFoundError(f'checkpoint to resume from not found: {resume}')
        cfg.resume, cfg.load_from = True, resume
    elif cfg.get('load_from') and not osp.isfile(cfg.load_from) and '://' not in cfg.load_from:
        raise CheckpointNotFoundError(f'load_from checkpoint not found: {cfg.load_from}')
    if auto_scale_lr:
        setting = cfg.get('auto_scale_lr')
        if not setting or 'base_batch_size' not in setting:
            raise ConfigError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` '
                              f'in the config; {config_path} has none.')
        setting.enable = True
    use_atomic_checkpoints(cfg)
    use_regnet_hooks(cfg)
    adapt_to_machine(cfg, launcher)


def configure_testing(cfg, config_path: str, checkpoint: str, *, work_dir: Optional[str] = None,
                      out: Optional[str] = None, launcher: str = 'none') -> None:
    """Apply tools/test.py's options to ``cfg`` in place.

    Args:
        checkpoint: weights to evaluate (a Runner checkpoint or a bare state dict).
        out: mmdet: a ``.pkl`` file receiving the raw predictions (``DumpDetResults``);
            mmseg: a folder receiving the predicted label maps as PNGs; mmpretrain: a ``.pkl``
            file receiving the predicted scores and labels (mmengine's ``DumpResults``).

    The neck's / heads' ``in_channels`` follow the backbone's arch (changes are logged); the
    checkpoint is checked against the model by :func:`test`.
    """
    codebase = codebase_of(cfg)
    follow_channels(cfg)
    if not osp.isfile(checkpoint):
        raise CheckpointNotFoundError(f'checkpoint not found: {checkpoint}')
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('./work_dirs', _stem(config_path))
    cfg.load_from = checkpoint
    cfg.resume = False
    use_regnet_hooks(cfg)
    if out:
        if codebase in ('mmdet', 'mmpretrain'):
            if not out.endswith(('.pkl', '.pickle')):
                task = 'detection' if codebase == 'mmdet' else 'classification'
                raise ConfigError(f'--out must be a .pkl or .pickle file for {task}, got {out}')
            evaluators = cfg.test_evaluator
            if not isinstance(evaluators, list):
                evaluators = [evaluators]
            dump = 'DumpDetResults' if codebase == 'mmdet' else 'DumpResults'
            cfg.test_evaluator = list(evaluators) + [dict(type=dump, out_file_path=out)]
        else:
            evaluators = cfg.test_evaluator
            for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
                if evaluator.get('type') == 'IoUMetric':
                    evaluator.update(output_dir=out, keep_results=True)
    adapt_to_machine(cfg, launcher)
