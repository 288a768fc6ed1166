"""The analysis stage: a study's ``results.json`` as numbers, and what is evidence.

:func:`load_study_results` reads ``WORK_DIR/results.json`` through
:mod:`regnet_backbone.design.results` (its one reader, with the one rule for a missing metric)
into a :class:`Study`: one :class:`Trial` per sample (its first training, repeat 0, or the first
rerun that finished; the reruns of a sample only measure the seed noise), best first, with the
parameters the report plots. The rest is what the paper and pycls's sweep analysis compute:
the flops-normalised EDF (NDS), random-search efficiency, the bootstrap's best parameter values,
and for each pair of studies (:func:`compare`) permutation tests on the KS distance and on the
mean error, the bootstrap 95% interval of the difference of means and a one-line
:func:`verdict` against the seed-noise floor; :func:`summary` is ``summary.json``.

Errors are in percent, from the best validation value of the metric
(:func:`regnet_backbone.design.results.metric_to_error`). For an AnyNet the plotted w0, wa, wm
are its RegNet fit's; g and b are block-weighted geometric means over its stages, and b is this
package's ``bottleneck_ratio`` = w_b / w (the inverse of the paper's b). The statistics live in
:mod:`.stats` (on scipy.stats), imported where they are used: the stages before this one need
neither scipy nor its import time.
"""
import json
import math
import os.path as osp
import statistics
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..design import results as results_lib
from .layout import RESULTS_FILE, StudyError

SUMMARY_FILE = 'summary.json'
ALPHA = 0.05         # level of the tests, the intervals and the DKW band
PERMUTATIONS = 10000  # random splits of a permutation test (all of them when fewer exist)
BOOTSTRAP_ROUNDS = 10000
MAX_BINS = 10      # flops bins of the normalised EDF (fewer when a bin would be empty)


@dataclass
class Trial:
    """One trained trial with what the report needs (errors in percent)."""
    name: str
    arch: dict
    flops: int
    params: int
    error: float
    metric: float
    values: Dict[str, float]
    block_widths: List[int]
    fit: object
    regnet: bool
    pretrain_error: Optional[float] = None  # classification error (%) of a two-stage trial


@dataclass
class Study:
    name: str
    settings: dict
    metric: str
    trials: List[Trial]
    failed: List[dict] = field(default_factory=list)
    pending: List[str] = field(default_factory=list)
    noise: Optional[object] = None  # stats.NoiseFloor of the repeats, None without
    reruns: int = 0                 # finished trainings beyond the first of each sample
    seed_groups: List[List[float]] = field(default_factory=list)  # errors of rerun samples

    @property
    def errors(self):
        return [t.error for t in self.trials]


# --- loading --------------------------------------------------------------------------------------
def _geometric_block_mean(values: Sequence[float], depths: Sequence[int]) -> float:
    return math.exp(sum(d * math.log(v) for v, d in zip(values, depths)) / sum(depths))


def describe_arch(arch: dict) -> dict:
    """The plotted parameters of an arch: ``d, w0, wa, wm, g, b``, its fit and block widths."""
    from ..design.fit import block_widths_of, fit_regnet
    from ..design.presets import resolve_arch
    spec = resolve_arch(arch)
    blocks = list(block_widths_of(arch))
    fit = fit_regnet(blocks)
    regnet = 'w0' in arch
    source = arch if regnet else dict(w0=fit.w0, wa=fit.wa, wm=fit.wm)
    values = dict(d=float(sum(spec.depths)), w0=float(source['w0']), wa=float(source['wa']),
                  wm=float(source['wm']),
                  g=_geometric_block_mean(spec.group_widths, spec.depths),
                  b=_geometric_block_mean(spec.bottleneck_ratios, spec.depths),
                  e_fit=float(fit.e_fit))
    return dict(values=values, fit=fit, block_widths=blocks, regnet=regnet)


def read_trials(path: str, metric: Optional[str] = None, scale: Optional[str] = None):
    """``(results, metric, partition)`` of a ``results.json``: the file
    (:func:`~regnet_backbone.design.results.load_results`), the metric (default: the study's
    own) and its trials by :func:`~regnet_backbone.design.results.partition_trials` (``scale``:
    ``'fraction'`` or ``'percent'`` for a key that
    :func:`~regnet_backbone.design.results.metric_to_error` does not know).

    Raises:
        StudyError: the file is missing or is not a results file, it names no metric, or no
            done trial logged it.
    """
    if not osp.isfile(path):
        raise StudyError(f'{path} not found: run `tools/study.py collect '
                         f'{osp.dirname(path) or "."}` first')
    try:
        results = results_lib.load_results(path)
    except json.JSONDecodeError as e:
        raise StudyError(f'{path} is not valid JSON ({e})') from None
    except (OSError, ValueError) as e:
        raise StudyError(str(e)) from None
    metric = metric or (results.get('study') or {}).get('metric')
    if not metric:
        raise StudyError(f'{path} names no metric; pass --metric KEY')
    try:
        return results, metric, results_lib.partition_trials(results, metric, scale)
    except ValueError as e:
        raise StudyError(f'{path}: {e}') from None


