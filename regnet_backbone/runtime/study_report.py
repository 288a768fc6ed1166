"""The report of one or more design-space studies (``tools/study.py analyze``): markdown + PNGs.

It reads each study's ``results.json`` (:func:`.study.collect`) and draws what the paper and
pycls's sweep analysis draw:

* error EDFs of every study, plain and complexity-normalised (NDS: uniform over flops bins), with
  the KS distance between each pair;
* the error against each parameter (d, w0, wa, wm, g, b, flops, and e_fit), with the empirical
  bootstrap's most likely best value and its 95% interval (the paper's Fig. 5 style);
* the per-block widths of the best models, with the RegNet fit (and, for RegNets, the continuous
  u_j = w0 + wa * j line of their own parameters);
* e_fit of every trial, and a table of the best models, each as a ready ``arch=dict(...)`` line;
* what is evidence: for each pair of studies a permutation test on the KS distance and on the
  mean error, the bootstrap 95% interval of the difference of means and a one-line verdict; the
  95% DKW band on every EDF; the seed-noise floor (samples trained again with other seeds) next
  to the spread across samples; random-search efficiency (NDS); the correlation of the
  classification error with the task's error for two-stage trials. ``summary.json`` holds the
  numbers (:data:`SUMMARY_FILE`).

EDFs, means, KS, tests and plots use one trial per sample (its first training, repeat 0, or the
first rerun that finished); the reruns of a sample only measure the seed noise.

Errors are in percent, from the best validation value of the metric
(:func:`regnet_backbone.design.results.metric_to_error`). For an AnyNet the plotted w0, wa, wm
are its RegNet fit's; g and b are block-weighted geometric means over its stages, and b is this
package's ``bottleneck_ratio`` = w_b / w (the inverse of the paper's b).

Needs numpy and matplotlib (Agg backend; no display). Nothing here prints or exits.
"""
import json
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..atomic import replace_bytes
from .study import RESULTS_FILE, StudyError

REPORT_FILE = 'report.md'
SUMMARY_FILE = 'summary.json'
ALPHA = 0.05         # level of the tests, the intervals and the DKW band
PERMUTATIONS = 10000  # random splits of a permutation test (all of them when fewer exist)
BOOTSTRAP_ROUNDS = 10000
TOP_K = 5          # best models in the table
WIDTH_PLOTS = 3    # best models whose per-block widths are drawn, per study
MAX_BINS = 10      # flops bins of the normalised EDF (fewer when a bin would be empty)
PARAMETERS = (  # (key, axis label, log scale)
    ('d', 'depth d (blocks)', False),
    ('w0', 'w0', True),
    ('wa', 'wa', True),
    ('wm', 'wm', False),
    ('g', 'group width g', True),
    ('b', 'bottleneck ratio w_b/w', True),
    ('flops', 'flops (MF at the sampling size)', False),
    ('e_fit', 'e_fit', False),
)
NOISE_NOTE = (
    'With few trials per study and a short schedule this comparison is noisy: the EDFs of two '
    'studies of n models differ by chance by a KS distance of order 1.36 / sqrt(n / 2) (5% '
    'level), and a short schedule ranks models by how fast they start to learn, not by where '
    'they end. The paper\'s protocol samples n = 500 models per design space and trains each '
    'for 10 ImageNet epochs; read a small study as a check that the machinery works and a '
    'first hint, not as a result, unless the tests below say otherwise.')


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
    noise: Optional[object] = None  # design.stats.NoiseFloor of the repeats, None without
    reruns: int = 0                 # finished trainings beyond the first of each sample
    seed_groups: List[List[float]] = field(default_factory=list)  # errors of rerun samples

    @property
    def errors(self):
        return [t.error for t in self.trials]


# --- loading -------------------------------------------------------------------------------------
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


