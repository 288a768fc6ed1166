"""Pictures for the demo: predictions drawn on images, and training curves from mmengine's logs.

* :func:`read_scalars` (from :mod:`regnet_backbone.runtime.logs`): the training and validation
  scalars mmengine logged under a work dir, resumed runs stitched together.
* :func:`draw_detections` / :func:`draw_segmentation`: one image with instance masks, boxes,
  class names and scores, or with a label map blended in.
* :func:`tile`: several pictures in a grid, with captions.
* :func:`plot_training`: loss (left) and validation metrics (right) against the iteration.
* :func:`write_png`: encode and write a picture (atomically).

Pictures are (H, W, 3) uint8 RGB numpy arrays. Needs numpy, OpenCV and (for the plot)
matplotlib; imports neither torch nor the OpenMMLab codebases. Nothing here prints.
"""
import os
import os.path as osp
from typing import Dict, Optional, Sequence, Tuple

import cv2
import numpy as np

from ..atomic import replace_bytes, replace_file
from ..runtime.logs import last_metrics, read_scalars  # noqa: F401 (re-exported)

Colour = Tuple[int, int, int]


# --- drawing -------------------------------------------------------------------------------------
def _text(canvas: np.ndarray, text: str, x: int, y: int, colour: Colour,
          scale: float = 0.4) -> None:
    """Text with a filled background box whose top-left corner is (x, y), kept inside."""
    (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    x = int(np.clip(x, 0, max(canvas.shape[1] - w - 2, 0)))
    y = int(np.clip(y, 0, max(canvas.shape[0] - h - base - 2, 0)))
    cv2.rectangle(canvas, (x, y), (x + w + 2, y + h + base + 2), colour, -1)
    luminance = 0.299 * colour[0] + 0.587 * colour[1] + 0.114 * colour[2]
    ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
    cv2.putText(canvas, text, (x + 1, y + h + 1), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, 1,
                cv2.LINE_AA)


def draw_detections(image: np.ndarray, boxes: np.ndarray, labels: np.ndarray,
                    scores: np.ndarray, masks: Optional[np.ndarray], classes: Sequence[str],
                    palette: Sequence[Colour], score_thr: float = 0.3,
                    alpha: float = 0.5) -> np.ndarray:
    """Instances drawn on a copy of ``image``: mask tint and outline, box, ``class score``.

    Args:
        image: (H, W, 3) uint8 RGB.
        boxes: (N, 4) x1, y1, x2, y2 in pixels; labels: (N,) class indices; scores: (N,).
        masks: (N, H, W) bool, or None.
        classes, palette: a name and an RGB colour per class index.
        score_thr: instances scoring below it are not drawn.

    Returns:
        (H, W, 3) uint8 RGB.
    """
    canvas = image.astype(np.float32)
    keep = [i for i in np.argsort(scores) if scores[i] >= score_thr]  # best drawn last, on top
    for i in keep:
        if masks is not None:
            colour = np.array(palette[int(labels[i]) % len(palette)], np.float32)
            canvas[masks[i]] = (1 - alpha) * canvas[masks[i]] + alpha * colour
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    for i in keep:
        colour = tuple(int(c) for c in palette[int(labels[i]) % len(palette)])
        if masks is not None:
            contours, _ = cv2.findContours(masks[i].astype(np.uint8), cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(canvas, contours, -1, (255, 255, 255), 1)
        x1, y1, x2, y2 = (int(round(float(v))) for v in boxes[i])
        cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 1)
        name = classes[int(labels[i])] if int(labels[i]) < len(classes) else str(int(labels[i]))
        _text(canvas, f'{name} {float(scores[i]):.2f}', x1, y1 - 13, colour)
    return canvas


def colourise(label_map: np.ndarray, palette: Sequence[Colour]) -> np.ndarray:
    """(H, W) class indices -> (H, W, 3) uint8 RGB; indices outside the palette are grey."""
    table = np.full((256, 3), 128, np.uint8)
    table[:len(palette)] = np.asarray(palette, np.uint8)
    return table[np.clip(label_map, 0, 255).astype(np.uint8)]


def draw_segmentation(image: np.ndarray, label_map: np.ndarray, palette: Sequence[Colour],
                      alpha: float = 0.6, background: Optional[int] = 0) -> np.ndarray:
    """``label_map`` ((H, W) ints) blended over ``image`` ((H, W, 3) uint8 RGB); pixels of the
    ``background`` class keep the image. Returns (H, W, 3) uint8 RGB."""
    colours = colourise(label_map, palette).astype(np.float32)
    blend = (1 - alpha) * image.astype(np.float32) + alpha * colours
    if background is not None:
        blend[label_map == background] = image[label_map == background]
    return np.clip(blend, 0, 255).astype(np.uint8)


def legend(classes: Sequence[str], palette: Sequence[Colour], width: int) -> np.ndarray:
    """A one-line strip naming each class in its colour, (20, width, 3) uint8 RGB."""
    strip = np.full((20, width, 3), 255, np.uint8)
    x = 4
    for name, colour in zip(classes, palette):
        cv2.rectangle(strip, (x, 5), (x + 10, 15), tuple(int(c) for c in colour), -1)
        cv2.putText(strip, name, (x + 14, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
        x += 24 + cv2.getTextSize(name, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)[0][0]
    return strip


def tile(pictures: Sequence[np.ndarray], columns: int,
         captions: Optional[Sequence[str]] = None, gap: int = 4) -> np.ndarray:
    """Pictures (each (H, W, 3) uint8, any size) in a grid of ``columns`` on white, each with an
    optional caption line above it; rows are as tall as their tallest picture. Returns
    (H', W', 3) uint8."""
    if not len(pictures):
        raise ValueError('tile() needs at least one picture.')
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


# --- curves --------------------------------------------------------------------------------------
def plot_training(train: Sequence[Dict], val: Sequence[Dict], path: str,
                  loss_keys: Sequence[str] = ('loss', ), metric_keys: Sequence[str] = (),
                  metric_scale: float = 1.0, title: str = '') -> str:
    """Write a PNG with the training losses (left) and validation metrics (right) by iteration.

    Args:
        train, val: records from :func:`read_scalars`.
        loss_keys: training keys to draw; the first is drawn bold (the total loss), keys absent
            from the log are skipped.
        metric_keys: validation keys to draw, each multiplied by ``metric_scale`` (e.g. 0.01 for
            mmseg's percentages).
        path: output PNG.

    Returns:
        ``path``.
    """
    import matplotlib
    matplotlib.use('Agg', force=False)
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
