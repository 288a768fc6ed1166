"""A study's ``results.json`` and the conversion of validation metrics to errors (pure Python).

``tools/study.py collect`` writes ``results.json`` (:func:`regnet_backbone.study.collect`);
:func:`load_results` is its one reader, for the study report and ``tools/design_space.py``
alike. It is a JSON object ``{"study": {...settings...}, "trials": [record, ...]}``; each
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

Optional record fields: ``sample`` (index of the distinct sampled network), ``seed`` and
``repeat`` (0 for the first training of a sample, 1..K for its reruns with other seeds), and
``pretrain`` (``{"top1": ..., "error": ...}``, the classification stage of a two-stage trial,
error in percent). Records without ``sample`` are each their own sample.

One rule for a missing metric, used by every reader (:func:`partition_trials`): a done trial
without a finite value of the metric in ``metrics_best`` is left out of the analysis and counted
as failed, with the reason; a metric that no done trial has is a ``ValueError`` (a wrong key),
naming the keys the done trials have.
"""
import json
import math
import os
from typing import Dict, List, NamedTuple, Optional, Tuple

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


class Partition(NamedTuple):
    """The trials of a results file by what the analysis can use (:func:`partition_trials`).

    Attributes:
        usable: ``(record, error)`` of every done trial with a finite metric, file order;
            ``error`` in percent.
        failed: ``(record, reason)`` of the failed trials and of the done trials without a
            finite metric (reason: the failure's text, or which metric is missing).
        pending: the records of the trials not trained yet.
    """
    usable: List[Tuple[dict, float]]
    failed: List[Tuple[dict, str]]
    pending: List[dict]


def partition_trials(results: dict, key: str, scale: Optional[str] = None) -> Partition:
    """Split the trials of ``results`` by the one rule for a missing metric (module docstring).

    Raises:
        ValueError: no done trial has ``key`` (the message lists the keys they have), or a
            value outside its scale's range (:func:`metric_to_error`).
    """
    usable, failed, pending, missing = [], [], [], []
    for record in results['trials']:
        status = record.get('status')
        if status == 'pending':
            pending.append(record)
        elif status != 'done':
            failed.append((record, record.get('error') or 'failed (no error text recorded)'))
        else:
            best: Dict[str, float] = record.get('metrics_best') or {}
            value = best.get(key)
            if value is None or not _finite(value):
                missing.append(record)
                reason = (f'no {key!r} was logged (metrics_best has {sorted(best)})'
                          if value is None else f'{key} = {value} (not a finite number)')
                failed.append((record, record.get('error') or reason))
            else:
                usable.append((record, metric_to_error(key, value, scale)))
    if missing and not usable and not any(
            key in (r.get('metrics_best') or {}) for r in missing):
        keys = sorted({k for r in missing for k in (r.get('metrics_best') or {})})
        raise ValueError(f"trial {missing[0].get('trial')!r} has no metric {key!r} in "
                         f'metrics_best, nor has any other done trial; the done trials have '
                         f'{keys}.')
    return Partition(usable, failed, pending)


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def sample_key(record: dict):
    """The sampled network a record trains: its ``sample`` field, else the record itself."""
    sample = record.get('sample')
    return ('sample', sample) if sample is not None else ('trial', record.get('trial'))


def group_by_sample(usable: List[Tuple[dict, float]]) -> List[List[Tuple[dict, float]]]:
    """The usable ``(record, error)`` pairs grouped by sample, in order of first appearance;
    within a group, by ``repeat`` (0 first; a record without one counts as 0), then file order.
    The first pair of each group is the sample's representative (:func:`one_per_sample`)."""
    groups: Dict[object, List[Tuple[dict, float]]] = {}
    for pair in usable:
        groups.setdefault(sample_key(pair[0]), []).append(pair)
    return [sorted(g, key=lambda p: p[0].get('repeat') or 0) for g in groups.values()]


def one_per_sample(usable: List[Tuple[dict, float]]) -> List[Tuple[dict, float]]:
    """One ``(record, error)`` per sample: repeat 0, or its first done rerun. EDFs, means, KS
    and permutation tests use these, so that a rerun sample does not weigh twice."""
    return [g[0] for g in group_by_sample(usable)]


def seed_groups(usable: List[Tuple[dict, float]]) -> List[List[float]]:
    """The errors of each sample trained more than once (the input of the seed-noise SD)."""
    return [[e for _, e in g] for g in group_by_sample(usable) if len(g) > 1]


def errors_for(results: dict, key: str, scale: Optional[str] = None) -> List[float]:
    """Errors (percent) from ``metrics_best[key]``, one per sample (:func:`one_per_sample`),
    aligned with :func:`usable_trials`. A done trial without a finite value is left out
    (:func:`partition_trials`); without ``sample`` fields this is every such done trial, in
    file order.

    Raises:
        ValueError: no done trial has ``key`` (the message lists the keys they have).
    """
    return [e for _, e in one_per_sample(partition_trials(results, key, scale).usable)]


def usable_trials(results: dict, key: str, scale: Optional[str] = None) -> List[dict]:
    """The records behind :func:`errors_for`, in the same order (use these, not
    :func:`done_trials`, for the complexity of a normalised EDF)."""
    return [r for r, _ in one_per_sample(partition_trials(results, key, scale).usable)]