def load_study_results(work_dir: str, metric: Optional[str] = None,
                       scale: Optional[str] = None) -> Study:
    """Read ``WORK_DIR/results.json`` (:func:`read_trials`) into a :class:`Study` ranked by
    ``metric``.

    Done trials without a finite value of the metric are listed as failed. ``trials`` holds one
    trial per sample (:func:`~regnet_backbone.design.results.one_per_sample`), best first;
    ``noise`` the pooled SD of the samples trained more than once.
    """
    from .stats import pooled_sd
    path = osp.join(work_dir, RESULTS_FILE)
    results, metric, part = read_trials(path, metric, scale)
    study = Study(results_lib.study_name(results, path), results.get('study') or {}, metric, [])
    study.pending = [r['trial'] for r in part.pending]
    study.failed = [dict(trial=r['trial'], error=reason, stage=r.get('stage'))
                    for r, reason in part.failed]
    firsts = results_lib.one_per_sample(part.usable)
    study.reruns = len(part.usable) - len(firsts)
    study.seed_groups = results_lib.seed_groups(part.usable)
    study.noise = pooled_sd(study.seed_groups)
    for record, error in firsts:
        info = describe_arch(record['arch'])
        info['values']['flops'] = record['flops'] / 1e6
        study.trials.append(Trial(record['trial'], record['arch'], record['flops'],
                                  record['params'], float(error),
                                  float(record['metrics_best'][metric]), info['values'],
                                  info['block_widths'], info['fit'], info['regnet'],
                                  _pretrain_error(record)))
    study.trials.sort(key=lambda t: t.error)
    return study


