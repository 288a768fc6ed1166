"""Inference helpers beside the engine (as ``mmdet.apis`` / ``mmpretrain.apis``): a trained
model and its predictions on validation images, as numpy arrays (for drawing)."""
import os.path as osp
from typing import Dict, List

from ..checkpoints.state_dict import model_state_dict, shapes
from ..runtime.config import PARTIAL_LOAD, codebase_of, registries
from ..runtime.errors import CheckpointNotFoundError
from ..runtime.strict_loading import check_state_fits, read_model_checkpoint


def load_for_inference(cfg, checkpoint: str):
    """The model of ``cfg`` with the weights of ``checkpoint`` (a Runner checkpoint or a state
    dict), in eval mode on the CPU, and the validation dataset it is evaluated on.

    Returns:
        ``(model, dataset)``; ``dataset.metainfo`` holds ``classes`` and ``palette``.
    """
    from mmengine.registry import DefaultScope
    from mmengine.runner.checkpoint import load_state_dict
    scope = codebase_of(cfg)
    if not osp.isfile(checkpoint):
        raise CheckpointNotFoundError(f'checkpoint not found: {checkpoint}')
    MODELS, DATASETS = registries(scope)
    with DefaultScope.overwrite_default_scope(scope):
        model = MODELS.build(cfg.model)
        dataset = DATASETS.build(cfg.val_dataloader.dataset)
    obj = read_model_checkpoint(checkpoint)  # read once, checked, then loaded
    check_state_fits(cfg, obj, checkpoint, shapes(model))
    load_state_dict(model, model_state_dict(obj), strict=not cfg.get(PARTIAL_LOAD))
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
