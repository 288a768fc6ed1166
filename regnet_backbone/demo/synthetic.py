"""A tiny, deterministic synthetic "COCO" of overlapping shapes, for tests and the demo.

Each image draws 2-5 circles, rectangles (squares included, any rotation) and triangles, painted
in turn on a textured, noisy background, so later shapes occlude earlier ones. Annotations
describe what is *visible*: one COCO instance per shape with an RLE mask of its visible pixels,
the tight box of that mask and its area. Shapes that would be mostly hidden are left out (never
painted), so every painted object is annotated and an image keeps at least one shape. A semantic
label map (0 = background, k = ``CLASSES[k - 1]``) is written beside each image for mmseg.

Layout under ``root``::

    annotations/instances_{train,val}.json   COCO instances (RLE masks, categories 1..3)
    {train,val}/000000.jpg ...               images (BGR JPEG, quality 95)
    seg/{train,val}/000000.png               semantic labels (uint8, 0 = background)
    synthetic.json                           the parameters; present only once complete
    .regnet-synthetic                        marker: this folder belongs to the generator

Everything depends only on ``(seed, split, index, size)``: the same arguments give the same
bytes, and calling again with the same arguments leaves a complete dataset untouched.

The generator writes only into a folder that does not exist, an empty folder, or one it created
itself, recognised by the marker file ``.regnet-synthetic`` (written first; a complete dataset
of an earlier version, recognised by its ``synthetic.json``, gets one). Any other folder is
refused with :class:`OutputFolderError` before anything is written or deleted.
Needs numpy, OpenCV and pycocotools.
"""
import contextlib
import json
import os
import os.path as osp
from dataclasses import asdict, dataclass
from typing import Dict, List, Tuple

import cv2
import numpy as np

from ..errors import RegNetError

CLASSES = ('circle', 'rectangle', 'triangle')
SEG_CLASSES = ('background', ) + CLASSES
PALETTE = [(220, 20, 60), (0, 128, 255), (60, 180, 75)]
SEG_PALETTE = [(0, 0, 0)] + PALETTE
SPLITS = ('train', 'val')
FORMAT_VERSION = 1
MANIFEST = 'synthetic.json'
MARKER = '.regnet-synthetic'


class SyntheticDataError(RegNetError):
    """A request the generator cannot fulfil (bad arguments, a foreign or unwritable output
    folder)."""


class OutputFolderError(SyntheticDataError, FileExistsError):
    """The output folder holds files the generator did not write: refused, nothing changed."""


@contextlib.contextmanager
def writing_to(root: str):
    """Writing a dataset under ``root``: an ``OSError`` (no permission, a full disk) becomes a
    :class:`SyntheticDataError` naming the folder."""
    try:
        yield
    except OutputFolderError:
        raise
    except OSError as e:
        raise SyntheticDataError(f'cannot write the synthetic dataset to {root}: '
                                 f'{e.strerror or e}; choose a folder you can write to.') from e

# A shape is dropped (never painted) when less than this share of it, or fewer pixels than
# MIN_VISIBLE_PIXELS, would remain visible: hidden objects would only teach label noise.
MIN_VISIBLE_FRACTION = 0.35
MIN_VISIBLE_PIXELS = 24


