"""``gpu_check.md``: the GPU check's report (``tools/gpu_check.py``) as markdown."""
from typing import Dict, List

import torch


def _tests_markdown(entries: List[Dict]) -> List[str]:
    skipped = [e for e in entries if 'skip' in e]
    if entries and len(skipped) == len(entries) and len({e['skip'] for e in skipped}) == 1:
        return [f"Not run: {skipped[0]['skip']} ({len(entries)} tests skipped)."]
    lines = ['| arch | check | outputs (bound) | gradients (bound) | passed |',
             '|---|---|---|---|---|']
    for e in entries:
        if 'skip' in e:
            lines.append(f"| {e.get('arch', '')} | {e['check']} | skipped: {e['skip']} | | - |")
        elif e.get('output_error') is None:  # failed before it measured anything
            lines.append(f"| {e.get('arch', '')} | {e['check']} | {e['reason'] or '-'} | | "
                         f"{'yes' if e['passed'] else '**NO**'} |")
        else:
            grad = (f"{e['grad_error']:.1e} ({e['grad_tolerance']:g})"
                    if e.get('grad_error') is not None else '-')
            lines.append(f"| {e['arch']} | {e['check']} | {e['output_error']:.1e} "
                         f"({e['tolerance']:g}) | {grad} | {'yes' if e['passed'] else '**NO**'} |")
    return lines


def markdown(report: Dict) -> str:
    """Environment, the tests' results with their bounds, families, the benchmark, errors."""
    env = report['environment']
    lines = ['# GPU check', '',
             f"Device: {report['device']}" + (f" ({env['gpu']})" if env.get('gpu') else '') +
             f", torch {torch.__version__}, Python {env['python']}, "
             f"{report['date']}. Total {report['elapsed_s']:.0f} s; phases: " +
             ', '.join(f'{k} {v:.0f} s' for k, v in report['phases'].items()) + '.', '',
             '## Environment', '',
             'Found: ' + ', '.join(f'{p} {v}' for p, v in env['found_before'].items() if v) + '.',
             'Installed from the carried wheels: ' +
             (', '.join(env['installed']) or 'nothing') + '.']
    if env.get('cudnn'):
        lines.append(f"cuDNN autotuner (benchmark): {env['cudnn']['benchmark']}; TF32 convs: "
                     f"{env['cudnn']['allow_tf32']} (so 'fp32' conv rows on a GPU run on TF32 "
                     'tensor cores, and their peak is the TF32 matmul peak).')
    if env.get('import_error'):
        lines.append(f"regnet_backbone does not import: {env['import_error']}")
    if env.get('install_error'):
        lines.append(f"Install error: {env['install_error']}")
    if report.get('equivalence'):
        lines += ['', '## Equivalence (pytest tests/gpu: norm-wise relative error; reference: '
                  'CPU float64)', ''] + _tests_markdown(report['equivalence'])
    onnx = report.get('onnx')
    if onnx:
        lines += ['', '## ONNX round trip', '']
        if 'skip' in onnx:
            lines.append(f"Skipped: {onnx['skip']}")
        else:
            lines.append('tests/test_onnx_export.py, dynamic axes, onnxruntime vs torch at two '
                         'shapes: ' + '; '.join(
                             f"{c['check']}: " + (f"skipped ({c['skip']})" if 'skip' in c else
                                                  'passed' if c['passed'] else
                                                  f"**FAILED** ({c['reason']})")
                             for c in onnx['checks']))
    if report.get('families'):  # imported here: a run whose package did not import has none
        from .families import families_markdown
        lines += ['', f"## Families (batch {report['families']['batch']})", '',
                  families_markdown(report['families'])]
    if report.get('matrix'):
        from .matrix import MatrixResult, matrix_markdown
        lines += ['', '## Benchmark', '', matrix_markdown(MatrixResult(**report['matrix']))]
    for name, error in report.get('errors', {}).items():
        lines += ['', f'Phase {name} failed: {error}']
    return '\n'.join(lines) + '\n'
