"""mmdet and mmseg configs on mmengine's Runner: the logic behind tools/train.py and test.py.

* :func:`load_config` and :func:`codebase_of`: read a config and tell mmdet from mmseg (its
  ``default_scope``).
* :func:`configure_training` / :func:`configure_testing`: apply the command-line options the way
  mmdet's and mmseg's own tools do, and adapt the config to a machine without CUDA.
* :func:`check_datasets`: fail early, with one sentence, when the data a config reads is absent.
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
import os
import os.path as osp
import subprocess
from typing import Dict, Iterator, List, Optional, Sequence

from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ..atomic import is_leftover, replace_bytes

CODEBASES = ('mmdet', 'mmseg')
DEMO_HINT = 'or run `make demo` to train on a generated synthetic dataset instead'

# Where OpenMMLab's configs expect each public dataset (relative to the working directory).
_DATASET_LAYOUTS = {
    'CocoDataset': ('COCO', 'data/coco/',
                    'annotations/instances_{train,val}2017.json, train2017/, val2017/'),
    'ADE20KDataset': ('ADE20K', 'data/ade/ADEChallengeData2016/',
                      'images/{training,validation}/, annotations/{training,validation}/'),
    'CityscapesDataset': ('Cityscapes', 'data/cityscapes/',
                          'leftImg8bit/{train,val}/, gtFine/{train,val}/ with *_labelTrainIds.png'),
}


class ToolError(Exception):
    """A problem the user can fix; the message is one line meant for the terminal."""


class ConfigError(ToolError, ValueError):
    """The config file is missing, unreadable, or not an mmdet / mmseg config."""


class DatasetNotFoundError(ToolError, FileNotFoundError):
    """A path the config's dataset reads does not exist."""


class CheckpointNotFoundError(ToolError, FileNotFoundError):
    """A checkpoint named on the command line does not exist."""


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
    except (ImportError, SyntaxError, FileNotFoundError) as e:  # a missing package or _base_
        raise ConfigError(f'cannot read config {path}: {type(e).__name__}: '
                          f'{str(e).splitlines()[0] if str(e) else ""}') from e
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    return cfg