@dataclass(frozen=True)
class SyntheticCoco:
    """Where a generated dataset lives (paths are relative to ``root`` unless said otherwise)."""
    root: str
    num_train: int
    num_val: int
    size: int
    seed: int

    def ann_file(self, split: str) -> str:
        return f'annotations/instances_{split}.json'

    def img_dir(self, split: str) -> str:
        return f'{split}/'

    def seg_dir(self, split: str) -> str:
        return f'seg/{split}/'

    @property
    def classes(self) -> Tuple[str, ...]:
        return CLASSES

    @property
    def seg_classes(self) -> Tuple[str, ...]:
        return SEG_CLASSES


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth colour gradient plus blurred blotches plus pixel noise, (size, size, 3) uint8."""
    base = rng.uniform(50, 205, size=3)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx + np.sin(angle) * yy)[..., None]
    img = base + rng.uniform(-45, 45, size=3) * (ramp - 0.5)
    blotch = rng.normal(0, 1, size=(size, size, 3)).astype(np.float32)
    sigma = max(size / 24, 1.0)
    blotch = cv2.GaussianBlur(blotch, (0, 0), sigma)
    blotch /= blotch.std() + 1e-6
    img = img + 18 * blotch + rng.normal(0, 7, size=(size, size, 3))
    return img


def shape_mask(rng: np.random.Generator, size: int) -> Tuple[int, np.ndarray]:
    """One random shape: (class index, full (size, size) bool mask)."""
    label = int(rng.integers(len(CLASSES)))
    radius = rng.uniform(0.10, 0.24) * size
    cx, cy = rng.uniform(0.15, 0.85, size=2) * size
    canvas = np.zeros((size, size), np.uint8)
    if CLASSES[label] == 'circle':
        cv2.circle(canvas, (int(round(cx)), int(round(cy))), int(round(radius)), 1, -1,
                   lineType=cv2.LINE_8)
    elif CLASSES[label] == 'rectangle':
        aspect = 1.0 if rng.random() < 0.4 else rng.uniform(0.45, 1.0)  # squares are common
        width, height = 1.7 * radius, 1.7 * radius * aspect
        box = ((float(cx), float(cy)), (float(width), float(height)), float(rng.uniform(0, 90)))
        cv2.fillPoly(canvas, [np.round(cv2.boxPoints(box)).astype(np.int32)], 1,
                     lineType=cv2.LINE_8)
    else:
        start = rng.uniform(0, 2 * np.pi)
        angles = start + np.array([0, 2 * np.pi / 3, 4 * np.pi / 3]) + rng.uniform(-0.35, 0.35, 3)
        points = np.stack([cx + radius * 1.2 * np.cos(angles), cy + radius * 1.2 * np.sin(angles)],
                          axis=1)
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 1, lineType=cv2.LINE_8)
    return label, canvas.astype(bool)


def shape_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A colour that stands out from the mean background colour (at least 80 apart, L2)."""
    mean = background.reshape(-1, 3).mean(0)
    colour = rng.uniform(0, 255, size=3)
    for _ in range(20):
        if np.linalg.norm(colour - mean) >= 80:
            break
        colour = rng.uniform(0, 255, size=3)
    return colour


def render_image(seed: int, split: str, index: int,
                 size: int) -> Tuple[np.ndarray, np.ndarray, List[Tuple[int, np.ndarray]]]:
    """Draw one image.

    Returns:
        image: (size, size, 3) uint8, BGR (what ``cv2.imwrite`` and mmcv expect).
        semantic: (size, size) uint8 labels, 0 = background, k = ``CLASSES[k - 1]``.
        instances: bottom-to-top list of (class index, visible (size, size) bool mask).
    """
    rng = np.random.default_rng([seed, SPLITS.index(split), index, size])
    canvas = background(rng, size)
    shapes = [shape_mask(rng, size) for _ in range(int(rng.integers(2, 6)))]
    colours = [shape_colour(rng, canvas) for _ in shapes]

    # Decide visibility from the top shape down, so a dropped shape occludes nothing.
    kept, occluder = [], np.zeros((size, size), bool)
    for i in reversed(range(len(shapes))):
        label, full = shapes[i]
        visible = full & ~occluder
        area = int(visible.sum())
        if area < MIN_VISIBLE_PIXELS or area < MIN_VISIBLE_FRACTION * full.sum():
            continue
        kept.append((i, label, visible))
        occluder |= full
    kept.reverse()

    image = canvas
    semantic = np.zeros((size, size), np.uint8)
    for i, label, visible in kept:
        full = shapes[i][1]
        shading = rng.normal(0, 6, size=(size, size, 1))
        image = np.where(full[..., None], colours[i] + shading, image)
        semantic[visible] = label + 1
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return image, semantic, [(label, visible) for _, label, visible in kept]


def _coco_instance(mask: np.ndarray) -> Dict:
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    bbox = [float(v) for v in mask_utils.toBbox(rle)]
    area = float(mask_utils.area(rle))
    rle['counts'] = rle['counts'].decode('ascii')
    return dict(segmentation=rle, bbox=bbox, area=area, iscrowd=0)


def _remove_stale(folder: str, count: int) -> None:
    # mmseg lists image folders instead of reading the json: drop images of a larger earlier run.
    for name in os.listdir(folder):
        stem, ext = osp.splitext(name)
        if ext in ('.jpg', '.png') and stem.isdigit() and int(stem) >= count:
            os.remove(osp.join(folder, name))


