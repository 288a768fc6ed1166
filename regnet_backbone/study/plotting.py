"""The pictures of a study report (PNG: matplotlib figures drawn without pyplot, so no display
and no global backend are needed).

One function per picture, each taking :class:`.analysis.Study` objects and a path:
:func:`plot_edfs` (error EDFs with their DKW bands, and flops-normalised),
:func:`plot_random_search`, :func:`plot_pretrain_correlation` (two-stage trials),
:func:`plot_parameters` (error against d, w0, wa, wm, g, b, flops and e_fit, with the bootstrap's
best value; the paper's Fig. 5 style) and :func:`plot_block_widths` (the best models' per-block
widths with their RegNet fit). Files are written atomically.
"""
import io
import math
from typing import Dict, Sequence

from ..atomic import replace_bytes
from .analysis import (ALPHA, Study, best_value_interval, flops_normalised_edf, pretrain_pairs,
                       random_search_curves)

WIDTH_PLOTS = 3    # best models whose per-block widths are drawn, per study
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


def _figure(figsize, rows: int = 1, cols: int = 1, **subplots):
    """``(figure, axes)`` of a figure of its own: none of pyplot's global state."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols, **subplots)


def _save(fig, path: str) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110, bbox_inches='tight')
    replace_bytes(path, buffer.getvalue())
    return path


def _legend(name: str, errors: Sequence[float]) -> str:
    return f'{name}: n={len(errors)} | min {min(errors):.1f} | mean {sum(errors) / len(errors):.1f}'


def _edf_with_band(ax, study: Study, color=None) -> None:
    """The error EDF of ``study`` with its (1 - ALPHA) DKW band, starting at F = 0."""
    from .stats import dkw_band
    errors, cdf, lower, upper, eps = dkw_band(study.errors, ALPHA)
    x = [errors[0]] + list(errors)
    line = ax.step(x, [0.0] + list(cdf), where='post', lw=2, color=color,
                   label=_legend(study.name, study.errors) + f' | DKW ±{eps:.2f}')[0]
    ax.fill_between(x, [0.0] + list(lower), [min(1.0, eps)] + list(upper), step='post',
                    color=line.get_color(), alpha=0.15, lw=0)


def plot_edfs(studies: Sequence[Study], path: str) -> str:
    """Plain (left, with its 95% DKW band) and flops-normalised (right) error EDFs of every
    study."""
    fig, axes = _figure((12, 4.5), 1, 2)
    for study in studies:
        if not study.trials:
            continue
        _edf_with_band(axes[0], study)
        norm = flops_normalised_edf(study)
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


def plot_random_search(studies: Sequence[Study], path: str) -> str:
    """Random-search efficiency (NDS): the expected minimum error of k random models against
    log2 k, with a band of +-2 sigma (sigma: the exact SD of that minimum over the draws)."""
    fig, ax = _figure((6, 4.5))
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


def plot_pretrain_correlation(studies: Sequence[Study], path: str) -> str:
    """The task's error against the classification error of the pretraining stage."""
    fig, ax = _figure((6, 4.5))
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


def plot_parameters(study: Study, path: str) -> Dict[str, tuple]:
    """Error against each parameter, one panel each, with the bootstrap's best value (line)
    and 95% interval (band). Returns ``{key: (lo, mid, hi)}``."""
    fig, axes = _figure((16, 7), 2, 4)
    intervals = {}
    for ax, (key, label, log) in zip(axes.flat, PARAMETERS):
        x = [t.values[key] for t in study.trials]
        ax.scatter(x, study.errors, s=18, alpha=0.8)
        band = best_value_interval(study, key)
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
    best = study.trials[:WIDTH_PLOTS]
    fig, axes = _figure((5 * len(best), 4), 1, len(best), squeeze=False)
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


def plot_refinement(studies: Dict[str, Study], names: Dict[str, str], steps: Sequence[dict],
                    path: str) -> str:
    """The refinement at a glance: one panel per consecutive step (the two spaces' EDFs with
    their DKW bands, in the paper's order) and the verdict table of every step beside them."""
    fig, axes = _figure((15, 8.5), 2, 3)
    panels = [s for s in steps if (s['a'], s['b']) != ('anynetx_a', 'regnet')]
    for ax, step in zip(axes.flat, panels):
        for space, color in ((step['a'], 'tab:gray'), (step['b'], 'tab:blue')):
            if studies[space].trials:
                _edf_with_band(ax, studies[space], color)
        ax.set_title(f"{names[step['a']]} \u2192 {names[step['b']]}: {step['verdict']} "
                     f"(paper: {step['claim']})", fontsize=10)
        ax.set_xlabel('error (%)')
        ax.set_ylabel('cumulative prob.')
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(loc='lower right', fontsize=7)
    table = axes.flat[len(panels)]
    table.axis('off')
    short = {space: name.replace('AnyNetX_', '') for space, name in names.items()}
    rows = [[f"{short[s['a']]}\u2192{short[s['b']]}", s['claim'],
             f"{s['mean_diff']:+.2f} [{s['ci'][0]:+.2f}, {s['ci'][1]:+.2f}]",
             f"{s['p_holm']:.2g}", f"{s['p_equivalence_holm']:.2g}", s['verdict']]
            for s in steps]
    cells = table.table(cellText=rows, colLabels=['step', 'paper', '\u0394 mean [95% CI]',
                                                  'p (Holm)', 'TOST p (Holm)', 'verdict'],
                        loc='center', cellLoc='center')
    cells.auto_set_font_size(False)
    cells.set_fontsize(8)
    cells.auto_set_column_width(range(6))
    cells.scale(1.0, 1.6)
    margin = steps[0]['margin'] if steps else 0
    table.set_title(f'\u0394 = later \u2212 earlier, error points; equivalence margin '
                    f'\u00b1{margin:g}', fontsize=9)
    return _save(fig, path)