def load_study_results(work_dir: str, metric: Optional[str] = None,
                       scale: Optional[str] = None) -> Study:
    """Read ``WORK_DIR/results.json`` into a :class:`Study` ranked by ``metric`` (default: the
    study's own metric; ``scale``: ``'fraction'`` or ``'percent'`` for a key that
    :func:`~regnet_backbone.design.results.metric_to_error` does not know).

    The trials follow :func:`~regnet_backbone.design.results.partition_trials`: done trials
    without a finite value of the metric are listed as failed. ``trials`` holds one trial per
    sample (:func:`~regnet_backbone.design.results.one_per_sample`), best first; ``noise`` the
    pooled SD of the samples trained more than once.
    """
    from ..design import results as results_lib
    from ..design.stats import pooled_sd
    path = osp.join(work_dir, RESULTS_FILE)
    if not osp.isfile(path):
        raise StudyError(f'{path} not found: run `tools/study.py collect {work_dir}` first')
    try:
        results = results_lib.load_results(path)
    except json.JSONDecodeError as e:
        raise StudyError(f'{path} is not valid JSON ({e})') from None
    except (OSError, ValueError) as e:
        raise StudyError(str(e)) from None
    settings = results.get('study') or {}
    metric = metric or settings.get('metric')
    if not metric:
        raise StudyError(f'{path} names no metric; pass --metric KEY')
    try:
        part = results_lib.partition_trials(results, metric, scale)
    except ValueError as e:
        raise StudyError(f'{path}: {e}') from None
    study = Study(results_lib.study_name(results, path), settings, metric, [])
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


# --- drawing -------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _save(fig, path: str) -> str:
    import io
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
    _pyplot().close(fig)
    replace_bytes(path, buffer.getvalue())
    return path