def _pretrain_error(record: dict) -> Optional[float]:
    """The classification error (%) of a two-stage trial's pretraining, else None."""
    stage = record.get('pretrain')
    if not isinstance(stage, dict):
        return None
    value = stage.get('error')
    if value is None and stage.get('top1') is not None:
        value = 100.0 - float(stage['top1'])
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --- curves and intervals -------------------------------------------------------------------------
def flops_normalised_edf(study: Study):
    """``(sorted errors, cdf, weights, bins)`` of the flops-normalised EDF, with the most bins
    (up to MAX_BINS, at most n / 2) that leave none empty; None below 2 trials."""
    from .stats import BinningError, normalized_edf
    n = len(study.trials)
    if n < 2:
        return None
    flops = [t.flops for t in study.trials]
    for bins in range(max(1, min(MAX_BINS, n // 2)), 0, -1):
        try:
            errors, cdf, weights = normalized_edf(study.errors, flops, bins)
        except BinningError:
            continue
        return errors, cdf, weights, bins
    return None


def random_search_curves(study: Study) -> List[tuple]:
    """``[(k, mean, sigma), ...]`` of :func:`.stats.random_search_efficiency` for k = 1, 2,
    4, ... <= n (k distinct trials of the study)."""
    from .stats import random_search_efficiency
    return random_search_efficiency(study.errors) if study.trials else []


def pretrain_pairs(study: Study) -> List[tuple]:
    """``(classification error, task error)`` of the two-stage trials, in percent."""
    return [(t.pretrain_error, t.error) for t in study.trials if t.pretrain_error is not None]


def best_value_interval(study: Study, key: str) -> Optional[tuple]:
    """``(lo, mid, hi)`` of :func:`.stats.bootstrap_best` for parameter ``key`` (the most
    likely best value and its 95% interval); None below 2 trials."""
    from .stats import bootstrap_best
    if len(study.trials) < 2:
        return None
    return bootstrap_best([t.values[key] for t in study.trials], study.errors)


# --- evidence -------------------------------------------------------------------------------------
def sample_sd(values: Sequence[float]) -> Optional[float]:
    """Sample standard deviation (n - 1 in the denominator); None below 2 values."""
    return statistics.stdev(values) if len(values) > 1 else None


@dataclass
class Comparison:
    """Two studies compared (:func:`compare`); errors in percent, differences b - a."""
    a: Study
    b: Study
    mean_diff: float
    mean_diff_ci: tuple
    ks: float
    p_ks: float
    p_mean: float
    permutations: int
    exact: bool
    noise: Optional[object]  # NoiseFloor pooled over both studies' reruns, or None

    @property
    def evidence(self) -> str:
        """``'mean'``: the means differ (mean test below ALPHA and the interval excludes 0);
        ``'distribution'``: only the KS test is below ALPHA; ``'none'``."""
        lo, hi = self.mean_diff_ci
        if self.p_mean < ALPHA and (lo > 0 or hi < 0):
            return 'mean'
        return 'distribution' if self.p_ks < ALPHA else 'none'


def compare(a: Study, b: Study, *, permutations: int = PERMUTATIONS,
            rounds: int = BOOTSTRAP_ROUNDS, seed: int = 0) -> Comparison:
    """Permutation tests (KS and mean) and the bootstrap interval of mean(b) - mean(a)."""
    from .stats import bootstrap_mean_diff, permutation_test, pooled_sd
    ks = permutation_test(a.errors, b.errors, 'ks', permutations=permutations, seed=seed)
    mean = permutation_test(a.errors, b.errors, 'mean', permutations=permutations, seed=seed)
    diff, lo, hi = bootstrap_mean_diff(a.errors, b.errors, rounds=rounds, level=1 - ALPHA,
                                       seed=seed)
    return Comparison(a, b, diff, (lo, hi), ks.statistic, ks.p_value, mean.p_value,
                      ks.permutations, ks.exact, pooled_sd(a.seed_groups + b.seed_groups))


def _signed(x: float) -> str:
    return f'{x:+.2f}'.replace('-', '\u2212')


def format_p(p: float, c: Optional[Comparison] = None) -> str:
    """p with 2 significant digits; '<= ...' when no random split reached the observed value
    (p = 1 / (m + 1), the smallest m random permutations can give)."""
    if c is not None and not c.exact and p * (c.permutations + 1) < 1.5:
        return f'\u2264 {p:.2g}'
    return f'= {p:.2g}' if c is not None else f'{p:.2g}'


def verdict(c: Comparison) -> str:
    """One line: which study is better, by how much (95% CI), KS, the permutation p-values and
    n, and where the gap stands against the seed-noise floor."""
    lo, hi = c.mean_diff_ci
    if c.mean_diff < 0:  # b has the lower error: name it first, with b - a as it is
        first, second, diff = c.b, c.a, c.mean_diff
    else:  # name a first, with a - b and its interval
        first, second, diff, lo, hi = c.a, c.b, -c.mean_diff, -hi, -lo
    kind = c.evidence
    if kind == 'mean':
        head = f'{first.name} better than {second.name}'
    elif kind == 'distribution':
        head = (f'{first.name} and {second.name} differ in distribution (KS), not clearly in '
                'mean')
    else:
        head = f'no evidence that {first.name} and {second.name} differ'
    text = (f'{head}: mean error {_signed(diff)} points (95% CI {_signed(lo)} \u2026 '
            f'{_signed(hi)}), KS {c.ks:.2f}, permutation p {format_p(c.p_mean, c)} (mean), '
            f'p {format_p(c.p_ks, c)} (KS) (n = {len(first.trials)} + {len(second.trials)})')
    if c.noise is None:
        return text + '; no seed-noise floor (no sample was trained twice)'
    if abs(c.mean_diff) < c.noise.sd:
        return (text + f'; the gap is smaller than the seed-noise floor (sd {c.noise.sd:.2f} '
                'points between trainings of the same network): single models this close do '
                'not rank')
    return text + (f'; the gap is {abs(c.mean_diff) / c.noise.sd:.1f}x the seed-noise floor '
                   f'(sd {c.noise.sd:.2f})')


def summary(metric: str, studies: Sequence[Study], comparisons: Sequence[Comparison]) -> dict:
    """The numbers of the report as JSON: per study ``name, n, mean, sd, noise_sd`` (null
    without repeats), per pair ``a, b, n_a, n_b, mean_diff`` (b - a, points),
    ``mean_diff_ci`` ([lo, hi]), ``ks, p_ks, p_mean, permutations`` and the ``verdict`` line."""
    rows = []
    for s in studies:
        e = s.errors
        rows.append(dict(name=s.name, n=len(e), mean=sum(e) / len(e) if e else None,
                         sd=sample_sd(e), noise_sd=s.noise.sd if s.noise is not None else None))
    pairs = [dict(a=c.a.name, b=c.b.name, n_a=len(c.a.trials), n_b=len(c.b.trials),
                  mean_diff=c.mean_diff, mean_diff_ci=list(c.mean_diff_ci), ks=c.ks,
                  p_ks=c.p_ks, p_mean=c.p_mean, permutations=c.permutations,
                  verdict=verdict(c))
             for c in comparisons]
    return dict(metric=metric, studies=rows, pairs=pairs)
