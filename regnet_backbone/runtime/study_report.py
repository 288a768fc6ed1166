"""The report of one or more design-space studies (``tools/study.py analyze``): markdown + PNGs.

It reads each study's ``results.json`` (:func:`.study.collect`) and draws what the paper and
pycls's sweep analysis draw:

* error EDFs of every study, plain and complexity-normalised (NDS: uniform over flops bins), with
  the KS distance between each pair;
* the error against each parameter (d, w0, wa, wm, g, b, flops, and e_fit), with the empirical
  bootstrap's most likely best value and its 95% interval (the paper's Fig. 5 style);
* the per-block widths of the best models, with the RegNet fit (and, for RegNets, the continuous
  u_j = w0 + wa * j line of their own parameters);
* e_fit of every trial, and a table of the best models, each as a ready ``arch=dict(...)`` line.

Errors are in percent, from the best validation value of the metric
(:func:`regnet_backbone.design.results.metric_to_error`). For an AnyNet the plotted w0, wa, wm
are its RegNet fit's; g and b are block-weighted geometric means over its stages, and b is this
package's ``bottleneck_ratio`` = w_b / w (the inverse of the paper's b).

Needs numpy and matplotlib (Agg backend; no display). Nothing here prints or exits.
"""
import math
import os
import os.path as osp
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..atomic import replace_bytes
from .study import RESULTS_FILE, StudyError, _read_json

REPORT_FILE = 'report.md'
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
    'first hint, not as a result.')


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


@dataclass
class Study:
    name: str
    settings: dict
    metric: str
    trials: List[Trial]
    failed: List[dict] = field(default_factory=list)
    pending: List[str] = field(default_factory=list)

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
    :func:`~regnet_backbone.design.results.metric_to_error` does not know); done trials without
    that metric are left out as failed."""
    from ..design.results import metric_to_error
    path = osp.join(work_dir, RESULTS_FILE)
    if not osp.isfile(path):
        raise StudyError(f'{path} not found: run `tools/study.py collect {work_dir}` first')
    results = _read_json(path)
    settings = results.get('study') or {}
    metric = metric or settings.get('metric')
    if not metric:
        raise StudyError(f'{path} names no metric; pass --metric KEY')
    study = Study(settings.get('name') or osp.basename(osp.abspath(work_dir)), settings, metric,
                  [])
    for record in results.get('trials', []):
        if record['status'] == 'pending':
            study.pending.append(record['trial'])
            continue
        value = (record.get('metrics_best') or {}).get(metric)
        if record['status'] != 'done' or value is None or not math.isfinite(value):
            error = record.get('error') or (f'no {metric!r} was logged' if value is None
                                            else f'{metric} = {value}')
            study.failed.append(dict(trial=record['trial'], error=error))
            continue
        info = describe_arch(record['arch'])
        info['values']['flops'] = record['flops'] / 1e6
        study.trials.append(Trial(record['trial'], record['arch'], record['flops'],
                                  record['params'], float(metric_to_error(metric, value, scale)),
                                  float(value), info['values'], info['block_widths'],
                                  info['fit'], info['regnet']))
    study.trials.sort(key=lambda t: t.error)
    return study


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
    """Plain (left) and flops-normalised (right) error EDFs of every study."""
    from ..design.stats import edf
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for study in studies:
        if not study.trials:
            continue
        errors, cdf = edf(study.errors)
        # each curve starts at F = 0 at the smallest error
        axes[0].step([errors[0]] + list(errors), [0.0] + list(cdf), where='post', lw=2,
                     label=_legend(study.name, study.errors))
        norm = _normalised(study)
        if norm is not None:
            axes[1].step([norm[0][0]] + list(norm[0]), [0.0] + list(norm[1]), where='post',
                         lw=2, label=f'{study.name} ({norm[3]} flops bins)')
    metric = studies[0].metric
    for ax, title in zip(axes, ('error EDF', 'complexity-normalised EDF (flops)')):
        ax.set_xlabel(f'error (%) from best {metric}')
        ax.set_ylabel('cumulative prob.')
        ax.set_ylim(0, 1.02)
        ax.set_title(title)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc='upper left', fontsize=8)
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
    """Write ``OUT_DIR/report.md`` and its PNGs comparing the studies; returns the report path.

    Every study must rank by the same metric (``metric``, or each study's own when they agree).
    """
    from ..design.stats import ks_distance
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

    md = ['# Design-space study report', '',
          f'Metric: `{metric}` (best over the validations of each trial); error in percent '
          '(100 (1 - v) for a metric in [0, 1] such as COCO mAP, 100 - v for one in percent '
          'such as mmseg\'s mIoU).', '', f'> **Noise.** {NOISE_NOTE}', '']
    rows = []
    for s in studies:
        e = sorted(s.errors)
        rows.append([s.name, s.settings.get('space', '?'), _windows_text(s.settings),
                     len(s.trials), len(s.failed), len(s.pending),
                     f'{e[0]:.2f}' if e else '-', f'{e[len(e) // 2]:.2f}' if e else '-',
                     f'{sum(e) / len(e):.2f}' if e else '-'])
    md += ['## Studies', '']
    md += _table(['study', 'space', 'complexity window', 'done', 'failed', 'pending',
                  'min error', 'median error', 'mean error'], rows)
    base = {s.settings.get('base_config') for s in studies}
    md += [f'Base config: {", ".join(f"`{b}`" for b in sorted(filter(None, base)))}; seeds '
           f'{", ".join(str(s.settings.get("seed")) for s in studies)}.', '']

    md += ['## Error EDFs', '', '![error EDFs](edf.png)', '',
           'Left: F(e) = share of models with error <= e. Right: the same with each model '
           'weighted so that the flops distribution is uniform over equal-width bins (NDS), '
           'which removes the advantage of a study whose samples happen to be larger.', '']
    plot_edfs(studies, osp.join(out_dir, 'edf.png'))
    pairs = [(a, b) for i, a in enumerate(studies) for b in studies[i + 1:]
             if a.trials and b.trials]
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
                         [[f['trial'], f'`{_one_line(f["error"])}`'] for f in s.failed])
        if s.pending:
            md += [f'Pending (not trained yet): {", ".join(s.pending)}.', '']
    path = osp.join(out_dir, REPORT_FILE)
    replace_bytes(path, '\n'.join(md).encode())
    return path