def _normalised(study: Study):
    """``(sorted errors, cdf, weights, bins)`` of the flops-normalised EDF, with the most bins
    (up to MAX_BINS, at most n / 2) that leave none empty; None below 2 trials."""
    from ..design.stats import normalized_edf
    n = len(study.trials)
    if n < 2:
        return None
    flops = [t.flops for t in study.trials]
    for bins in range(max(1, min(MAX_BINS, n // 2)), 0, -1):
        try:
            errors, cdf, weights = normalized_edf(study.errors, flops, bins)
        except ValueError:
            continue
        return errors, cdf, weights, bins
    return None


def _legend(name: str, errors: Sequence[float]) -> str:
    return f'{name}: n={len(errors)} | min {min(errors):.1f} | mean {sum(errors) / len(errors):.1f}'


def plot_edfs(studies: Sequence[Study], path: str) -> str:
    """Plain (left, with its 95% DKW band) and flops-normalised (right) error EDFs of every
    study."""
    from ..design.stats import dkw_band
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for study in studies:
        if not study.trials:
            continue
        errors, cdf, lower, upper, eps = dkw_band(study.errors, ALPHA)
        # each curve starts at F = 0 at the smallest error
        x = [errors[0]] + list(errors)
        line = axes[0].step(x, [0.0] + list(cdf), where='post', lw=2,
                            label=_legend(study.name, study.errors) + f' | DKW ±{eps:.2f}')[0]
        axes[0].fill_between(x, [0.0] + list(lower), [min(1.0, eps)] + list(upper),
                             step='post', color=line.get_color(), alpha=0.15, lw=0)
        norm = _normalised(study)
        if norm is not None:
            axes[1].step([norm[0][0]] + list(norm[0]), [0.0] + list(norm[1]), where='post',
                         lw=2, label=f'{study.name} ({norm[3]} flops bins)')
    metric = studies[0].metric
    titles = (f'error EDF (band: {100 * (1 - ALPHA):.0f}% DKW)',
              'complexity-normalised EDF (flops)')
    for ax, title in zip(axes, titles):
        ax.set_xlabel(f'error (%) from best {metric}')
        ax.set_ylabel('cumulative prob.')
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc='upper left', fontsize=8)
    return _save(fig, path)


def random_search_curves(study: Study) -> List[tuple]:
    """``[(k, mean, sigma), ...]`` of :func:`~regnet_backbone.design.stats.
    random_search_efficiency` for k = 1, 2, 4, ... <= n (k distinct trials of the study)."""
    from ..design.stats import random_search_efficiency
    return random_search_efficiency(study.errors) if study.trials else []


def plot_random_search(studies: Sequence[Study], path: str) -> str:
    """Random-search efficiency (NDS): the expected minimum error of k random models against
    log2 k, with a band of +-2 sigma (sigma: the exact SD of that minimum over the draws)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for study in studies:
        curve = random_search_curves(study)
        if not curve:
            continue
        x = [math.log2(k) for k, _, _ in curve]
        mean = [m for _, m, _ in curve]
        line = ax.plot(x, mean, 'o-', lw=2, label=f'{study.name} (n={len(study.trials)})')[0]
        ax.fill_between(x, [m - 2 * sd for _, m, sd in curve],
                        [m + 2 * sd for _, m, sd in curve], color=line.get_color(), alpha=0.15,
                        lw=0)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel('log2 k (models trained)')
    ax.set_ylabel(f'min error of k random models (%), best {studies[0].metric}')
    ax.set_title('random-search efficiency (band: ±2σ)')
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc='upper right')
    return _save(fig, path)


def pretrain_pairs(study: Study) -> List[tuple]:
    """``(classification error, task error)`` of the two-stage trials, in percent."""
    return [(t.pretrain_error, t.error) for t in study.trials if t.pretrain_error is not None]


def plot_pretrain_correlation(studies: Sequence[Study], path: str) -> str:
    """The task's error against the classification error of the pretraining stage."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for study in studies:
        pairs = pretrain_pairs(study)
        if pairs:
            ax.scatter(*zip(*pairs), s=20, alpha=0.8, label=f'{study.name} (n={len(pairs)})')
    ax.set_xlabel('classification error (%) after pretraining')
    ax.set_ylabel(f'error (%) from best {studies[0].metric}')
    ax.set_title('two-stage trials: pretraining vs task')
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(fig, path)


def _bootstrap(study: Study, key: str):
    from ..design.stats import bootstrap_best
    if len(study.trials) < 2:
        return None
    return bootstrap_best([t.values[key] for t in study.trials], study.errors)


def plot_parameters(study: Study, path: str) -> Dict[str, tuple]:
    """Error against each parameter, one panel each, with the bootstrap's best value (line)
    and 95% interval (band). Returns ``{key: (lo, mid, hi)}``."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(16, 7))
    intervals = {}
    for ax, (key, label, log) in zip(axes.flat, PARAMETERS):
        x = [t.values[key] for t in study.trials]
        ax.scatter(x, study.errors, s=18, alpha=0.8)
        band = _bootstrap(study, key)
        if band is not None:
            intervals[key] = band
            lo, mid, hi = band
            ax.axvspan(lo, hi, color='k', alpha=0.12, lw=0)
            ax.axvline(mid, color='k', lw=1.5)
        if log and x and min(x) > 0:
            from matplotlib.ticker import FormatStrFormatter, NullFormatter
            ax.set_xscale('log', base=2)  # g and b are powers of 2
            lo, hi = math.floor(math.log2(min(x))), math.ceil(math.log2(max(x)))
            ax.set_xticks([2.0**k for k in range(lo, hi + 1)])
            ax.xaxis.set_major_formatter(FormatStrFormatter('%g'))
            ax.xaxis.set_minor_formatter(NullFormatter())
        fitted = key in ('w0', 'wa', 'wm') and not all(t.regnet for t in study.trials)
        ax.set_xlabel(label + (' (fitted)' if fitted else ''))
        ax.set_ylabel('error (%)')
        ax.grid(alpha=0.3)
    fig.suptitle(f'{study.name}: error vs parameters (n={len(study.trials)}; line: bootstrap '
                 'best, band: 95%)')
    _save(fig, path)
    return intervals


def plot_block_widths(study: Study, path: str) -> str:
    """Per-block widths of the best models, with their RegNet fit and the continuous u_j."""
    from ..design.regnet import generate_block_widths
    plt = _pyplot()
    best = study.trials[:WIDTH_PLOTS]
    fig, axes = plt.subplots(1, len(best), figsize=(5 * len(best), 4), squeeze=False)
    for ax, t in zip(axes[0], best):
        j = list(range(len(t.block_widths)))
        ax.step(j, t.block_widths, where='mid', lw=2, label='w_j (block widths)')
        w0, wa, wm = ((t.arch['w0'], t.arch['wa'], t.arch['wm']) if t.regnet else
                      (t.fit.w0, t.fit.wa, t.fit.wm))
        what = 'own' if t.regnet else 'fitted'
        ax.plot(j, [w0 + wa * k for k in j], ':', color='k', label=f'u_j = w0 + wa j ({what})')
        quantized = generate_block_widths(int(t.fit.w0), float(t.fit.wa), float(t.fit.wm),
                                          len(j))
        ax.step(j, quantized, where='mid', ls='--', color='tab:red',
                label=f'fit (e_fit {t.fit.e_fit:.3f})')
        ax.set_yscale('log')
        ax.set_xlabel('block j')
        ax.set_ylabel('width')
        ax.set_title(f'{t.name}: error {t.error:.2f}%', fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc='upper left')
    fig.suptitle(f'{study.name}: the best models\' per-block widths')
    return _save(fig, path)


# --- evidence ------------------------------------------------------------------------------------
def _sd(values: Sequence[float]) -> Optional[float]:
    """Sample standard deviation (n - 1 in the denominator); None below 2 values."""
    n = len(values)
    if n < 2:
        return None
    mean = sum(values) / n
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))


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
    from ..design.stats import bootstrap_mean_diff, permutation_test, pooled_sd
    ks = permutation_test(a.errors, b.errors, 'ks', permutations=permutations, seed=seed)
    mean = permutation_test(a.errors, b.errors, 'mean', permutations=permutations, seed=seed)
    diff, lo, hi = bootstrap_mean_diff(a.errors, b.errors, rounds=rounds, level=1 - ALPHA,
                                       seed=seed)
    return Comparison(a, b, diff, (lo, hi), ks.statistic, ks.p_value, mean.p_value,
                      ks.permutations, ks.exact, pooled_sd(a.seed_groups + b.seed_groups))


def _signed(x: float) -> str:
    return f'{x:+.2f}'.replace('-', '\u2212')


def _p(p: float, c: Optional['Comparison'] = None) -> str:
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
            f'{_signed(hi)}), KS {c.ks:.2f}, permutation p {_p(c.p_mean, c)} (mean), '
            f'p {_p(c.p_ks, c)} (KS) (n = {len(first.trials)} + {len(second.trials)})')
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
    ``mean_diff_ci`` ([lo, hi]), ``ks, p_ks, p_mean, permutations``."""
    rows = []
    for s in studies:
        e = s.errors
        rows.append(dict(name=s.name, n=len(e), mean=sum(e) / len(e) if e else None,
                         sd=_sd(e), noise_sd=s.noise.sd if s.noise is not None else None))
    pairs = [dict(a=c.a.name, b=c.b.name, n_a=len(c.a.trials), n_b=len(c.b.trials),
                  mean_diff=c.mean_diff, mean_diff_ci=list(c.mean_diff_ci), ks=c.ks,
                  p_ks=c.p_ks, p_mean=c.p_mean, permutations=c.permutations)
             for c in comparisons]
    return dict(metric=metric, studies=rows, pairs=pairs)


def _describe(value) -> str:
    if isinstance(value, dict):
        return ', '.join(f'{k} {_describe(v)}' for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)):
        return ', '.join(_describe(v) for v in value)
    return str(value)


_INIT_TEXT = {
    'scratch': 'from random weights, every stage trainable, norms in training mode '
               '(`--init scratch`)',
    'pretrain': 'two-stage: each sampled backbone pretrained on classification, converted, '
                'then fine-tuned by the recipe (`--pretrain`)',
    'recipe': "the base recipe's own initialisation (it already trains everything)",
}


def _schedule_text(schedule) -> str:
    if isinstance(schedule, dict) and schedule.get('text'):
        text = str(schedule['text'])
        stage = schedule.get('pretrain')
        if stage:
            text = f'pretraining {_schedule_text(stage)}, then {text}'
        return text
    if isinstance(schedule, dict):
        return _describe({k: v for k, v in schedule.items() if k != 'pretrain'})
    return _describe(schedule)


def training_text(settings: dict) -> tuple:
    """(weights, schedule) of a study in words, from the ``init`` (``recipe``, ``scratch`` or
    ``pretrain``), ``pretrain_config``, ``init_changes`` and ``schedule`` (``text``, and
    ``pretrain`` for two-stage trials) settings that ``setup`` records; "not recorded" for a
    study set up before it did."""
    init = settings.get('init')
    pretrain = settings.get('pretrain_config') or settings.get('pretrain')
    if init is None and pretrain:
        init = 'pretrain'
    if init is None:
        weights = ("not recorded (study set up before trials stated their weights: the base "
                   "recipe's own initialisation)")
    else:
        weights = (_INIT_TEXT.get(init, _describe(init)) if isinstance(init, str)
                   else _describe(init))
        if pretrain:
            weights += f'; classification recipe `{_describe(pretrain)}`'
        changes = settings.get('init_changes')
        if changes:
            weights += f' (changed: {_describe(changes)})'
    schedule = settings.get('schedule')
    return weights.replace('|', '\\|'), (_schedule_text(schedule).replace('|', '\\|')
                                          if schedule else 'not recorded')


# --- markdown ------------------------------------------------------------------------------------
def arch_line(arch: dict) -> str:
    """``arch=dict(...)``: a config line that builds ``arch`` (``model.backbone.arch``)."""
    def fmt(v):
        if isinstance(v, float):
            return repr(round(v, 6))
        if isinstance(v, (list, tuple)):
            return '[' + ', '.join(fmt(x) for x in v) + ']'
        return repr(v)
    return 'arch=dict(' + ', '.join(f'{k}={fmt(v)}' for k, v in arch.items()) + ')'


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> List[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return lines + ['']


def _windows_text(settings: dict) -> str:
    parts = []
    for name, window in (settings.get('windows') or {}).items():
        if window:
            parts.append(f'{name} [{window[0]:.4g}, {window[1]:.4g}]')
    size = settings.get('input_size') or [224, 224]
    return (', '.join(parts) or 'no window') + f' at {size[0]}x{size[1]}'


def _one_line(text: Optional[str]) -> str:
    lines = [line.strip() for line in (text or '').splitlines() if line.strip()]
    return (lines[-1] if lines else '').replace('|', '\\|')[:200]


def analyze(work_dirs: Sequence[str], out_dir: str, metric: Optional[str] = None,
            scale: Optional[str] = None) -> str:
    """Write ``OUT_DIR/report.md``, its PNGs and ``OUT_DIR/summary.json`` comparing the
    studies; returns the report path.

    Every study must rank by the same metric (``metric``, or each study's own when they agree).
    """
    from ..design.stats import correlation, dkw_epsilon, ks_distance
    if not work_dirs:
        raise StudyError('analyze needs at least one study folder')
    studies = [load_study_results(w, metric, scale) for w in work_dirs]
    metrics = {s.metric for s in studies}
    if len(metrics) > 1:
        raise StudyError(f'the studies rank by different metrics ({", ".join(sorted(metrics))}); '
                         'pass --metric KEY')
    names = [s.name for s in studies]
    if len(set(names)) < len(names):  # two folders of the same name: tell them apart
        for k, s in enumerate(studies):
            s.name = f'{s.name}_{k}'
    if not any(s.trials for s in studies):
        raise StudyError('no trial has finished with a metric yet: nothing to analyse '
                         '(run `tools/study.py run` first)')
    os.makedirs(out_dir, exist_ok=True)
    metric = studies[0].metric
    level = f'{100 * (1 - ALPHA):.0f}%'

    md = ['# Design-space study report', '',
          f'Metric: `{metric}` (best over the validations of each trial); error in percent '
          '(100 (1 - v) for a metric in [0, 1] such as COCO mAP, 100 - v for one in percent '
          'such as mmseg\'s mIoU).', '', f'> **Noise.** {NOISE_NOTE}', '']
    rows = []
    for s in studies:
        e = sorted(s.errors)
        sd = _sd(e)
        rows.append([s.name, s.settings.get('space', '?'), _windows_text(s.settings),
                     len(s.trials), s.reruns, len(s.failed), len(s.pending),
                     f'{e[0]:.2f}' if e else '-', f'{e[len(e) // 2]:.2f}' if e else '-',
                     f'{sum(e) / len(e):.2f}' if e else '-', f'{sd:.2f}' if sd else '-'])
    md += ['## Studies', '']
    md += _table(['study', 'space', 'complexity window', 'done (samples)', 'reruns', 'failed',
                  'pending', 'min error', 'median error', 'mean error', 'sd'], rows)
    base = {s.settings.get('base_config') for s in studies}
    md += [f'Base config: {", ".join(f"`{b}`" for b in sorted(filter(None, base)))}; seeds '
           f'{", ".join(str(s.settings.get("seed")) for s in studies)}.', '']
    md += ['### How the trials were trained', '']
    md += _table(['study', 'weights', 'schedule'],
                 [[s.name, *training_text(s.settings)] for s in studies])

    md += ['## Error EDFs', '', '![error EDFs](edf.png)', '',
           'Left: F(e) = share of models with error <= e, with its ' + level + ' '
           'Dvoretzky-Kiefer-Wolfowitz band: the true CDF of the design space lies inside the '
           'whole band with probability at least ' + level + ' (half-width sqrt(ln(2 / '
           f'{ALPHA:g}) / (2 n)), ' + ', '.join(
               f'{s.name} ±{dkw_epsilon(len(s.trials), ALPHA):.2f}' for s in studies if s.trials)
           + '). Right: the same with each model weighted so that the flops distribution is '
           'uniform over equal-width bins (NDS), which removes the advantage of a study whose '
           'samples happen to be larger.', '']
    plot_edfs(studies, osp.join(out_dir, 'edf.png'))
    pairs = [(a, b) for i, a in enumerate(studies) for b in studies[i + 1:]
             if a.trials and b.trials]
    comparisons = [compare(a, b) for a, b in pairs]
    if pairs:
        rows = []
        for a, b in pairs:
            plain = ks_distance(a.errors, b.errors)
            na, nb = _normalised(a), _normalised(b)
            norm = (ks_distance(list(na[0]), list(nb[0]), list(na[2]), list(nb[2]))
                    if na and nb else None)
            critical = 1.36 * math.sqrt((len(a.trials) + len(b.trials)) /
                                        (len(a.trials) * len(b.trials)))
            rows.append([a.name, b.name, f'{plain:.3f}',
                         f'{norm:.3f}' if norm is not None else '-', f'{critical:.3f}'])
        md += _table(['study A', 'study B', 'KS distance', 'KS (normalised)',
                      'chance level (5%)'], rows)

        md += ['## Is the gap evidence?', '']
        md += [f'- {verdict(c)}' for c in comparisons] + ['']
        md += _table(['study A', 'study B', 'n', 'mean B - A (points)', f'{level} CI (bootstrap)',
                      'KS', 'p (KS)', 'p (mean)', 'permutations'],
                     [[c.a.name, c.b.name, f'{len(c.a.trials)} + {len(c.b.trials)}',
                       f'{c.mean_diff:+.2f}', f'[{c.mean_diff_ci[0]:+.2f}, '
                       f'{c.mean_diff_ci[1]:+.2f}]', f'{c.ks:.3f}', _p(c.p_ks), _p(c.p_mean),
                       f'{c.permutations}' + (' (all splits)' if c.exact else ' (random)')]
                      for c in comparisons])
        md += ['The permutation tests pool the two studies\' errors (one trial per sample) and '
               'relabel them at random: p is the share of relabellings whose KS distance, or '
               '|difference of means|, is at least the observed one (every split when there are '
               f'at most {PERMUTATIONS}, exactly; else (b + 1) / (m + 1) over m random ones). The '
               f'interval is the percentile bootstrap of mean(B) - mean(A), {BOOTSTRAP_ROUNDS} '
               f'rounds. A study is called better when p (mean) < {ALPHA:g} and the interval '
               'excludes 0. Each pair is one test: with many pairs, some fall below '
               f'{ALPHA:g} by chance. Fix the spaces, n, seeds and recipe before running, and '
               'run once: a p-value from reruns picked for it is not evidence.', '']

    md += ['## Seed noise', '']
    for s in studies:
        sd = _sd(s.errors)
        spread = f'{sd:.2f}' if sd is not None else '-'
        if s.noise is None:
            md.append(f'- {s.name}: no seed-noise floor (no sample trained more than once; '
                      '`tools/study.py setup ... --repeats K` trains K samples again with other '
                      f'seeds); sd across samples {spread} points.')
        else:
            md.append(f'- {s.name}: seed sd {s.noise.sd:.2f} points (pooled over '
                      f'{s.noise.groups} sample(s), {s.noise.values} trainings, {s.noise.dof} '
                      f'degrees of freedom) against sd {spread} across samples.')
    md += ['', 'The seed sd is how much the error of one network moves between trainings with '
           'other seeds; differences between single models below it are noise.', '']

    md += ['## Random-search efficiency', '', '![random-search efficiency](random_search.png)',
           '',
           'The expected minimum error of k models drawn at random (without replacement) from '
           'the n trials of a study, for k = 1, 2, 4, ...: the chance that a random search of k '
           'models finds a good one (NDS). Band: ±2σ, σ the exact (analytic) standard deviation '
           'of that minimum over all equally likely draws of k trials.', '']
    plot_random_search(studies, osp.join(out_dir, 'random_search.png'))
    curves = {s.name: random_search_curves(s) for s in studies}
    ks = sorted({k for c in curves.values() for k, _, _ in c})
    md += _table(['study'] + [f'k = {k}' for k in ks],
                 [[name] + [next((f'{m:.2f} ± {2 * sd:.2f}' for k2, m, sd in c if k2 == k), '-')
                            for k in ks] for name, c in curves.items()])

    if any(pretrain_pairs(s) for s in studies):
        md += ['## Pretraining vs task', '', '![pretraining vs task](pretrain_vs_task.png)', '']
        plot_pretrain_correlation(studies, osp.join(out_dir, 'pretrain_vs_task.png'))
        rows = []
        for s in studies:
            pairs_ = pretrain_pairs(s)
            if len(pairs_) >= 3:
                r, rho = correlation(*zip(*pairs_))
                rows.append([s.name, len(pairs_), f'{r:.2f}', f'{rho:.2f}'])
            else:
                rows.append([s.name, len(pairs_), '-', '-'])
        md += _table(['study', 'two-stage trials', 'Pearson r', 'Spearman ρ'], rows)
        md += ['Each point is one two-stage trial: its classification error after pretraining '
               'and its error on the task after fine-tuning. A high correlation says the '
               'cheap classification stage already ranks the networks.', '']

    for s in studies:
        md += [f'## {s.name}', '']
        if not s.trials:
            md += ['No trial finished with a metric.', '']
        else:
            image = f'{s.name}_parameters.png'
            intervals = plot_parameters(s, osp.join(out_dir, image))
            md += ['### Error vs parameters', '', f'![{s.name} parameters]({image})', '']
            if intervals:
                md += _table(['parameter', 'bootstrap best (median)', '95% interval'],
                             [[key, f'{mid:.4g}', f'[{lo:.4g}, {hi:.4g}]']
                              for key, (lo, mid, hi) in intervals.items()])
            widths = f'{s.name}_best_widths.png'
            plot_block_widths(s, osp.join(out_dir, widths))
            md += ['### Best models', '', f'![{s.name} best block widths]({widths})', '']
            md += _table(['rank', 'trial', metric, 'error (%)', 'MF', 'params (M)',
                          'config line'],
                         [[k + 1, t.name, f'{t.metric:.4g}', f'{t.error:.2f}',
                           f'{t.flops / 1e6:.0f}', f'{t.params / 1e6:.2f}',
                           f'`{arch_line(t.arch)}`'] for k, t in enumerate(s.trials[:TOP_K])])
            md += ['### e_fit of every trial', '',
                   'The quantized linear fit of each trial\'s per-block widths (mean |ln ŵ_j - '
                   'ln w_j|; 0 means the widths follow the RegNet rule exactly; a sampled '
                   'RegNet can score above 0 because its widths are rounded to its group width '
                   'after the rule).', '']
            md += _table(['trial', 'error (%)', 'e_fit', 'fit w0', 'fit wa', 'fit wm', 'depth'],
                         [[t.name, f'{t.error:.2f}', f'{t.fit.e_fit:.4f}', t.fit.w0,
                           f'{t.fit.wa:.2f}', f'{t.fit.wm:.3f}', t.fit.depth]
                          for t in sorted(s.trials, key=lambda t: t.name)])
        if s.failed:
            md += ['### Failed trials', '']
            md += _table(['trial', 'error (last line)'],
                         [[f['trial'], (f'{f["stage"]}: ' if f.get('stage') else '') +
                           f'`{_one_line(f["error"])}`'] for f in s.failed])
        if s.pending:
            md += [f'Pending (not trained yet): {", ".join(s.pending)}.', '']
    replace_bytes(osp.join(out_dir, SUMMARY_FILE),
                  (json.dumps(summary(metric, studies, comparisons), indent=2) + '\n').encode())
    path = osp.join(out_dir, REPORT_FILE)
    replace_bytes(path, '\n'.join(md).encode())
    return path
