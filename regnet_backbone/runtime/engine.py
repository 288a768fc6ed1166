"""mmdet, mmseg and mmpretrain configs on mmengine's Runner: the runs behind tools/train.py and
test.py.

One job per module; this one joins them into a run (import every other name from the module
that defines it):

* :mod:`.config` reads a config, tells mmdet, mmseg and mmpretrain apart and applies the
  command-line options (:func:`~.config.configure_training`, ``configure_testing``);
* :mod:`.datasets` fails early when the data is absent (:func:`~.datasets.check_datasets`);
* :mod:`.runner`'s ``RegNetRunner`` loads strictly, inside the engine (:mod:`.strict_loading`
  holds the checks and their messages);
* :mod:`.hooks` crash-safe checkpoints, mmdet-name translation, the channel-order check;
* :mod:`.lock` one run per work dir; :mod:`.dist` process groups; :mod:`.interrupt` Ctrl-C;
* :mod:`.errors` the :class:`~.errors.ToolError` family (one-line messages the CLIs print).

Inference on a trained model lives beside the engine, in :mod:`regnet_backbone.apis`.

Library code: nothing here prints or exits.
"""
from ..checkpoints.errors import CheckpointError
from ..checkpoints.io import allow_runner_checkpoints
from .config import codebase_of
from .datasets import check_datasets
from .dist import init_cpu_distributed
from .errors import CheckpointRefusedError
from .hooks.atomic_checkpoint import last_complete_checkpoint
from .lock import work_dir_lock
from .strict_loading import check_pretrained_exists, resume_checkpoint


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
    :func:`~.strict_loading.check_state_fits`) or a data preprocessor feeding the wrong colour order.
    """
    check_datasets(cfg, config_path, ['train_dataloader'] +
                   (['val_dataloader'] if cfg.get('val_cfg') else []))
    allow_runner_checkpoints()
    check_pretrained_exists(cfg)
    with work_dir_lock(cfg, config_path):
        resume_checkpoint(cfg)  # a last_checkpoint naming a deleted file: one line, no read
        init_cpu_distributed(cfg.get('launcher', 'none'))
        runner = build_runner(cfg)
        try:
            runner.train()
        except CheckpointError as e:  # the backbone's pretrained weights (init_weights)
            raise CheckpointRefusedError(f'{e}') from None
    return runner


def test(cfg, config_path: str):
    """Check the data, build the Runner, load ``cfg.load_from`` (strictly, read once, see
    :func:`~.strict_loading.check_state_fits`) and test; returns the metrics."""
    check_datasets(cfg, config_path, ['test_dataloader'])
    allow_runner_checkpoints()
    init_cpu_distributed(cfg.get('launcher', 'none'))
    runner = build_runner(cfg)
    try:
        return runner.test()
    except CheckpointError as e:  # the channel-order check, a checkpoint that cannot load
        raise CheckpointRefusedError(f'{e}') from None


def interrupted_message(cfg, config_path: str) -> str:
    """The one line a CLI prints when training is interrupted: where the last complete
    checkpoint is and the command that resumes from it."""
    work_dir = cfg.work_dir  # set by configure_training
    last = last_complete_checkpoint(work_dir)
    if last is None:
        return (f'interrupted before the first checkpoint was saved in {work_dir}; run the '
                f'same command again to start over.')
    return (f'interrupted; the last complete checkpoint is {last}. Resume with: python '
            f'tools/train.py {config_path} --work-dir {work_dir} --resume')
