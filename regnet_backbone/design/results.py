"""A study's ``results.json`` and the conversion of validation metrics to errors (pure Python).

``results.json`` is a JSON object ``{"study": {...settings...}, "trials": [record, ...]}``; each
record has ``trial``, ``arch``, ``flops``, ``params``, ``acts``, ``status`` (``'done'``,
``'failed'`` or ``'pending'``), ``metrics_final`` and ``metrics_best`` (metric key -> float),
``error`` (the failure's text) and ``wall_time``. The analysis uses ``metrics_best`` of the done
trials, as pycls uses the best epoch's error.

Errors are in percent, lower is better:

* ``100 * (1 - v)`` for a metric reported in [0, 1] ("fraction"): mmdet's COCO, LVIS and VOC
  keys (``coco/bbox_mAP``, ``coco/segm_mAP``, ``lvis/...``, ``pascal_voc/mAP``);
* ``100 - v`` for a metric reported in percent ("percent"): mmseg's ``mIoU``, ``aAcc``,
  ``mAcc``, ``mDice``, ``mFscore`` and mmpretrain's ``accuracy/top1``, ``accuracy/top5``.

Other keys need an explicit ``scale``.
"""
import json
import os
from typing import Dict, List, Optional

SCALES = ('fraction', 'percent')
TRIAL_STATUSES = ('done', 'failed', 'pending')
_PERCENT_NAMES = ('mIoU', 'aAcc', 'mAcc', 'mDice', 'mFscore', 'mPrecision', 'mRecall')
_FRACTION_PREFIXES = ('coco/', 'lvis/', 'pascal_voc/')

#: One line per rule, for CLI help texts.
ERROR_RULES = ('error = 100*(1-v) for metrics in [0, 1]: mmdet COCO, LVIS and VOC keys '
               '(coco/bbox_mAP, coco/segm_mAP, lvis/..., pascal_voc/mAP); '
               'error = 100-v for metrics in percent: '
               'mmseg mIoU, aAcc, mAcc, mDice, mFscore and mmpretrain accuracy/top1, '
               'accuracy/top5. Other keys need --scale {fraction,percent}.')


def metric_scale(key: str) -> Optional[str]:
    """``'fraction'`` or ``'percent'`` for a known metric key, else None."""
    name = key.rsplit('/', 1)[-1]
    if key.startswith('accuracy/') or name in _PERCENT_NAMES:
        return 'percent'
    if key.startswith(_FRACTION_PREFIXES):
        return 'fraction'
    return None


def metric_to_error(key: str, value: float, scale: Optional[str] = None) -> float:
    """The error in percent of a validation metric (higher is better) ``value`` named ``key``.

    Args:
        scale: ``'fraction'`` (v in [0, 1]: error = 100 (1 - v)) or ``'percent'`` (v in
            [0, 100]: error = 100 - v); None infers it from the key (see the module docstring).

    Raises:
        ValueError: an unknown key without ``scale``, or a value outside the scale's range.
    """
    scale = scale or metric_scale(key)
    if scale is None:
        raise ValueError(f'cannot tell whether metric {key!r} is a fraction or a percentage; '
                         "pass scale='fraction' (error = 100*(1-v)) or 'percent' (100-v).")
    if scale not in SCALES:
        raise ValueError(f'scale must be one of {SCALES}, got {scale!r}.')
    value = float(value)
    top = 1.0 if scale == 'fraction' else 100.0
    if not 0 <= value <= top:
        raise ValueError(f'metric {key!r} = {value} is outside [0, {top:g}] for scale {scale!r}.')
    return 100.0 * (1.0 - value) if scale == 'fraction' else 100.0 - value


def load_results(path: str) -> dict:
    """Read and check a study's ``results.json``.

    Raises:
        FileNotFoundError: no such file. json.JSONDecodeError (a ValueError): not JSON.
        ValueError: not a ``{"study": ..., "trials": [...]}`` object.
    """
    with open(path) as f:
        results = json.load(f)
    if not isinstance(results, dict) or not isinstance(results.get('trials'), list):
        raise ValueError(f'{path}: not a study results file (expected a JSON object with a '
                         '"trials" list; tools/study.py collect writes one).')
    for i, record in enumerate(results['trials']):
        if not isinstance(record, dict) or record.get('status') not in TRIAL_STATUSES:
            raise ValueError(f'{path}: trial record {i} needs a status in {TRIAL_STATUSES}.')
    results.setdefault('study', {})
    return results


def study_name(results: dict, path: str) -> str:
    """The study's ``name`` setting, else the folder holding its results file."""
    name = results.get('study', {}).get('name')
    if name:
        return str(name)
    folder = os.path.basename(os.path.dirname(os.path.abspath(path)))
    return folder or os.path.splitext(os.path.basename(path))[0]


def done_trials(results: dict) -> List[dict]:
    """The records of the finished trials, in file order."""
    return [r for r in results['trials'] if r.get('status') == 'done']


def errors_for(results: dict, key: str, scale: Optional[str] = None) -> List[float]:
    """Errors (percent) from ``metrics_best[key]`` of the done trials, aligned with
    :func:`done_trials`.

    Raises:
        ValueError: a done trial lacks ``key`` (the message lists the keys it has).
    """
    errors = []
    for record in done_trials(results):
        best: Dict[str, float] = record.get('metrics_best') or {}
        if key not in best:
            raise ValueError(f"trial {record.get('trial')!r} has no metric {key!r} in "
                             f'metrics_best; it has {sorted(best)}.')
        errors.append(metric_to_error(key, best[key], scale))
    return errors
