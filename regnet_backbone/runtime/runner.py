"""``RegNetRunner``: mmengine's Runner with strict loading, registered in mmengine's ``RUNNERS``.

mmengine's Runner loads ``load_from``, ``--resume`` and tools/test.py's checkpoint with
``strict=False``. This subclass does the engine's own work once and checks it in place:

* :meth:`RegNetRunner.load_checkpoint` reads the file once (weights-only, with the allow-list of
  what Runner checkpoints hold), lets the hooks see it (``after_load_checkpoint``:
  ``RegNetCheckpointHook`` translates mmdet's ``RegNet`` names), compares it with the model the
  Runner built, refuses a misfit in one line (:func:`~.strict_loading.check_state_fits`) and
  loads the very state dict it compared;
* the backbone's pretrained weights load during the Runner's own weight initialisation
  (``RegNetPretrained``); a missing or misfitting file becomes one line naming the fix.
"""
import logging

from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmengine.runner.checkpoint import load_state_dict

from ..checkpoints.errors import CheckpointError, CheckpointNotFoundError
from ..checkpoints.state_dict import model_state_dict, shapes
from .errors import CheckpointRefusedError
from .strict_loading import check_state_fits, pretrained_not_found, read_model_checkpoint


@RUNNERS.register_module()
class RegNetRunner(Runner):
    """mmengine's ``Runner`` whose checkpoint loading is strict (``partial_load=True`` in the
    config opts out) and whose errors are one line. Everything else is mmengine's."""

    _resuming = False

    def load_checkpoint(self, filename: str, map_location='cpu', strict: bool = False,
                        revise_keys: list = [(r'^module.', '')]):  # noqa: B006 (mmengine's)
        """mmengine's ``load_checkpoint``, strict (see the module docstring). ``revise_keys``
        is kept for mmengine's signature; mmengine passes only its default, removing
        ``module.``, which is what :func:`~regnet_backbone.checkpoints.model_state_dict` does."""
        checkpoint = read_model_checkpoint(filename)  # local files, zoo names and URLs
        self.call_hook('after_load_checkpoint', checkpoint=checkpoint)
        model = self.model.module if is_model_wrapper(self.model) else self.model
        for line in check_state_fits(self.cfg, checkpoint, str(filename), shapes(model),
                                     resume=self._resuming):
            self.logger.log(logging.WARNING, line)
        load_state_dict(model, model_state_dict(checkpoint), strict, logger=self.logger)
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
