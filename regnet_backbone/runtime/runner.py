"""``RegNetRunner``: mmengine's Runner with strict loading, registered in mmengine's ``RUNNERS``.

mmengine's Runner loads ``load_from``, ``--resume`` and tools/test.py's checkpoint with
``strict=False``. This subclass does the engine's own work once and checks it in place:

* :meth:`RegNetRunner.load_checkpoint` reads the file once (weights-only, with the allow-list of
  what Runner checkpoints hold), lets the hooks see it (``after_load_checkpoint``:
  ``RegNetCheckpointHook`` translates mmdet's ``RegNet`` names), compares it with the model the
  Runner built and refuses a misfit in one line (:func:`~.loading.check_state_fits`);
* the backbone's pretrained weights load during the Runner's own weight initialisation
  (``RegNetPretrained``); a missing or misfitting file becomes one line naming the fix.
"""
import logging

from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import _load_checkpoint_to_model

from ..checkpoints.errors import CheckpointError, CheckpointNotFoundError
from .errors import CheckpointRefusedError
from .loading import check_state_fits, pretrained_not_found, read_model_checkpoint


@RUNNERS.register_module()
class RegNetRunner(Runner):
    """mmengine's ``Runner`` whose checkpoint loading is strict (``partial_load=True`` in the
    config opts out) and whose errors are one line. Everything else is mmengine's."""

    _resuming = False

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):  # noqa: B006 (mmengine's)
        checkpoint = read_model_checkpoint(filename)  # local files, zoo names and URLs
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        for line in check_state_fits(self.cfg, checkpoint, str(filename),
                                     resume=self._resuming, shapes=shapes):
            self.logger.log(logging.WARNING, line)
        checkpoint = _load_checkpoint_to_model(model, checkpoint, strict, revise_keys=revise_keys)
        self._has_loaded = True
        self.logger.info(f'Load checkpoint from {filename}')
        return checkpoint

    def resume(self, filename: str, resume_optimizer: bool = True,
               resume_param_scheduler: bool = True, map_location='default') -> None:
        self._resuming = True
        try:
            super().resume(filename, resume_optimizer, resume_param_scheduler, map_location)
        finally:
            self._resuming = False

    def _init_model_weights(self) -> None:
        try:
            super()._init_model_weights()
        except CheckpointNotFoundError:  # the backbone's init_cfg names a missing file
            raise pretrained_not_found(self.cfg) from None
        except CheckpointError as e:
            raise CheckpointRefusedError(f'model.backbone.init_cfg: {e}') from None
