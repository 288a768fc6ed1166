"""mmdet, mmseg and mmpretrain configs on mmengine's Runner: the runs behind tools/train.py and
test.py, and the names the tools, the demo and the studies use.

One job per module; this one joins them into a run:

* :mod:`.config` reads a config, tells mmdet, mmseg and mmpretrain apart and applies the
  command-line options (:func:`configure_training`, :func:`configure_testing`);
* :mod:`.datasets` fails early when the data is absent (:func:`check_datasets`);
* :mod:`.runner`'s ``RegNetRunner`` loads strictly, inside the engine (:mod:`.loading` holds the
  checks and their messages);
* :mod:`.hooks` crash-safe checkpoints, mmdet-name translation, the channel-order check;
* :mod:`.lock` one run per work dir; :mod:`.dist` process groups; :mod:`.interrupt` Ctrl-C;
* :mod:`.errors` the :class:`ToolError` family (one-line messages the CLIs print).

Inference on a trained model lives beside the engine, in :mod:`regnet_backbone.apis`.

Library code: nothing here prints or exits.
"""
import os.path as osp

from ..checkpoints.errors import CheckpointError
from ..checkpoints.io import _history_buffer_method, runner_checkpoint_globals  # noqa: F401
# The public names of the runtime, importable from here as before (tools, tests, demo, studies).
from .config import (CODEBASES, DEMO_HINT, PARTIAL_LOAD, PRETRAINED_DOC,  # noqa: F401
                     _registries, _stem, adapt_to_machine, codebase_of, configure_testing,
                     configure_training, follow_channels, load_config)
from .datasets import check_datasets, use_data_root  # noqa: F401
from .dist import _init_cpu_distributed, finish_distributed, free_port  # noqa: F401
from .errors import (CheckpointNotFoundError, CheckpointRefusedError, ConfigError,  # noqa: F401
                     DatasetNotFoundError, PretrainedNotFoundError, ToolError,
                     WorkDirLockedError)
from .hooks.atomic_checkpoint import (ATOMIC_BACKEND, ATOMIC_CHECKPOINT_HOOK,  # noqa: F401
                                      LAST_CHECKPOINT, AtomicCheckpointHook,
                                      AtomicLocalBackend, last_complete_checkpoint,
                                      use_atomic_checkpoints)
from .interrupt import sigint_deferred  # noqa: F401
from ..checkpoints.io import allow_runner_checkpoints
from .loading import (check_checkpoint_fits,  # noqa: F401
                      check_loads, check_pretrained, check_pretrained_exists, resume_checkpoint)
from .lock import LOCK_FILE, WorkDirLock, work_dir_lock  # noqa: F401


def build_runner(cfg):
    """The Runner a config asks for (``runner_type``), else :class:`~.runner.RegNetRunner`."""
    from mmengine.registry import RUNNERS

    from .runner import RegNetRunner
    if codebase_of(cfg) == 'mmdet':
        from mmdet.utils import setup_cache_size_limit_of_dynamo
        setup_cache_size_limit_of_dynamo()
    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return RegNetRunner.from_cfg(cfg)


def train(cfg, config_path: str):
    """Check the data, lock the work dir, build the Runner (:class:`~.runner.RegNetRunner`:
    it loads the backbone's pretrained weights, the ``--resume`` checkpoint or ``load_from``
    strictly, each file read once) and train; returns the Runner.

    Raises :class:`WorkDirLockedError` when another run trains into the same work dir,
    :class:`PretrainedNotFoundError` for a missing ``init_cfg`` file and
    :class:`CheckpointRefusedError` for a checkpoint that does not fit (see
    :func:`~.loading.check_state_fits`) or a data preprocessor feeding the wrong colour order.
    """
    check_datasets(cfg, config_path, ['train_dataloader'] +
                   (['val_dataloader'] if cfg.get('val_cfg') else []))
    allow_runner_checkpoints()
    check_pretrained_exists(cfg)
    with work_dir_lock(cfg, config_path):
        resume_checkpoint(cfg)  # a last_checkpoint naming a deleted file: one line, no read
        _init_cpu_distributed(cfg.get('launcher', 'none'))
        runner = build_runner(cfg)
        try:
            runner.train()
        except CheckpointError as e:  # the backbone's pretrained weights (init_weights)
            raise CheckpointRefusedError(f'{e}') from None
    return runner


def test(cfg, config_path: str):
    """Check the data, build the Runner, load ``cfg.load_from`` (strictly, read once, see
    :func:`~.loading.check_state_fits`) and test; returns the metrics."""
    check_datasets(cfg, config_path, ['test_dataloader'])
    allow_runner_checkpoints()
    _init_cpu_distributed(cfg.get('launcher', 'none'))
    runner = build_runner(cfg)
    try:
        return runner.test()
    except CheckpointError as e:  # the channel-order check, a checkpoint that cannot load
        raise CheckpointRefusedError(f'{e}') from None


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