def _write_split(spec: SyntheticCoco, split: str, count: int) -> None:
    root = spec.root
    for folder in (spec.img_dir(split), spec.seg_dir(split)):
        os.makedirs(osp.join(root, folder), exist_ok=True)
        _remove_stale(osp.join(root, folder), count)
    images, annotations = [], []
    for index in range(count):
        image, semantic, instances = render_image(spec.seed, split, index, spec.size)
        name = f'{index:06d}'
        ok_img, jpg = cv2.imencode('.jpg', image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        ok_seg, png = cv2.imencode('.png', semantic)
        if not (ok_img and ok_seg):
            raise RuntimeError(f'OpenCV could not encode synthetic image {split}/{name}.')
        with open(osp.join(root, spec.img_dir(split), name + '.jpg'), 'wb') as f:
            f.write(jpg.tobytes())
        with open(osp.join(root, spec.seg_dir(split), name + '.png'), 'wb') as f:
            f.write(png.tobytes())
        image_id = index + 1
        images.append(dict(id=image_id, file_name=name + '.jpg', width=spec.size,
                           height=spec.size))
        for label, visible in instances:
            annotations.append(dict(id=len(annotations) + 1, image_id=image_id,
                                    category_id=label + 1, **_coco_instance(visible)))
    coco = dict(
        info=dict(description='regnet_backbone synthetic shapes', version=FORMAT_VERSION,
                  seed=spec.seed, size=spec.size, split=split),
        images=images,
        annotations=annotations,
        categories=[dict(id=k + 1, name=name, supercategory='shape')
                    for k, name in enumerate(CLASSES)])
    path = osp.join(root, spec.ann_file(split))
    os.makedirs(osp.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        json.dump(coco, f, separators=(',', ':'))


def _manifest(spec: SyntheticCoco) -> Dict:
    params = asdict(spec)
    params.pop('root')
    return dict(format_version=FORMAT_VERSION, **params)


def _is_complete(spec: SyntheticCoco) -> bool:
    try:
        with open(osp.join(spec.root, MANIFEST)) as f:
            if json.load(f) != _manifest(spec):
                return False
    except (OSError, ValueError):
        return False
    for split, count in zip(SPLITS, (spec.num_train, spec.num_val)):
        if not osp.isfile(osp.join(spec.root, spec.ann_file(split))):
            return False
        last = f'{count - 1:06d}'
        if count and not (osp.isfile(osp.join(spec.root, spec.img_dir(split), last + '.jpg'))
                          and osp.isfile(osp.join(spec.root, spec.seg_dir(split), last + '.png'))):
            return False
    return True


def _is_our_manifest(path: str) -> bool:
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(manifest, dict) and {'format_version', 'num_train', 'num_val', 'size',
                                           'seed'} <= set(manifest)


def claim_folder(root: str) -> None:
    """Make sure ``root`` is the generator's to write: create it, or accept it when it is
    empty or carries :data:`MARKER` (or our ``synthetic.json``); write the marker.

    Raises:
        OutputFolderError: ``root`` is a file, or a folder holding other files.
    """
    if osp.lexists(root) and not osp.isdir(root):
        raise OutputFolderError(f'{root} exists and is not a folder; choose a folder for the '
                                f'synthetic dataset.')
    os.makedirs(root, exist_ok=True)
    names = sorted(os.listdir(root))
    if MARKER in names:
        return
    if names and not (MANIFEST in names and _is_our_manifest(osp.join(root, MANIFEST))):
        shown = ', '.join(names[:3]) + (' ...' if len(names) > 3 else '')
        raise OutputFolderError(
            f'{root} is not empty ({shown}) and was not written by this generator (no '
            f'{MARKER} marker); choose a new or empty folder. Nothing was changed.')
    with open(osp.join(root, MARKER), 'w') as f:
        json.dump(dict(generator='regnet_backbone.demo.synthetic',
                       format_version=FORMAT_VERSION), f)
        f.write('\n')


def make_synthetic_coco(root: str, num_train: int = 16, num_val: int = 4, size: int = 128,
                        seed: int = 0) -> SyntheticCoco:
    """Write (or keep, when already complete) a synthetic shapes dataset under ``root``.

    Args:
        root: output folder: new, empty, or written by this generator before (see
            :func:`claim_folder`; anything else raises :class:`OutputFolderError`, a folder that
            cannot be written :class:`SyntheticDataError`).
        num_train, num_val: images per split.
        size: image side in pixels (square images; at least 32).
        seed: everything is a pure function of the seed, the split, the index and the size.

    Returns:
        a :class:`SyntheticCoco` with the paths mmdet/mmseg configs need.
    """
    if size < 32:
        raise SyntheticDataError(f'size={size} is too small for the shapes; use at least 32 '
                                 f'pixels.')
    if num_train < 1 or num_val < 1:
        raise SyntheticDataError(f'num_train={num_train} and num_val={num_val} must both be >= 1.')
    spec = SyntheticCoco(osp.abspath(root), int(num_train), int(num_val), int(size), int(seed))
    with writing_to(spec.root):
        claim_folder(spec.root)
        if _is_complete(spec):
            return spec
        manifest = osp.join(spec.root, MANIFEST)
        if osp.exists(manifest):
            os.remove(manifest)  # mark incomplete until every file is rewritten
        for split, count in zip(SPLITS, (spec.num_train, spec.num_val)):
            _write_split(spec, split, count)
        with open(manifest, 'w') as f:
            json.dump(_manifest(spec), f, indent=2, sort_keys=True)
    return spec
