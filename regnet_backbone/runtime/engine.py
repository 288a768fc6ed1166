"""mmdet, mmseg and mmpretrain configs on mmengine's Runner: the logic behind tools/train.py and
test.py.

* :func:`load_config` and :func:`codebase_of`: read a config and tell mmdet, mmseg and
  mmpretrain apart (its ``default_scope``).
* :func:`configure_training` / :func:`configure_testing`: apply the command-line options the way
  mmdet's and mmseg's own tools do, and adapt the config to a machine without CUDA.
* :func:`check_datasets`: fail early, with one sentence, when the data a config reads is absent.
* :func:`check_pretrained`, :func:`check_checkpoint_fits`: strict loading. mmengine loads
  ``load_from``, ``--resume`` and tools/test.py's checkpoint with ``strict=False``; these refuse,
  before anything runs, a file that does not fit the model (one line: how many tensors are
  missing, unexpected or misshapen, and what the file holds). The opt-in for a deliberate
  partial load is the config key ``partial_load=True`` (``--cfg-options partial_load=True``).
* :class:`WorkDirLock`: one training run per work dir (``train.lock``).
* :func:`allow_runner_checkpoints`: let torch >= 2.6's safe ``torch.load`` (``weights_only=True``)
  read the checkpoints mmengine's Runner writes, by allow-listing exactly what they contain.
* :func:`use_atomic_checkpoints`: crash-safe checkpoints for every training run (an interrupted
  run never leaves a truncated ``.pth`` or ``last_checkpoint``; ``--resume`` always finds one).
* :func:`use_data_root`: point a config's datasets and evaluators at another data folder.
* :func:`train` / :func:`test`: build the Runner and run it.
* :func:`load_for_inference` / :func:`predict_validation_images`: a trained model and its
  predictions on validation images, as numpy arrays (for drawing).

Library code: nothing here prints or exits. Problems a user can fix raise :class:`ToolError`
subclasses whose message is one line; the CLIs print it and exit non-zero.
"""
import contextlib
import errno
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import threading
import time
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ..atomic import is_leftover, replace_bytes
from ..checkpoints.errors import CheckpointError, CheckpointNotFoundError as _MissingFile
from ..checkpoints.io import _history_buffer_method, runner_checkpoint_globals  # noqa: F401
from ..models.backbone import DEFAULT_ARCH
from .channels import BACKBONE_TYPE, follow_backbone_channels
from .hooks import use_regnet_hooks

CODEBASES = ('mmdet', 'mmseg', 'mmpretrain')
DEMO_HINT = 'or run `make demo` to train on a generated synthetic dataset instead'

# Where OpenMMLab's configs expect each public dataset (relative to the working directory).
_DATASET_LAYOUTS = {
    'CocoDataset': ('COCO', 'data/coco/',
                    'annotations/instances_{train,val}2017.json, train2017/, val2017/'),
    'ADE20KDataset': ('ADE20K', 'data/ade/ADEChallengeData2016/',
                      'images/{training,validation}/, annotations/{training,validation}/'),
    'CityscapesDataset': ('Cityscapes', 'data/cityscapes/',
                          'leftImg8bit/{train,val}/, gtFine/{train,val}/ with *_labelTrainIds.png'),
    'ImageNet': ('ImageNet-1k', 'data/imagenet/',
                 'train/<class>/*.JPEG, val/<class>/*.JPEG, or meta/{train,val}.txt lists'),
}


class ToolError(Exception):
    """A problem the user can fix; the message is one line meant for the terminal."""


class ConfigError(ToolError, ValueError):
    """The config file is missing, unreadable, or not an mmdet / mmseg / mmpretrain config."""


class DatasetNotFoundError(ToolError, FileNotFoundError):
    """A path the config's dataset reads does not exist."""


class CheckpointNotFoundError(ToolError, FileNotFoundError):
    """A checkpoint named on the command line does not exist."""


class PretrainedNotFoundError(ToolError, FileNotFoundError):
    """The backbone's ``init_cfg`` names a pretrained checkpoint that is not there."""


