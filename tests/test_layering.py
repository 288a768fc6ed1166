"""The package's layers hold: no module imports from a layer above its own, and no import cycle.

Read from the source with ``ast`` (imports inside functions count too), so a new upward import
fails here before it can turn into a circular-import error at run time.
"""
import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / 'regnet_backbone'

#: Bottom to top. A module may import from its own layer and the ones before it.
LAYERS = ('errors', 'atomic', 'design', 'models', 'checkpoints', 'runtime', 'apis', 'deploy',
          'study', 'demo', 'benchmark')
#: What users install into their environment for ``type='RegNetBackbone'``: the design math, the
#: modules, the checkpoint formats and the OpenMMLab glue. The rest (design-space studies, the
#: demo, the benchmarks) is built on top of it and never imported by it.
PLUGIN = LAYERS[:LAYERS.index('study')]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix('').parts
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def imports_of(path: Path):
    """The ``regnet_backbone`` modules that ``path`` imports, absolute, anywhere in the file."""
    name = module_name(path)
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith('regnet_backbone'))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                target = '.'.join(base + ([node.module] if node.module else []))
            elif (node.module or '').startswith('regnet_backbone'):
                target = node.module
            else:
                continue
            for alias in node.names:  # `from . import hooks` imports a module
                candidate = f'{target}.{alias.name}'
                found.add(candidate if MODULES.get(candidate) else target)
    return {m for m in found if m in MODULES}


MODULES = {module_name(p): p for p in PACKAGE.rglob('*.py')}
GRAPH = {name: imports_of(path) for name, path in MODULES.items()}


def layer(name: str) -> int:
    parts = name.split('.')
    if len(parts) == 1:
        return len(LAYERS)  # the package's __init__: the top, it may import anything
    return LAYERS.index(parts[1])


def test_every_subpackage_and_top_level_module_has_a_layer():
    assert {n.split('.')[1] for n in MODULES if '.' in n} <= set(LAYERS)


def test_no_module_imports_from_a_layer_above_it():
    upward = sorted(f'{src} -> {dst}' for src, targets in GRAPH.items() for dst in targets
                    if layer(dst) > layer(src))
    assert not upward, upward


def test_the_plugin_never_imports_the_study_the_demo_or_the_benchmarks():
    plugin = [n for n in GRAPH if n == 'regnet_backbone' or n.split('.')[1] in PLUGIN]
    outside = sorted(f'{src} -> {dst}' for src in plugin for dst in GRAPH[src]
                     if '.' in dst and dst.split('.')[1] not in PLUGIN)
    assert not outside, outside


def test_no_import_cycles():
    """Between modules (a package's ``__init__`` re-exporting its own modules is not a cycle)."""
    def edges(name):
        return {t for t in GRAPH[name] if not (t != name and name.startswith(t + '.')
                                                and MODULES[t].name == '__init__.py')}
    state, cycles = {}, []

    def visit(name, stack):
        state[name] = 'open'
        for target in sorted(edges(name)):
            if target == name:
                continue
            if state.get(target) == 'open':
                cycles.append(stack[stack.index(target):] + [target])
            elif target not in state:
                visit(target, stack + [target])
        state[name] = 'done'

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles


def test_the_check_sees_lazy_and_relative_imports():
    """The graph is built right: a known lazy import and a known relative one are in it."""
    assert 'regnet_backbone.design.presets' in GRAPH['regnet_backbone.models.backbone']
    assert 'regnet_backbone.models' in GRAPH['regnet_backbone.runtime.channels']
