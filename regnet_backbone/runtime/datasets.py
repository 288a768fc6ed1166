"""The data a config reads: fail early, with one sentence, when it is absent, and point a
config's datasets and evaluators at another folder."""
import os
import os.path as osp
from typing import Iterator, List, Sequence

from .config import DEMO_HINT
from .errors import DatasetNotFoundError

# Where OpenMMLab's configs expect each public dataset (relative to the working directory).
# Where OpenMMLab's configs expect each public dataset (relative to the working directory).
_DATASET_LAYOUTS = {
    'CocoDataset': ('COCO', 'data/coco/',
                    'annotations/instances_{train,val}2017.json, train2017/, val2017/'),
    'ADE20KDataset': ('ADE20K', 'data/ade/ADEChallengeData2016/',
                      'images/{training,validation}/, annotations/{training,validation}/'),
    'CityscapesDataset': ('Cityscapes', 'data/cityscapes/',
                          'leftImg8bit/{train,val}/, gtFine/{train,val}/ with *_labelTrainIds.png'),
    'ImageNet': ('ImageNet-1k', 'data/imagenet/',
                 'train/<class>/*.JPEG, val/<class>/*.JPEG, or meta/{train,val}.txt lists'),
}


def _leaf_datasets(dataset) -> Iterator[dict]:
    """The datasets that read files, looking through wrappers (Repeat, Concat, ClassBalanced)."""
    if not isinstance(dataset, dict):
        return
    if 'dataset' in dataset:
        yield from _leaf_datasets(dataset['dataset'])
    elif 'datasets' in dataset:
        for child in dataset['datasets']:
            yield from _leaf_datasets(child)
    else:
        yield dataset


def _paths_read_by(dataset: dict) -> List[str]:
    root = dataset.get('data_root') or ''
    paths = [root] if root else []
    names = [dataset.get('ann_file') or '']
    prefix = dataset.get('data_prefix') or {}
    names += [v for v in prefix.values() if isinstance(v, str)] if isinstance(prefix, dict) else []
    for name in names:
        if name and '://' not in name:
            paths.append(name if osp.isabs(name) or not root else osp.join(root, name))
    return [p for p in paths if '://' not in p]


def use_data_root(cfg, root: str) -> None:
    """Point every dataset of ``cfg`` at ``root``, and the evaluators' ``ann_file`` (mmdet's
    CocoMetric reads the ground truth itself) at the matching file under ``root``.

    A config's ``data_root`` variable is resolved when the file is read, so overriding it with
    ``--cfg-options`` would leave the datasets where they were; this rewrites every use.
    """
    root = osp.join(root, '')
    for split in ('train', 'val', 'test'):
        loader = cfg.get(f'{split}_dataloader')
        datasets = list(_leaf_datasets(loader.get('dataset'))) if loader else []
        for dataset in datasets:
            dataset['data_root'] = root
        evaluators = cfg.get(f'{split}_evaluator')
        if not datasets or not evaluators or not datasets[0].get('ann_file'):
            continue
        for evaluator in evaluators if isinstance(evaluators, list) else [evaluators]:
            if evaluator.get('ann_file'):
                evaluator['ann_file'] = osp.join(root, datasets[0]['ann_file'])


def check_datasets(cfg, config_path: str, dataloaders: Sequence[str]) -> None:
    """Raise :class:`DatasetNotFoundError` when a path one of ``dataloaders`` reads is missing.

    Args:
        dataloaders: config keys, e.g. ``('train_dataloader', 'val_dataloader')``; missing or
            None entries are skipped (a config without validation).
    """
    for key in dataloaders:
        loader = cfg.get(key)
        if not loader:
            continue
        for dataset in _leaf_datasets(loader.get('dataset')):
            for path in _paths_read_by(dataset):
                if osp.exists(path):
                    continue
                name, where, layout = _DATASET_LAYOUTS.get(
                    dataset.get('type'), ('the dataset', dataset.get('data_root') or path, ''))
                layout = f' ({layout})' if layout else ''
                raise DatasetNotFoundError(
                    f'dataset not found: {path} is missing. {osp.basename(config_path)} reads '
                    f'{name} from {where}{layout} under {os.getcwd()}; put the dataset there (or '
                    f'a symlink to it), {DEMO_HINT}.')