class CheckpointRefusedError(ToolError):
    """A checkpoint cannot be used: unreadable, unsafe, not a Runner checkpoint (``--resume``),
    or its tensors do not fit the model (strict loading)."""


class WorkDirLockedError(ToolError):
    """Another training run holds the work dir's lock."""


#: Config key: True lets ``load_from`` / ``--resume`` / tools/test.py and the backbone's
#: ``Pretrained`` init load a checkpoint that fits the model only partly (a warning, not an error).
PARTIAL_LOAD = 'partial_load'
PRETRAINED_DOC = 'docs/pretrained.md'


# --- configs ---------------------------------------------------------------------------------
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


def _registries(scope: str):
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


# --- the backbone: channels, arch, pretrained weights ------------------------------------------
def _log(message: str, level: int = 20) -> None:
    """One line in mmengine's current logger (stdout before the Runner exists)."""
    from mmengine.logging import print_log
    print_log(message, logger='current', level=level)


def _backbone(cfg) -> Optional[dict]:
    model = cfg.get('model')
    backbone = model.get('backbone') if model else None
    if isinstance(backbone, dict) and backbone.get('type') == BACKBONE_TYPE:
        return backbone
    return None


def _pretrained_entries(backbone: dict) -> List[dict]:
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


def _arch_name(backbone: dict) -> str:
    arch = backbone.get('arch', DEFAULT_ARCH)
    return arch if isinstance(arch, str) else 'custom'


def check_pretrained(cfg) -> None:
    """Load the backbone's ``Pretrained`` checkpoint into a backbone built from the config, so
    that a missing, unreadable or misfitting file stops the run before the Runner starts.

    Raises :class:`PretrainedNotFoundError` (naming ``tools/convert_pretrained.py`` and
    ``docs/pretrained.md``) or :class:`CheckpointRefusedError`.
    """
    backbone = _backbone(cfg)
    if backbone is None or not _pretrained_entries(backbone):
        return
    entry = _pretrained_entries(backbone)[0]
    path, arch = str(entry.get('checkpoint')), _arch_name(backbone)
    from ..models import RegNetBackbone
    kwargs = {k: v for k, v in backbone.items() if k != 'type'}
    try:
        model = RegNetBackbone(**kwargs)
    except (ValueError, TypeError) as e:
        raise ConfigError(f'model.backbone: {e}') from None
    try:
        with _quiet_logs():
            model.init_weights()
    except _MissingFile:
        here = path if osp.isabs(path) else f'{path} (under {os.getcwd()})'
        target = path if arch in osp.basename(path) or arch == 'custom' else \
            f'checkpoints/{arch}_rgb.pth'
        also = '' if target == path else \
            f' and pass --cfg-options model.backbone.init_cfg.checkpoint={target}'
        raise PretrainedNotFoundError(
            f'pretrained backbone checkpoint not found: {here}, named by '
            f'model.backbone.init_cfg. Get the ImageNet weights of {arch} (sources: '
            f'{PRETRAINED_DOC}) and convert them with `python tools/convert_pretrained.py '
            f'SOURCE {target}`{also}; or train from scratch with --cfg-options '
            f'model.backbone.init_cfg=None.') from None
    except CheckpointError as e:
        raise CheckpointRefusedError(f'model.backbone.init_cfg: {e}') from None


@contextlib.contextmanager
def _quiet_logs():
    """Keep the partial-load warning of a check out of the log (the real load repeats it)."""
    from mmengine.logging import MMLogger
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(40)
    try:
        yield
    finally:
        logger.setLevel(level)


def _apply_partial_load(cfg) -> None:
    """``partial_load=True`` reaches the backbone's ``Pretrained`` init as ``strict=False``."""
    backbone = _backbone(cfg)
    if cfg.get(PARTIAL_LOAD) and backbone is not None:
        for entry in _pretrained_entries(backbone):
            entry['strict'] = False


