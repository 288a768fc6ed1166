"""mmengine's logged scalars, read back: what the demo's curves and a study's results use.

mmengine's ``LocalVisBackend`` writes one JSON line per logging step to
``<work_dir>/<timestamp>/vis_data/scalars.json``; a resumed run starts a new timestamped folder.
Pure Python: imports neither torch nor mmengine.
"""
import glob
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

SCALARS_GLOB = osp.join('*', 'vis_data', 'scalars.json')
#: How many lines of a failed run's stderr a study records.
ERROR_TAIL_LINES = 25
#: Keys of a validation record that are not metrics.
NOT_METRICS = {'step', 'iter', 'epoch', 'time', 'data_time', 'lr', 'memory'}
# A training record holds its loss; a validation record holds none.
_TRAIN_MARKER = 'loss'


def _read_json_lines(path: str) -> List[Dict]:
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:  # the last line of a killed run may be cut short
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def read_scalars(work_dir: str) -> Tuple[List[Dict], List[Dict]]:
    """The scalars logged by every run in ``work_dir``, as ``(train, val)`` record lists.

    Each record is a dict with ``step`` (the iteration) and the logged values: training records
    have ``loss`` (and its parts, ``lr``, ...), validation records the metrics (e.g.
    ``coco/bbox_mAP``, ``mIoU``). Runs are read oldest first (mmengine names their folders by
    start time); a run replaces every record of earlier runs from its first step on, so a resumed
    run continues the curve and a fresh run in the same folder starts it again. Both lists are
    sorted by step. Missing logs give empty lists.
    """
    merged: List[Dict] = []
    for path in sorted(glob.glob(osp.join(work_dir, SCALARS_GLOB))):
        records = [r for r in _read_json_lines(path) if isinstance(r.get('step'), int)]
        if not records:
            continue
        first = min(r['step'] for r in records)
        merged = [r for r in merged if r['step'] < first] + records
    merged.sort(key=lambda r: r['step'])
    train = [r for r in merged if _TRAIN_MARKER in r]
    val = [r for r in merged if _TRAIN_MARKER not in r]
    return train, val


def last_metrics(val_records: Sequence[Dict], keys: Sequence[str]) -> Optional[Dict]:
    """The values of ``keys`` in the latest validation record that has them all, else None."""
    for record in reversed(val_records):
        if all(k in record for k in keys):
            return {k: record[k] for k in keys}
    return None


def tail(path: str, lines: int = ERROR_TAIL_LINES) -> str:
    """The last ``lines`` non-empty lines of a text file ('' when it cannot be read)."""
    try:
        with open(path, errors='replace') as f:
            text = f.read()
    except OSError:
        return ''
    kept = [line for line in text.strip().splitlines() if line.strip()]
    return '\n'.join(kept[-lines:])


def metric_values(record: dict) -> Dict[str, float]:
    """The numeric metrics of one logged validation record (step, lr, timings left out)."""
    return {k: float(v) for k, v in record.items()
            if k not in NOT_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool)}
