"""Crash-safe checkpoints for every training run: an interrupted run never leaves a truncated
``.pth`` or ``last_checkpoint``, so ``--resume`` always finds a complete one."""
import contextlib
import os
import os.path as osp
from typing import Optional

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmengine.registry import HOOKS

from ...atomic import is_leftover, replace_bytes
from ..interrupt import sigint_deferred

ATOMIC_BACKEND = 'atomic_local'


ATOMIC_CHECKPOINT_HOOK = 'AtomicCheckpointHook'


LAST_CHECKPOINT = 'last_checkpoint'  # mmengine's pointer file, read by ``resume='auto'``


@register_backend(ATOMIC_BACKEND, force=True)
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


@HOOKS.register_module(name=ATOMIC_CHECKPOINT_HOOK)
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
        if local and is_main_process() and osp.isdir(self.out_dir):
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
            if not is_main_process():  # Runner.save_checkpoint wrote on rank 0 only
                return
            replace_bytes(osp.join(runner.work_dir, LAST_CHECKPOINT),
                          str(self.last_ckpt).encode())
        for old in outdated:
            path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old))
            if self.file_backend.isfile(path):
                self.file_backend.remove(path)
            elif self.file_backend.isdir(path):  # deepspeed saves folders
                self.file_backend.rmtree(path)


#: The mmengine releases whose ``CheckpointHook._save_checkpoint_with_step`` (a private method,
#: which :class:`AtomicCheckpointHook` replaces) this hook was written against and tested with.
TESTED_MMENGINE = ('0.10.', )
#: The arguments of that method the override assumes.
_SAVE_SIGNATURE = ('self', 'runner', 'step', 'meta')


def atomic_hook_supported() -> bool:
    """Whether the installed mmengine is one :class:`AtomicCheckpointHook` was written for."""
    import inspect

    import mmengine
    method = getattr(CheckpointHook, '_save_checkpoint_with_step', None)
    if method is None or not mmengine.__version__.startswith(TESTED_MMENGINE):
        return False
    return tuple(inspect.signature(method).parameters) == _SAVE_SIGNATURE


def use_atomic_checkpoints(cfg) -> None:
    """Swap mmengine's ``CheckpointHook`` in ``cfg.default_hooks`` for
    :class:`AtomicCheckpointHook` (same arguments); other checkpoint hooks are left alone.
    On an mmengine it was not written for (:func:`atomic_hook_supported`), the stock hook stays
    and a warning says so."""
    if not atomic_hook_supported():
        import logging

        from mmengine import __version__
        from mmengine.logging import print_log
        print_log(f'mmengine {__version__} is not one AtomicCheckpointHook was written for '
                  f'({", ".join(v + "x" for v in TESTED_MMENGINE)}): keeping mmengine\'s '
                  f'CheckpointHook (checkpoints are not crash-safe)', logger='current',
                  level=logging.WARNING)
        return
    hook = (cfg.get('default_hooks') or {}).get('checkpoint')
    if hook and hook.get('type') in ('CheckpointHook', CheckpointHook):
        hook['type'] = ATOMIC_CHECKPOINT_HOOK


def read_last_checkpoint(work_dir: str) -> Optional[str]:
    """The path mmengine's ``last_checkpoint`` pointer in ``work_dir`` names, as written (the
    file may since have been deleted); None without a pointer or with an empty one."""
    try:
        with open(osp.join(work_dir, LAST_CHECKPOINT)) as f:
            return f.read().strip() or None
    except OSError:  # no pointer (or an unreadable one): nothing to resume from
        return None


def last_complete_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from: the one ``last_checkpoint`` in ``work_dir``
    names, when that file exists; None otherwise. Complete, since :class:`AtomicCheckpointHook`
    replaces the checkpoint and then the pointer atomically (a killed run leaves the previous
    pair)."""
    path = read_last_checkpoint(work_dir)
    return path if path and osp.isfile(path) else None