# --- checkpoints to load or resume: strict -----------------------------------------------------
def resume_checkpoint(cfg) -> Optional[str]:
    """The checkpoint a configured run will resume from: ``load_from`` with ``resume``, or
    what ``last_checkpoint`` in the work dir names (``resume='auto'``); None for a fresh run.

    Raises :class:`CheckpointRefusedError` when ``last_checkpoint`` names a file that no longer
    exists (mmengine would fail with a traceback).
    """
    if not cfg.get('resume'):
        return None
    if cfg.get('load_from'):
        return cfg.load_from
    pointer = osp.join(cfg.work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        return None
    with open(pointer) as f:
        named = f.read().strip()
    if named and not osp.isfile(named):
        raise CheckpointRefusedError(
            f'{pointer} names {named}, which no longer exists; resume from an existing '
            f'checkpoint with --resume PATH, or delete {pointer} to start over.')
    return named or None


def _model_shapes(cfg) -> Dict[str, Tuple[int, ...]]:
    """Names and shapes of the state dict of ``cfg.model`` (built once, weights untouched)."""
    from mmengine.registry import DefaultScope
    scope = codebase_of(cfg)
    MODELS = _registries(scope)[0]
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _describe_backbone(cfg) -> Optional[str]:
    backbone = _backbone(cfg)
    if backbone is None:
        return None
    from ..checkpoints import Architecture
    from ..design.presets import resolve_arch
    try:
        spec = resolve_arch(backbone.get('arch', DEFAULT_ARCH))
    except (ValueError, TypeError):
        return None
    return Architecture(spec, stem_channels=backbone.get('stem_channels', 32),
                        in_channels=backbone.get('in_channels', 3)).describe()


def check_checkpoint_fits(cfg, path: str, *, resume: bool = False,
                          shapes: Optional[Dict[str, Tuple[int, ...]]] = None,
                          what: Optional[str] = None) -> List[str]:
    """Refuse a checkpoint that mmengine would load only partly into ``cfg.model``.

    Args:
        path: the file (``load_from``, the resume checkpoint, tools/test.py's CHECKPOINT).
        resume: the file must also be a Runner checkpoint (optimizer, schedulers, message hub).
        shapes: the model's state dict shapes (default: build ``cfg.model`` once).
        what: how messages name the file (default: ``path``).

    Returns warning lines (empty unless ``partial_load=True`` let a misfit through).
    Raises :class:`CheckpointRefusedError` with one line otherwise.
    """
    from ..checkpoints import (compare, describe_contents, is_runner_checkpoint,
                               model_state_dict, read_checkpoint, regnet_prefixes,
                               translate_model_state_dict)
    what = what or path
    try:
        obj = read_checkpoint(path)
        if resume and not is_runner_checkpoint(obj):
            raise CheckpointRefusedError(
                f'{what} is not a training checkpoint (no optimizer, schedulers or meta: '
                f'tools/train.py writes those in the work dir); to start training from its '
                f'weights use --cfg-options load_from={path} without --resume.')
        state_dict = model_state_dict(obj)
    except CheckpointError as e:
        raise CheckpointRefusedError(f'{e}') from None
    shapes = shapes if shapes is not None else _model_shapes(cfg)
    # mmdet-RegNet names are translated on load (RegNetCheckpointHook): compare as translated.
    state_dict, _ = translate_model_state_dict(state_dict, prefixes=regnet_prefixes(shapes))
    mismatch = compare(state_dict, shapes)
    if not mismatch:
        return []
    held = describe_contents(state_dict)
    model_backbone = _describe_backbone(cfg)
    facts = f'{what} does not fit the model: {mismatch.summary()}.'
    if held:
        facts += f' The file holds {held}'
        facts += f'; the model\'s backbone is {model_backbone}.' if model_backbone else '.'
    if cfg.get(PARTIAL_LOAD):
        return [f'partial_load=True: loading only what fits. {facts}']
    if held and held.startswith('a bare RegNet backbone'):
        fix = ('backbone weights go into model.backbone.init_cfg=dict(type=\'Pretrained\', '
               f'checkpoint={path}), then train')
    else:
        fix = 'use a checkpoint written for this config'
    raise CheckpointRefusedError(f'{facts} Nothing was loaded: {fix}, or add --cfg-options '
                                 f'{PARTIAL_LOAD}=True to load only what fits on purpose.')


def check_loads(cfg) -> None:
    """Strict loading for a configured run: the checkpoint it resumes from or loads
    (``load_from``) must fit ``cfg.model``; warnings of ``partial_load=True`` are logged."""
    path = resume_checkpoint(cfg)
    resume = path is not None
    if not resume and cfg.get('load_from') and not cfg.get('resume'):
        path = cfg.load_from
    if path is None:
        return
    for line in check_checkpoint_fits(cfg, path, resume=resume):
        _log(line, level=30)



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


# --- crash-safe checkpoints -------------------------------------------------------------------
ATOMIC_BACKEND = 'atomic_local'
ATOMIC_CHECKPOINT_HOOK = 'AtomicCheckpointHook'
LAST_CHECKPOINT = 'last_checkpoint'  # mmengine's pointer file, read by ``resume='auto'``


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` / ``put_text`` replace files atomically
    (:func:`regnet_backbone.atomic.replace_bytes`).

    mmengine's ``save_checkpoint`` serialises the whole checkpoint in memory and hands the bytes
    to its file backend's ``put``; the stock local backend opens the target with ``'wb'``, so a
    run killed while writing leaves a truncated ``.pth`` under the final name. Selected with
    ``backend_args=dict(backend='atomic_local')``.
    """

    def put(self, obj: bytes, filepath) -> None:
        replace_bytes(filepath, obj)

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        replace_bytes(filepath, obj.encode(encoding))


class AtomicCheckpointHook(CheckpointHook):
    """mmengine's ``CheckpointHook`` (same arguments) with crash-safe writes.

    Differences, all about interruption (SIGKILL, power loss, a full disk):

    * checkpoints in a local ``out_dir`` are written through :class:`AtomicLocalBackend`
      (unless the config chose its own ``backend_args``);
    * the ``last_checkpoint`` pointer is replaced atomically (mmengine truncates it, then writes);
    * checkpoints beyond ``max_keep_ckpts`` are deleted *after* the new checkpoint and the pointer
      are on disk (mmengine deletes first, so a crash in between left the pointer naming a
      deleted file, or no checkpoint at all);
    * temporary files left by a killed run are removed when training starts;
    * Ctrl-C during a save is held back until the checkpoint and the pointer are on disk, then
      raised (a second Ctrl-C stops at once; the atomic writes keep the previous files).
    """

    def before_train(self, runner) -> None:
        super().before_train(runner)
        local = '://' not in str(self.out_dir)
        if local and self.backend_args is None and self.file_client_args is None:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
            self.file_backend = AtomicLocalBackend()
        if local and _is_main_process() and osp.isdir(self.out_dir):
            for name in os.listdir(self.out_dir):
                if is_leftover(name):
                    with contextlib.suppress(OSError):
                        os.unlink(osp.join(self.out_dir, name))

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        # The ids to keep after this save. They go into the message hub before saving (the
        # checkpoint records them, so a resumed run knows what to delete later) and into the hook
        # only once the save succeeded: a failed save must not forget older checkpoints.
        # (mmengine's before_train creates keep_ckpt_ids only when max_keep_ckpts > 0.)
        kept = list(self.keep_ckpt_ids) if self.max_keep_ckpts > 0 else []
        ids, outdated = kept, []
        # Called twice for one step when save_best fires with a regular save: count it once.
        if self.max_keep_ckpts > 0 and not (kept and kept[-1] == step):
            ids = kept + [step]
            outdated, ids = ids[:-self.max_keep_ckpts], ids[-self.max_keep_ckpts:]
            runner.message_hub.update_info('keep_ckpt_ids', ids)
        with sigint_deferred():
            try:
                runner.save_checkpoint(
                    self.out_dir, filename, self.file_client_args,
                    save_optimizer=self.save_optimizer,
                    save_param_scheduler=self.save_param_scheduler, meta=meta,
                    by_epoch=self.by_epoch, backend_args=self.backend_args, **self.args)
            except BaseException:
                runner.message_hub.update_info('keep_ckpt_ids', kept)
                raise
            if self.max_keep_ckpts > 0:
                self.keep_ckpt_ids.clear()
                self.keep_ckpt_ids.extend(ids)
            if not _is_main_process():  # Runner.save_checkpoint wrote on rank 0 only
                return
            replace_bytes(osp.join(runner.work_dir, LAST_CHECKPOINT),
                          str(self.last_ckpt).encode())
        for old in outdated:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed saves folders
                self.file_backend.rmtree(path)


def _is_main_process() -> bool:
    from mmengine.dist import is_main_process
    return is_main_process()


@contextlib.contextmanager
def sigint_deferred():
    """Hold back the first SIGINT (Ctrl-C) until the block is done, then raise
    ``KeyboardInterrupt``; a second SIGINT raises at once. A no-op outside the main thread.

    mmengine formats the config while saving a checkpoint and turns *any* exception there,
    ``KeyboardInterrupt`` included, into ``SyntaxError: Failed to format the config file``;
    deferring the signal keeps the save whole and the interruption an interruption.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending = []

    def hold(signum, frame):
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt


def last_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``last_checkpoint`` in ``work_dir`` names, when that file exists."""
    try:
        with open(osp.join(work_dir, LAST_CHECKPOINT)) as f:
            path = f.read().strip()
    except OSError:
        return None
    return path if path and osp.isfile(path) else None


def interrupted_message(cfg, config_path: str) -> str:
    """The one line a CLI prints when training is interrupted: where the last complete
    checkpoint is and the command that resumes from it."""
    work_dir = cfg.get('work_dir') or osp.join('./work_dirs', _stem(config_path))
    last = last_complete_checkpoint(work_dir)
    if last is None:
        return (f'interrupted before the first checkpoint was saved in {work_dir}; run the '
                f'same command again to start over.')
    return (f'interrupted; the last complete checkpoint is {last}. Resume with: python '
            f'tools/train.py {config_path} --work-dir {work_dir} --resume')


# --- one training run per work dir -------------------------------------------------------------
LOCK_FILE = 'train.lock'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


class WorkDirLock:
    """An exclusive lock on a training work dir: ``<work_dir>/train.lock``.

    The file holds one JSON line, ``{"pid": ..., "host": ..., "started": ..., "config": ...}``,
    and the holder keeps an ``fcntl.flock`` on it. The kernel drops that lock when the process
    ends, however it ends, so a lock file left by a killed run is *stale*: the next run gets the
    flock, logs that it takes the lock over from that PID, and rewrites the file. A live holder
    makes :meth:`acquire` raise :class:`WorkDirLockedError` naming its PID. Where ``flock`` is
    not supported (some network filesystems) the PID is checked instead (same host only).
    The file is removed on release.
    """

    def __init__(self, work_dir: str, config_path: str = ''):
        self.work_dir, self.config_path = work_dir, config_path
        self.path = osp.join(work_dir, LOCK_FILE)
        self._fd: Optional[int] = None
        self.taken_over: Optional[dict] = None

    @staticmethod
    def read(path: str) -> dict:
        try:
            with open(path) as f:
                info = json.loads(f.read() or '{}')
            return info if isinstance(info, dict) else {}
        except (OSError, ValueError):
            return {}

    def _refuse(self, info: dict):
        pid = info.get('pid', '?')
        since = f' since {info["started"]}' if info.get('started') else ''
        host = f' on {info["host"]}' if info.get('host') else ''
        raise WorkDirLockedError(
            f'work dir {self.work_dir} is in use by another training run (PID {pid}{host}'
            f'{since}; lock file {self.path}); wait for it or stop it, or train into another '
            f'--work-dir.')

    def acquire(self) -> 'WorkDirLock':
        import fcntl
        os.makedirs(self.work_dir, exist_ok=True)
        for _ in range(10):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._refuse(self.read(self.path))
            except OSError as e:
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                    os.close(fd)
                    raise
                info = self.read(self.path)  # no flock here: fall back to the PID
                pid = info.get('pid')
                if (isinstance(pid, int) and pid != os.getpid() and
                        info.get('host') == socket.gethostname() and _pid_alive(pid)):
                    os.close(fd)
                    self._refuse(info)
            try:  # the file we locked may have been released and removed meanwhile
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            old = self.read(self.path)
            if old.get('pid') not in (None, os.getpid()):
                self.taken_over = old
            info = dict(pid=os.getpid(), host=socket.gethostname(),
                        started=time.strftime('%Y-%m-%dT%H:%M:%S'), config=self.config_path)
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(info) + '\n').encode(), 0)
            self._fd = fd
            return self
        raise WorkDirLockedError(f'could not lock {self.path}: it keeps changing; is another '
                                 f'run starting in {self.work_dir}?')

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # while still holding the lock (see acquire's inode check)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> 'WorkDirLock':
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _launch_rank(launcher: str) -> int:
    """This process's rank, from the launcher's environment (before any process group)."""
    if launcher == 'none':
        return 0
    env = os.environ
    for key in ('RANK', 'SLURM_PROCID', 'OMPI_COMM_WORLD_RANK'):
        if env.get(key, '').isdigit():
            return int(env[key])
    return 0


@contextlib.contextmanager
def work_dir_lock(cfg, config_path: str = ''):
    """:class:`WorkDirLock` on ``cfg.work_dir``, taken by the launcher's rank 0 only (the other
    processes of the same run share the dir)."""
    if _launch_rank(cfg.get('launcher', 'none')) != 0:
        yield None
        return
    lock = WorkDirLock(cfg.work_dir, config_path)
    with lock:
        if lock.taken_over:
            _log(f'took over the stale lock {lock.path} of PID {lock.taken_over.get("pid")}, '
                 f'which is no longer running', level=30)
        yield lock


def register_atomic_checkpoints() -> None:
    """Register :class:`AtomicLocalBackend` (``'atomic_local'``) in mmengine's file backends and
    :class:`AtomicCheckpointHook` in mmengine's root ``HOOKS`` (which mmdet's and mmseg's
    registries fall back to). Idempotent."""
    register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)
    if HOOKS.get(ATOMIC_CHECKPOINT_HOOK) is None:
        HOOKS.register_module(name=ATOMIC_CHECKPOINT_HOOK, module=AtomicCheckpointHook)


def use_atomic_checkpoints(cfg) -> None:
    """Swap mmengine's ``CheckpointHook`` in ``cfg.default_hooks`` for
    :class:`AtomicCheckpointHook` (same arguments); other checkpoint hooks are left alone."""
    register_atomic_checkpoints()
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if hook and hook.get('type') in ('CheckpointHook', CheckpointHook):
        hook['type'] = ATOMIC_CHECKPOINT_HOOK


# --- datasets --------------------------------------------------------------------------------
def _leaf_datasets(dataset) -> Iterator[dict]:
    """The datasets that read files, looking through wrappers (Repeat, Concat, ClassBalanced)."""
    if not isinstance(dataset, dict):
        return
    if 'dataset' in dataset:
        yield from _leaf_datasets(dataset['dataset'])
    elif 'datasets' in dataset:
        for child in dataset['datasets']:
            yield from _leaf_datasets(child)
    else:
        yield dataset


def _paths_read_by(dataset: dict) -> List[str]:
    root = dataset.get('data_root') or ''
    paths = [root] if root else []
    names = [dataset.get('ann_file') or '']
    prefix = dataset.get('data_prefix') or {}
    names += [v for v in prefix.values() if isinstance(v, str)] if isinstance(prefix, dict) else []
    for name in names:
        if name and '://' not in name:
            paths.append(name if osp.isabs(name) or not root else osp.join(root, name))
    return [p for p in paths if '://' not in p]


def use_data_root(cfg, root: str) -> None:
    """Point every dataset of ``cfg`` at ``root``, and the evaluators' ``ann_file`` (mmdet's
    CocoMetric reads the ground truth itself) at the matching file under ``root``.

    A config's ``data_root`` variable is resolved when the file is read, so overriding it with
    ``--cfg-options`` would leave the datasets where they were; this rewrites every use.
    """
    root = osp.join(root, '')
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        datasets = list(_leaf_datasets(loader.get('dataset'))) if loader else []
        for dataset in datasets:
            dataset['data_root'] = root
        evaluators = cfg.get(f'{split}_evaluator')
        if not datasets or not evaluators or not datasets[0].get('ann_file'):
            continue
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            if evaluator.get('ann_file'):
                evaluator['ann_file'] = osp.join(root, datasets[0]['ann_file'])


def check_datasets(cfg, config_path: str, dataloaders: Sequence[str]) -> None:
    """Raise :class:`DatasetNotFoundError` when a path one of ``dataloaders`` reads is missing.

    Args:
        dataloaders: config keys, e.g. ``('train_dataloader', 'val_dataloader')``; missing or
            None entries are skipped (a config without validation).
    """
    for key in dataloaders:
        loader = cfg.get(key)
        if not loader:
            continue
        for dataset in _leaf_datasets(loader.get('dataset')):
            for path in _paths_read_by(dataset):
                if osp.exists(path):
                    continue
                name, where, layout = _DATASET_LAYOUTS.get(
                    dataset.get('type'), ('the dataset', dataset.get('data_root') or path, ''))
                layout = f' ({layout})' if layout else ''
                raise DatasetNotFoundError(
                    f'dataset not found: {path} is missing. {osp.basename(config_path)} reads '
                    f'{name} from {where}{layout} under {os.getcwd()}; put the dataset there (or '
                    f'a symlink to it), {DEMO_HINT}.')


# --- checkpoints -----------------------------------------------------------------------------
def allow_runner_checkpoints() -> None:
    """Allow-list :func:`runner_checkpoint_globals` for ``torch.load(weights_only=True)``.

    mmengine 0.10 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means the
    safe unpickler, which refuses ``HistoryBuffer`` and friends, so ``--resume`` and ``load_from``
    of the Runner's own checkpoints fail. Safe loading stays on; only these objects are added.
    """
    import torch
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(runner_checkpoint_globals())


# --- running ---------------------------------------------------------------------------------
def _init_cpu_distributed(launcher: str) -> None:
    """Start the gloo process group ourselves: mmengine's ``init_dist`` calls
    ``torch.cuda.set_device``, which fails without a GPU."""
    import torch
    import torch.distributed as dist
    if launcher == 'none' or torch.cuda.is_available() or dist.is_initialized():
        return
    if launcher == 'slurm':
        env = os.environ
        if 'MASTER_ADDR' not in env:
            nodes = subprocess.getoutput(f'scontrol show hostname {env["SLURM_NODELIST"]}')
            env['MASTER_ADDR'] = nodes.split()[0]
        env.setdefault('MASTER_PORT', '29500')
        env['RANK'], env['WORLD_SIZE'] = env['SLURM_PROCID'], env['SLURM_NTASKS']
        env['LOCAL_RANK'] = env.get('SLURM_LOCALID', '0')
    elif launcher == 'mpi':
        env = os.environ
        env['RANK'] = env.get('OMPI_COMM_WORLD_RANK', '0')
        env['WORLD_SIZE'] = env.get('OMPI_COMM_WORLD_SIZE', '1')
        env['LOCAL_RANK'] = env.get('OMPI_COMM_WORLD_LOCAL_RANK', '0')
        env.setdefault('MASTER_ADDR', '127.0.0.1')
        env.setdefault('MASTER_PORT', '29500')
    dist.init_process_group(backend='gloo')


def build_runner(cfg):
    """The Runner a config asks for (``runner_type``), else mmengine's ``Runner``."""
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner
    register_atomic_checkpoints()  # configs dumped by a training run name AtomicCheckpointHook
    if codebase_of(cfg) == 'mmdet':
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def train(cfg, config_path: str):
    """Check the data and the backbone's pretrained checkpoint (:func:`check_pretrained`), lock
    the work dir, check the checkpoint to resume from or load (strict), build the Runner and
    train; returns the Runner.

    Raises :class:`WorkDirLockedError` when another run trains into the same work dir, and
    :class:`CheckpointRefusedError` for a checkpoint that does not fit (see
    :func:`check_checkpoint_fits`), both before the Runner is built.
    """
    check_datasets(cfg, config_path, ['train_dataloader'] +
                   (['val_dataloader'] if cfg.get('val_cfg') else []))
    allow_runner_checkpoints()
    check_pretrained(cfg)
    with work_dir_lock(cfg, config_path):
        check_loads(cfg)
        _init_cpu_distributed(cfg.get('launcher', 'none'))
        runner = build_runner(cfg)
        try:
            runner.train()
        except CheckpointError as e:  # the backbone's pretrained weights (init_weights)
            raise CheckpointRefusedError(f'{e}') from None
    return runner


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, for a single-machine process group's
    ``MASTER_PORT`` (another process may take it before it is used; fine for local runs)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def finish_distributed() -> None:
    """Wait for every process, then close the process group (a no-op without one).

    Call it when a process that trained under a launcher is done: a process that exits while
    gloo's threads still run can abort ("terminate called without an active exception").
    """
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def test(cfg, config_path: str):
    """Check the data, check that ``cfg.load_from`` fits the model (strict, see
    :func:`check_checkpoint_fits`), build the Runner, load it and test; returns the metrics."""
    check_datasets(cfg, config_path, ['test_dataloader'])
    allow_runner_checkpoints()
    for line in check_checkpoint_fits(cfg, cfg.load_from):
        _log(line, level=30)
    _init_cpu_distributed(cfg.get('launcher', 'none'))
    runner = build_runner(cfg)
    try:
        return runner.test()
    except CheckpointError as e:  # the channel-order check, a checkpoint that cannot load
        raise CheckpointRefusedError(f'{e}') from None


def load_for_inference(cfg, checkpoint: str):
    """The model of ``cfg`` with the weights of ``checkpoint`` (a Runner checkpoint or a state
    dict), in eval mode on the CPU, and the validation dataset it is evaluated on.

    Returns:
        ``(model, dataset)``; ``dataset.metainfo`` holds ``classes`` and ``palette``.
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner import load_checkpoint
    scope = codebase_of(cfg)
    if not osp.isfile(checkpoint):
        raise CheckpointNotFoundError(f'checkpoint not found: {checkpoint}')
    MODELS, DATASETS = _registries(scope)
    allow_runner_checkpoints()
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.build(cfg.val_dataloader.dataset)
    check_checkpoint_fits(cfg, checkpoint,
                          shapes={k: tuple(v.shape) for k, v in model.state_dict().items()})
    load_checkpoint(model, checkpoint, map_location='cpu', strict=not cfg.get(PARTIAL_LOAD),
                    logger='silent')
    return model.eval(), dataset


def predict_validation_images(model, dataset, count: int) -> List[Dict]:
    """Run ``model`` (from :func:`load_for_inference`) on the first ``count`` images of
    ``dataset``.

    Returns one dict per image with ``image`` ((H, W, 3) uint8, RGB) and, for mmdet, ``boxes``
    ((N, 4) float, x1 y1 x2 y2 pixels), ``labels`` ((N,) int), ``scores`` ((N,) float) and
    ``masks`` ((N, H, W) bool, or None for a model without a mask head); for mmseg,
    ``prediction`` and ``ground_truth`` ((H, W) int label maps).
    """
    import cv2
    import torch
    from mmengine.dataset import pseudo_collate
    model.eval()
    results = []
    with torch.no_grad():
        for index in range(min(count, len(dataset))):
            sample = model.test_step(pseudo_collate([dataset[index]]))[0]
            image = cv2.imread(sample.img_path, cv2.IMREAD_COLOR)[..., ::-1].copy()
            result = dict(image=image)
            if 'pred_instances' in sample:
                pred = sample.pred_instances
                result.update(boxes=pred.bboxes.cpu().numpy(), labels=pred.labels.cpu().numpy(),
                              scores=pred.scores.cpu().numpy(),
                              masks=pred.masks.cpu().numpy().astype(bool)
                              if 'masks' in pred else None)
            else:
                result.update(prediction=sample.pred_sem_seg.data[0].cpu().numpy(),
                              ground_truth=sample.gt_sem_seg.data[0].cpu().numpy())
            results.append(result)
    return results
