"""Pictures for the demo: predictions drawn by mmdet's and mmseg's own visualizers, tiled with
captions, and training curves from mmengine's logs.

* :func:`detection_pictures`: ``mmdet.visualization.DetLocalVisualizer`` draws each image's
  instances (masks, boxes, class names and scores).
* :func:`segmentation_pictures`: each image, then ``mmseg.visualization.SegLocalVisualizer``
  drawing its ground truth and its prediction over it (with class names).
* :func:`tile`: several pictures in a grid, with captions.
* :func:`plot_training`: loss (left) and validation metrics (right) against the iteration, from
  the records of :func:`regnet_backbone.runtime.logs.read_scalars`.
* :func:`write_png`: encode and write a picture (atomically).

Pictures are (H, W, 3) uint8 RGB numpy arrays; the results drawn are those of
:func:`regnet_backbone.apis.predict_validation_images`. Nothing here prints.
"""
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np

from ..atomic import replace_bytes, replace_file

Colour = Tuple[int, int, int]


def _visualizer(cls, classes: Sequence[str], palette: Sequence[Colour]):
    """A ``cls`` (an mmengine ``Visualizer``) for a dataset's classes and palette, with no
    storage backend: it only draws."""
    visualizer = cls(name=f'regnet_demo_{cls.__name__}')
    visualizer.dataset_meta = dict(classes=tuple(classes), palette=list(palette))
    return visualizer


def detection_pictures(results: Sequence[Dict], classes: Sequence[str],
                       palette: Sequence[Colour],
                       score_thr: float) -> Tuple[List[np.ndarray], List[str]]:
    """Draw each result's instances scoring above ``score_thr`` on its image, as mmdet's
    ``DetLocalVisualizer`` draws predictions.

    Args:
        results: dicts with ``image`` ((H, W, 3) uint8 RGB), ``boxes`` ((N, 4) x1 y1 x2 y2
            pixels), ``labels`` ((N,)), ``scores`` ((N,)) and ``masks`` ((N, H, W) bool, or None).
        classes, palette: a name and an RGB colour per class index.

    Returns:
        ``(pictures, captions)``: one (H, W, 3) uint8 RGB picture per result, and
        ``'val K: N objects'``.
    """
    import torch
    from mmdet.structures import DetDataSample
    from mmdet.visualization import DetLocalVisualizer
    from mmengine.structures import InstanceData
    visualizer = _visualizer(DetLocalVisualizer, classes, palette)
    pictures, captions = [], []
    for k, result in enumerate(results):
        instances = InstanceData(bboxes=torch.as_tensor(result['boxes']),
                                 labels=torch.as_tensor(result['labels']),
                                 scores=torch.as_tensor(result['scores']))
        if result['masks'] is not None:
            instances.masks = torch.as_tensor(result['masks'])
        visualizer.add_datasample('prediction', result['image'],
                                  DetDataSample(pred_instances=instances), draw_gt=False,
                                  pred_score_thr=score_thr)
        pictures.append(visualizer.get_image())
        captions.append(f'val {k}: {int((instances.scores > score_thr).sum())} objects')
    return pictures, captions


def segmentation_pictures(results: Sequence[Dict], classes: Sequence[str],
                          palette: Sequence[Colour]) -> Tuple[List[np.ndarray], List[str]]:
    """Three pictures per result: the image, then its ground truth and its prediction drawn over
    it by mmseg's ``SegLocalVisualizer``.

    Args:
        results: dicts with ``image`` ((H, W, 3) uint8 RGB) and ``ground_truth`` and
            ``prediction`` ((H, W) class indices).
        classes, palette: a name and an RGB colour per class index.

    Returns:
        ``(pictures, captions)``, three of each per result.
    """
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    from mmseg.visualization import SegLocalVisualizer
    visualizer = _visualizer(SegLocalVisualizer, classes, palette)
    pictures, captions = [], []
    for k, result in enumerate(results):
        pictures.append(result['image'])
        for key, field in (('ground_truth', 'gt_sem_seg'), ('prediction', 'pred_sem_seg')):
            label_map = PixelData(data=torch.as_tensor(result[key])[None])
            visualizer.add_datasample(key, result['image'], SegDataSample(**{field: label_map}))
            pictures.append(visualizer.get_image())
        captions += [f'val {k}', 'ground truth', 'prediction']
    return pictures, captions


