"""A deterministic synthetic classification set: which shape, and how many, on a textured image.

Six classes, ``CLASSES``: one or two circles, rectangles or triangles, painted without overlap on
the same noisy, textured backgrounds as the detection demo (:mod:`.synthetic`). A backbone must
learn both the shape (local structure) and the count (a global property), and colour gives no
hint: every shape takes a random colour that stands out from its background.

Layout under ``root`` (what mmpretrain's ``CustomDataset`` reads, one folder per class)::

    {train,val}/<class>/000000.png    images (BGR PNG, ``size`` x ``size``)
    synthetic_cls.json                the parameters; present only once complete

The same ``(seed, split, index, size)`` always gives the same image. Needs numpy and OpenCV.
"""
import json
import os
import os.path as osp
import shutil
from typing import Tuple

import cv2
import numpy as np

from ..atomic import replace_bytes
from .synthetic import CLASSES as SHAPES
from .synthetic import OutputFolderError, background, shape_colour, shape_mask, writing_to

COUNTS = (1, 2)
CLASSES = tuple(f'{n}_{shape}{"s" if n > 1 else ""}' for shape in SHAPES for n in COUNTS)
SPLITS = ('train', 'val')
MANIFEST = 'synthetic_cls.json'
FORMAT_VERSION = 1


def render_image(seed: int, split: str, index: int, size: int) -> Tuple[np.ndarray, int]:
    """Draw one image: ((size, size, 3) uint8 BGR, class index into ``CLASSES``)."""
    rng = np.random.default_rng([seed, 100 + SPLITS.index(split), index, size])
    label = int(rng.integers(len(CLASSES)))
    shape, count = divmod(label, len(COUNTS))
    count = COUNTS[count]
    while True:  # a layout where the shapes cannot all be placed apart is drawn again
        image = background(rng, size)
        taken = np.zeros((size, size), bool)
        painted = 0
        for _ in range(300):
            kind, mask = shape_mask(rng, size)
            if kind != shape or not mask.any():
                continue
            grown = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            if (grown & taken).any():  # shapes never touch, so they can be counted
                continue
            image[mask] = shape_colour(rng, image)
            taken |= grown
            painted += 1
            if painted == count:
                return np.clip(image, 0, 255).astype(np.uint8), label


def make_synthetic_classification(root: str, num_train: int = 3000, num_val: int = 300,
                                  size: int = 64, seed: int = 0) -> str:
    """Write the dataset under ``root`` (skipped when a complete one with the same parameters is
    there) and return ``root``. ``root`` must be empty, absent or a dataset written by this
    function: a folder holding anything else raises :class:`~.synthetic.OutputFolderError` (a
    ``FileExistsError``) and is left untouched; one that cannot be written raises
    :class:`~.synthetic.SyntheticDataError`."""
    with writing_to(root):
        return _write_classification(root, num_train, num_val, size, seed)


def _write_classification(root: str, num_train: int, num_val: int, size: int, seed: int) -> str:
    params = dict(format=FORMAT_VERSION, num_train=num_train, num_val=num_val, size=size,
                  seed=seed, classes=list(CLASSES))
    manifest = osp.join(root, MANIFEST)
    if osp.isfile(manifest):
        with open(manifest) as f:
            if json.load(f) == params:
                return root
        os.remove(manifest)  # ours, with other parameters: regenerate from scratch
        for split in SPLITS:
            shutil.rmtree(osp.join(root, split), ignore_errors=True)
    elif osp.isdir(root) and not set(os.listdir(root)) <= set(SPLITS):
        # Only an interrupted run of ours leaves split folders without the manifest.
        raise OutputFolderError(f'{root} holds files that are not a synthetic classification '
                                f'set; give an empty or new folder.')
    for split, count in zip(SPLITS, (num_train, num_val)):
        for name in CLASSES:
            os.makedirs(osp.join(root, split, name), exist_ok=True)
        for index in range(count):
            image, label = render_image(seed, split, index, size)
            ok, data = cv2.imencode('.png', image)
            replace_bytes(osp.join(root, split, CLASSES[label], f'{index:06d}.png'),
                          data.tobytes())
    replace_bytes(manifest, json.dumps(params, indent=2).encode())
    return root
