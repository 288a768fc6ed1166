"""The report of one or more design-space studies (``tools/study.py analyze``): markdown + PNGs.

:func:`analyze` reads each study's ``results.json`` (:func:`.analysis.load_study_results`) and
writes ``OUT_DIR/report.md`` with what the paper and pycls's sweep analysis show:

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
  classification error with the task's error for two-stage trials.

and ``OUT_DIR/summary.json`` with the numbers (:func:`.analysis.summary`). The numbers come from
:mod:`.analysis`, the pictures from :mod:`.plotting`; this module writes the words and tables.

Needs numpy, scipy and matplotlib. Nothing here prints or exits.
"""
import json
import math
import os
import os.path as osp
from typing import List, Optional, Sequence

from ..atomic import replace_bytes
from .analysis import (ALPHA, BOOTSTRAP_ROUNDS, PERMUTATIONS, SUMMARY_FILE, compare,
                       flops_normalised_edf, format_p, load_study_results, pretrain_pairs,
                       random_search_curves, sample_sd, summary, verdict)
from .layout import StudyError
from .plotting import (plot_block_widths, plot_edfs, plot_parameters, plot_pretrain_correlation,
                       plot_random_search)

REPORT_FILE = 'report.md'
TOP_K = 5          # best models in the table
NOISE_NOTE = (
    'With few trials per study and a short schedule this comparison is noisy: the EDFs of two '
    'studies of n models differ by chance by a KS distance of order 1.36 / sqrt(n / 2) (5% '
    'level), and a short schedule ranks models by how fast they start to learn, not by where '
    'they end. The paper\'s protocol samples n = 500 models per design space and trains each '
    'for 10 ImageNet epochs; read a small study as a check that the machinery works and a '
    'first hint, not as a result, unless the tests below say otherwise.')


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
    from scipy.stats import ks_2samp, pearsonr, spearmanr

    from .stats import dkw_epsilon, ks_distance
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
        sd = sample_sd(e)
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
            plain = ks_2samp(a.errors, b.errors).statistic
            na, nb = flops_normalised_edf(a), flops_normalised_edf(b)
            norm = ks_distance(na[0], nb[0], na[2], nb[2]) if na and nb else None
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
                       f'{c.mean_diff_ci[1]:+.2f}]', f'{c.ks:.3f}', format_p(c.p_ks),
                       format_p(c.p_mean),
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
        sd = sample_sd(s.errors)
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
                x, y = zip(*pairs_)
                rows.append([s.name, len(pairs_), f'{pearsonr(x, y).statistic:.2f}',
                             f'{spearmanr(x, y).statistic:.2f}'])
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