def codebase_of(cfg) -> str:
    """``'mmdet'`` or ``'mmseg'``, from the config's ``default_scope``."""
    scope = cfg.get('default_scope')
    if scope not in CODEBASES:
        raise ConfigError(f'unsupported config: default_scope is {scope!r}; tools/train.py and '
                          f'tools/test.py run mmdet and mmseg configs only.')
    return scope


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
    """
    codebase_of(cfg)
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
    if auto_scale_lr:
        setting = cfg.get('auto_scale_lr')
        if not setting or 'base_batch_size' not in setting:
            raise ConfigError('--auto-scale-lr needs `auto_scale_lr = dict(base_batch_size=...)` '
                              f'in the config; {config_path} has none.')
        setting.enable = True
    use_atomic_checkpoints(cfg)
    adapt_to_machine(cfg, launcher)


def configure_testing(cfg, config_path: str, checkpoint: str, *, work_dir: Optional[str] = None,
                      out: Optional[str] = None, launcher: str = 'none') -> None:
    """Apply tools/test.py's options to ``cfg`` in place.

    Args:
        checkpoint: weights to evaluate (a Runner checkpoint or a bare state dict).
        out: mmdet: a ``.pkl`` file receiving the raw predictions (``DumpDetResults``);
            mmseg: a folder receiving the predicted label maps as PNGs.
    """
    codebase = codebase_of(cfg)
    if not osp.isfile(checkpoint):
        raise CheckpointNotFoundError(f'checkpoint not found: {checkpoint}')
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or osp.join('./work_dirs', _stem(config_path))
    cfg.load_from = checkpoint
    cfg.resume = False
    if out:
        if codebase == 'mmdet':
            if not out.endswith(('.pkl', '.pickle')):
                raise ConfigError(f'--out must be a .pkl or .pickle file for detection, got {out}')
            evaluators = cfg.test_evaluator
            if not isinstance(evaluators, list):
                evaluators = [evaluators]
            cfg.test_evaluator = list(evaluators) + [dict(type='DumpDetResults',
                                                          out_file_path=out)]
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
    * temporary files left by a killed run are removed when training starts.
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
        try:
            runner.save_checkpoint(
                self.out_dir, filename, self.file_client_args, save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler, meta=meta, by_epoch=self.by_epoch,
                backend_args=self.backend_args, **self.args)
        except BaseException:
            runner.message_hub.update_info('keep_ckpt_ids', kept)
            raise
        if self.max_keep_ckpts > 0:
            self.keep_ckpt_ids.clear()
            self.keep_ckpt_ids.extend(ids)
        if not _is_main_process():  # Runner.save_checkpoint wrote on rank 0 only
            return
        replace_bytes(osp.join(runner.work_dir, LAST_CHECKPOINT), str(self.last_ckpt).encode())
        for old in outdated:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed saves folders
                self.file_backend.rmtree(path)


def _is_main_process() -> bool:
    from mmengine.dist import is_main_process
    return is_main_process()


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
def _history_buffer_method(owner, name: str):
    """Stands in for ``builtins.getattr`` while unpickling: returns HistoryBuffer methods only.

    Each ``HistoryBuffer`` keeps its statistics functions (``min``, ``max``, ``mean``, ...) in an
    instance dict, and pickle (protocol 2, as ``torch.save`` uses) stores each one as
    ``getattr(HistoryBuffer, 'min')``. Allowing the real ``getattr`` would let a file read any
    attribute of any allowed object; this reads only those methods.
    """
    import pickle

    from mmengine.logging.history_buffer import HistoryBuffer
    if owner is HistoryBuffer and isinstance(name, str) and not name.startswith('_'):
        method = getattr(HistoryBuffer, name, None)
        if callable(method):
            return method
    raise pickle.UnpicklingError(f'refusing getattr({owner!r}, {name!r}) in a checkpoint; only '
                                 'the statistics methods of mmengine HistoryBuffer are allowed.')


def runner_checkpoint_globals() -> list:
    """What a Runner checkpoint pickles besides tensors, builtins and ``collections``.

    mmengine saves its ``MessageHub`` next to the weights: ``HistoryBuffer`` objects holding numpy
    arrays (float64 values, int64 counts; 32-bit ones on some platforms) and the buffers'
    statistics methods, plus numpy scalars (the ``eta`` in ``runtime_info``). Entries are
    objects, or ``(object, name in the pickle)`` pairs: numpy 1 and numpy 2 pickle the array
    helpers under different module names.
    """
    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    entries = [HistoryBuffer, np.ndarray, np.dtype, (_history_buffer_method, 'builtins.getattr')]
    entries += [type(np.dtype(t)) for t in (np.float64, np.int64, np.float32, np.int32)]
    for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
        entries += [(multiarray._reconstruct, f'{module}._reconstruct'),
                    (multiarray.scalar, f'{module}.scalar')]
    return entries


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
    """Check the data, build the Runner and train; returns the Runner."""
    check_datasets(cfg, config_path, ['train_dataloader'] +
                   (['val_dataloader'] if cfg.get('val_cfg') else []))
    allow_runner_checkpoints()
    _init_cpu_distributed(cfg.get('launcher', 'none'))
    runner = build_runner(cfg)
    runner.train()
    return runner


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now, for a single-machine process group's
    ``MASTER_PORT`` (another process may take it before it is used; fine for local runs)."""
    import socket
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
    """Check the data, build the Runner, load ``cfg.load_from`` and test; returns the metrics."""
    check_datasets(cfg, config_path, ['test_dataloader'])
    allow_runner_checkpoints()
    _init_cpu_distributed(cfg.get('launcher', 'none'))
    runner = build_runner(cfg)
    return runner.test()


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
    if scope == 'mmdet':
        from mmdet.registry import DATASETS, MODELS
    else:
        from mmseg.registry import DATASETS, MODELS
    allow_runner_checkpoints()
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.build(cfg.val_dataloader.dataset)
    load_checkpoint(model, checkpoint, map_location='cpu', strict=True, logger='silent')
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
