"""Fashion-MNIST, unpacked where mmpretrain's ``FashionMNIST`` dataset reads it.

Debian's ``dataset-fashion-mnist`` package (installed by ``tools/setup_env.sh`` through
``tools/get_fashion_mnist.sh``) ships the original gzipped idx files under
:data:`SOURCE_DIR`. mmpretrain reads the *unpacked* files from its ``data_prefix`` folder::

    DATA_ROOT/train-images-idx3-ubyte   (60000, 28, 28) uint8, big-endian idx header
    DATA_ROOT/train-labels-idx1-ubyte   (60000,) uint8 class indices 0-9
    DATA_ROOT/t10k-images-idx3-ubyte    (10000, 28, 28)
    DATA_ROOT/t10k-labels-idx1-ubyte    (10000,)

:func:`prepare_fashion_mnist` unpacks what is missing or incomplete, one file at a time through
:func:`regnet_backbone.atomic.replace_file` (an interrupted run leaves the old file or none,
never a prefix), and leaves complete files untouched. A file is complete when its idx header is
valid and its size is what the header says. Needs only the standard library.
"""
import gzip
import math
import os
import os.path as osp
import shutil
import struct
from typing import Dict, Optional, Tuple

from ..atomic import replace_file
from ..errors import RegNetError

#: Where Debian's dataset-fashion-mnist package puts the gzipped idx files.
SOURCE_DIR = '/usr/share/datasets/fashion-mnist'
PACKAGE = 'dataset-fashion-mnist'
#: The unpacked files mmpretrain's FashionMNIST reads, by split: (images, labels).
FILES = {'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
         'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')}
CLASSES = ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker',
           'Bag', 'Ankle boot')


class FashionMNISTError(RegNetError, ValueError):
    """The Fashion-MNIST files cannot be prepared (a bad source file)."""


class FashionMNISTNotFoundError(FashionMNISTError, FileNotFoundError):
    """Debian's package is not installed (and nothing else provides the files)."""


def idx_shape(path: str) -> Tuple[int, ...]:
    """The array shape an uncompressed idx file of unsigned bytes declares, e.g. ``(60000, 28,
    28)``; raises :class:`FashionMNISTError` for another magic number or a size that does not
    match the header (a truncated file)."""
    with open(path, 'rb') as f:
        head = f.read(4)
        if len(head) < 4 or head[:2] != b'\0\0' or head[2] != 0x08 or head[3] not in (1, 3):
            raise FashionMNISTError(f'{path} is not an idx file of unsigned bytes')
        dims = head[3]
        raw = f.read(4 * dims)
    if len(raw) < 4 * dims:
        raise FashionMNISTError(f'{path} is truncated (its idx header is incomplete)')
    shape = struct.unpack(f'>{dims}I', raw)
    size = osp.getsize(path)
    want = 4 + 4 * dims + math.prod(shape)
    if size != want:
        raise FashionMNISTError(f'{path} holds {size} bytes; its header {shape} says {want}')
    return shape


def _complete(path: str) -> Optional[Tuple[int, ...]]:
    try:
        return idx_shape(path)
    except (OSError, FashionMNISTError):
        return None


def _unpack(source: str, target: str) -> None:
    def write(tmp: str) -> None:
        try:
            with gzip.open(source, 'rb') as src, open(tmp, 'wb') as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError
            raise FashionMNISTError(f'cannot unpack {source}: {e}') from None
        if _complete(tmp) is None:
            raise FashionMNISTError(f'{source} does not hold a complete idx file')
    replace_file(target, write)


def missing_files(data_root: str) -> list:
    """The names of :data:`FILES` that are absent or incomplete under ``data_root``."""
    return [name for pair in FILES.values() for name in pair
            if _complete(osp.join(data_root, name)) is None]


def prepare_fashion_mnist(data_root: str, source: str = SOURCE_DIR) -> Dict[str, int]:
    """Unpack the files of :data:`FILES` that ``data_root`` lacks from ``source`` (the gzipped
    originals, ``<name>.gz``; an unpacked ``<name>`` there is copied instead).

    Returns:
        the number of images per split, e.g. ``{'train': 60000, 'test': 10000}``.

    Raises:
        FashionMNISTNotFoundError: a needed source file is missing (the message says how to
            install Debian's package, and the download fallback).
        FashionMNISTError: a source file is damaged, or a split's images and labels disagree.
    """
    todo = missing_files(data_root)
    if todo:
        os.makedirs(data_root, exist_ok=True)
    for name in todo:
        packed, plain = osp.join(source, name + '.gz'), osp.join(source, name)
        if osp.isfile(packed):
            _unpack(packed, osp.join(data_root, name))
        elif _complete(plain) is not None:
            replace_file(osp.join(data_root, name), lambda tmp: shutil.copyfile(plain, tmp))
        else:
            raise FashionMNISTNotFoundError(
                f'Fashion-MNIST not found: {packed} is missing. Install Debian\'s {PACKAGE} '
                f'(`sudo apt-get install {PACKAGE}`, or `bash tools/get_fashion_mnist.sh`), or '
                f'let mmpretrain download it on a machine with internet (`tools/study.py demo '
                f'--download`).')
    counts = {}
    for split, (images, labels) in FILES.items():
        shape, label_shape = (idx_shape(osp.join(data_root, n)) for n in (images, labels))
        if len(shape) != 3 or len(label_shape) != 1 or shape[0] != label_shape[0]:
            raise FashionMNISTError(f'{split}: {images} {shape} and {labels} {label_shape} do '
                                    f'not describe the same images')
        counts[split] = shape[0]
    return counts


def download_fashion_mnist(data_root: str) -> Dict[str, int]:
    """The fallback without Debian's package: mmpretrain's own ``FashionMNIST(download=True)``
    fetches and unpacks the files into ``data_root`` (needs the internet); returns the counts
    as :func:`prepare_fashion_mnist`."""
    if missing_files(data_root):
        from mmpretrain.datasets import FashionMNIST
        os.makedirs(data_root, exist_ok=True)
        FashionMNIST(data_root=data_root, split='test', test_mode=True, download=True)
    return prepare_fashion_mnist(data_root, source=data_root)