def tile(pictures: Sequence[np.ndarray], columns: int, captions: Sequence[str] = (),
         gap: int = 4) -> np.ndarray:
    """Pictures (each (H, W, 3) uint8, any size) in a grid of ``columns`` on white, each with an
    optional caption line above it; rows are as tall as their tallest picture. Returns
    (H', W', 3) uint8."""
    columns = max(1, min(columns, len(pictures)))
    caption_h = 16 if captions else 0
    rows = [pictures[k:k + columns] for k in range(0, len(pictures), columns)]
    heights = [max(p.shape[0] for p in row) + caption_h for row in rows]
    cell_w = max(p.shape[1] for p in pictures)
    grid = np.full((sum(heights) + gap * (len(rows) + 1), columns * (cell_w + gap) + gap, 3), 255,
                   np.uint8)
    y = gap
    for r, row in enumerate(rows):
        for c, picture in enumerate(row):
            x = gap + c * (cell_w + gap)
            if captions:
                cv2.putText(grid, captions[r * columns + c], (x, y + 12),
                            cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            h, w = picture.shape[:2]
            grid[y + caption_h:y + caption_h + h, x:x + w] = picture
        y += heights[r] + gap
    return grid


def write_png(path: str, picture: np.ndarray) -> str:
    """Write an (H, W, 3) uint8 RGB picture as a PNG, atomically; returns ``path``."""
    ok, data = cv2.imencode('.png', np.ascontiguousarray(picture[..., ::-1]))
    if not ok:
        raise RuntimeError(f'OpenCV could not encode {path} as PNG.')
    replace_bytes(path, data.tobytes())
    return path


def plot_training(train: Sequence[Dict], val: Sequence[Dict], path: str,
                  loss_keys: Sequence[str] = ('loss', ), metric_keys: Sequence[str] = (),
                  metric_scale: float = 1.0, title: str = '') -> str:
    """Write a PNG with the training losses (left) and validation metrics (right) by iteration.

    Args:
        train, val: records from :func:`regnet_backbone.runtime.logs.read_scalars`.
        loss_keys: training keys to draw; the first is drawn bold (the total loss), keys absent
            from the log are skipped.
        metric_keys: validation keys to draw, each multiplied by ``metric_scale`` (e.g. 0.01 for
            mmseg's percentages).
        path: output PNG.

    Returns:
        ``path``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(11, 4), dpi=100)
    FigureCanvasAgg(figure)
    loss_ax, metric_ax = figure.subplots(1, 2)
    for k, key in enumerate(loss_keys):
        points = [(r['step'], r[key]) for r in train if key in r]
        if points:
            steps, values = zip(*points)
            loss_ax.plot(steps, values, label=key, linewidth=2.0 if k == 0 else 1.0,
                         alpha=1.0 if k == 0 else 0.8)
    loss_ax.set(xlabel='iteration', ylabel='training loss', title='training loss')
    loss_ax.grid(alpha=0.3)
    if loss_ax.lines:
        loss_ax.legend(fontsize=8)
    for key in metric_keys:
        points = [(r['step'], r[key] * metric_scale) for r in val if key in r]
        if points:
            steps, values = zip(*points)
            metric_ax.plot(steps, values, marker='o', label=f'{key} (last {values[-1]:.3f})')
    metric_ax.set(xlabel='iteration', ylabel='validation metric', title='validation',
                  ylim=(0, 1))
    if train:
        metric_ax.set_xlim(0, max(r['step'] for r in train) * 1.05)
    metric_ax.grid(alpha=0.3)
    if metric_ax.lines:
        metric_ax.legend(fontsize=8, loc='lower right')
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    replace_file(path, lambda tmp: figure.savefig(tmp, format='png'))
    return path
