"""ONNX export of ``RegNetBackbone`` (standard ONNX ops only), and running the result.

The backbone is built from a preset name or from the ``model.backbone`` of an mmdet/mmseg
config, optionally loaded from any checkpoint our loader reads (pycls, torchvision, timm, mmdet,
ours, or a whole detector whose keys start with ``backbone.``), optionally folded
(``switch_to_deploy``), and exported in eval mode. Each output is one stage's feature map, named
``stage{i}`` for ``i`` in ``out_indices`` (0-based, as in the config).

Exporter: torch's TorchScript-based exporter (``torch.onnx.export(..., dynamo=False)``). Our
graph is plain convs, ReLU, sigmoid, mean and adds, which it has exported the same way for years;
it needs ``onnx`` alone, writes the opset asked for, makes batch, height and width dynamic with
``dynamic_axes``, and takes about half a second. The torch.export-based exporter (torch's default
since 2.9; ``exporter='dynamo'``) also exports this backbone correctly, but needs onnxscript,
takes about 20 times longer, and with torch 2.14 / onnxscript 0.7.2 it could not convert its
native opset 18 down to 17 and kept 18 without raising (we raise instead). Either way the written
graph is checked: any op outside the default domain raises :class:`NonStandardOpError`, and an
opset other than the one asked for raises :class:`DeployError`.
"""
import contextlib
import inspect
import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.registry import DefaultScope

from .atomic import replace_file
from .checkpoints.pretrained import load_pretrained
from .errors import RegNetError
from .models.backbone import RegNetBackbone

#: The default ONNX opset: supported by onnxruntime >= 1.14 and TensorRT >= 8.6.
DEFAULT_OPSET = 17
#: Domains of the standard operator set ('' is how ONNX spells 'ai.onnx').
STANDARD_DOMAINS = ('', 'ai.onnx')


class DeployError(RegNetError):
    """Base class: the model cannot be built, exported or run as asked."""


class MissingDependencyError(DeployError, ImportError):
    """``onnx`` or ``onnxruntime`` (or the config's ``mmengine``) is not installed."""


class NonStandardOpError(DeployError):
    """The exported graph uses an op outside the standard ONNX domain."""


def require(module: str, purpose: str):
    """Import ``module`` or raise :class:`MissingDependencyError` with the pip command."""
    try:
        return __import__(module)
    except ImportError as error:
        package = {'onnxruntime': 'onnxruntime', 'onnx': 'onnx', 'onnxscript': 'onnxscript',
                   'mmengine': 'mmengine'}.get(module, module)
        raise MissingDependencyError(
            f'{purpose} needs {module}, which does not import ({error}); '
            f'install it with `pip install {package}` (pinned in requirements/tests.txt).'
        ) from None


# --- building the backbone ------------------------------------------------------------------------
def backbone_cfg_from_config(config: str) -> Tuple[dict, Optional[str]]:
    """``model.backbone`` of an mmdet / mmseg / mmpretrain config file (its ``_base_`` files
    resolved) and the config's ``default_scope``, which decides the backbone's codebase defaults
    (``out_indices``, ``norm_eval``).

    Raises:
        DeployError: the file is missing or its backbone is not a ``RegNetBackbone``.
    """
    require('mmengine', 'reading a config')
    from mmengine.config import Config
    if not os.path.isfile(config):
        raise DeployError(f'config {config} does not exist.')
    try:
        cfg = Config.fromfile(config)
    except Exception as error:  # mmengine raises many types for a bad config or missing base
        raise DeployError(f'cannot read config {config}: {type(error).__name__}: {error}') from None
    backbone = cfg.get('model', {}).get('backbone')
    if not backbone:
        raise DeployError(f'config {config} has no model.backbone.')
    backbone = backbone.to_dict() if hasattr(backbone, 'to_dict') else dict(backbone)
    kind = str(backbone.get('type', ''))
    if kind.split('.')[-1] != 'RegNetBackbone':
        raise DeployError(f"config {config}: model.backbone is {kind or 'untyped'}, not "
                          'RegNetBackbone; export a config that uses this backbone.')
    return backbone, cfg.get('default_scope')


def load_for_export(arch: Optional[str] = None, config: Optional[str] = None,
                   checkpoint: Optional[str] = None, deploy: bool = False,
                   out_indices: Optional[Sequence[int]] = None) -> RegNetBackbone:
    """An eval-mode ``RegNetBackbone`` ready to export.

    Give ``arch`` (a preset name) or ``config`` (its ``model.backbone`` is used, its
    ``init_cfg`` ignored: pass the weights as ``checkpoint``). ``SyncBN`` becomes ``BN`` (the same
    function in eval mode). Without ``checkpoint`` the weights are pycls's random initialisation.
    ``deploy`` folds every BatchNorm into its conv first.

    Raises:
        DeployError: neither or both of arch/config, backbone arguments RegNetBackbone does not
            take, or a norm that cannot be folded. A bad arch raises ``ArchitectureError`` and
            checkpoint errors ``regnet_backbone.checkpoints``' ``CheckpointError`` subclasses.
    """
    if (arch is None) == (config is None):
        raise DeployError('give exactly one of an arch name or a config file.')
    # an arch alone exports every stage (mmdet's defaults), whatever scope this process is in
    kwargs, scope = backbone_cfg_from_config(config) if config else (dict(arch=arch), 'mmdet')
    kwargs.pop('type', None)
    kwargs.pop('init_cfg', None)
    norm_cfg = kwargs.get('norm_cfg')
    if isinstance(norm_cfg, dict) and norm_cfg.get('type') == 'SyncBN':
        kwargs['norm_cfg'] = dict(norm_cfg, type='BN')
    if out_indices is not None:
        kwargs['out_indices'] = tuple(out_indices)
    kwargs['channels_last'] = False  # ONNX has no memory format; NCHW is the contract
    if config is None and kwargs.get('in_channels', 3) == 3:
        kwargs['in_channel_order'] = 'RGB'  # an arch alone: the exported model takes RGB
    unknown = sorted(set(kwargs) - set(inspect.signature(RegNetBackbone).parameters))
    if unknown:
        raise DeployError(f"config {config}: model.backbone has arguments RegNetBackbone does not "
                          f"take: {', '.join(unknown)}; remove them.")
    with DefaultScope.overwrite_default_scope(scope):  # the outputs its codebase builds
        model = RegNetBackbone(**kwargs)  # a bad arch raises ArchitectureError (a RegNetError)
    model.init_weights()
    if checkpoint is not None:
        load_pretrained(model, checkpoint)
    model.eval()
    if deploy:
        try:
            model.switch_to_deploy()
        except TypeError as error:
            raise DeployError(f'--deploy: {error}') from None
    return model


# --- export ---------------------------------------------------------------------------------------
@dataclass
class ExportReport:
    """What :func:`export_onnx` wrote: the file, its names, opset and the ops it uses."""
    output: str
    input_name: str
    output_names: List[str]
    opset: int
    exporter: str
    dynamic: bool
    domains: List[str] = field(default_factory=list)
    op_types: List[str] = field(default_factory=list)


def output_names(model: RegNetBackbone) -> List[str]:
    """``stage{i}`` for each ``i`` in ``model.out_indices``."""
    return [f'stage{i}' for i in model.out_indices]


def graph_ops(model_proto) -> Dict[str, List[str]]:
    """Op types per domain of an ``onnx.ModelProto`` (nested graphs and functions included)."""
    found: Dict[str, set] = {}

    def visit(graph):
        for node in graph.node:
            found.setdefault(node.domain, set()).add(node.op_type)
            for attr in node.attribute:
                if attr.g is not None and len(attr.g.node):
                    visit(attr.g)
                for sub in attr.graphs:
                    visit(sub)

    visit(model_proto.graph)
    for function in model_proto.functions:
        found.setdefault(function.domain, set()).add(function.name)
        for node in function.node:
            found.setdefault(node.domain, set()).add(node.op_type)
    return {domain: sorted(ops) for domain, ops in sorted(found.items())}


def check_standard_ops(model_proto) -> Dict[str, List[str]]:
    """:func:`graph_ops`, raising :class:`NonStandardOpError` for any non-standard domain."""
    ops = graph_ops(model_proto)
    foreign = {d: o for d, o in ops.items() if d not in STANDARD_DOMAINS}
    if foreign:
        listed = '; '.join(f"{d}: {', '.join(o)}" for d, o in foreign.items())
        raise NonStandardOpError(f'the exported graph uses non-standard ops ({listed}).')
    return ops


def _export_torchscript(model, x, path, names, opset, dynamic):
    axes = None
    if dynamic:
        axes = {'input': {0: 'batch', 2: 'height', 3: 'width'}}
        axes.update({n: {0: 'batch', 2: f'{n}_height', 3: f'{n}_width'} for n in names})
    kwargs = dict(input_names=['input'], output_names=names, opset_version=opset,
                  dynamic_axes=axes, do_constant_folding=True)
    # torch 2.1 has no dynamo argument (the TorchScript exporter is all it has); 2.9 made the
    # other exporter the default.
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False
    with warnings.catch_warnings():
        # The TorchScript exporter warns that it is deprecated, and about tracer details that
        # do not apply to a graph without data-dependent control flow.
        warnings.simplefilter('ignore')
        torch.onnx.export(model, (x, ), path, **kwargs)


def _export_dynamo(model, x, path, names, opset, dynamic):
    require('onnxscript', "torch's dynamo ONNX exporter")
    shapes = None
    if dynamic:
        dim = torch.export.Dim
        shapes = ({0: dim('batch', min=1, max=1024), 2: dim('height', min=32, max=8192),
                   3: dim('width', min=32, max=8192)}, )
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter('ignore')  # progress lines and notices are not ours to print
        program = torch.onnx.export(model, (x, ), input_names=['input'], output_names=names,
                                    opset_version=opset, dynamo=True, dynamic_shapes=shapes,
                                    external_data=False)
    program.save(path)


def export_onnx(model: RegNetBackbone, output: str,
                input_shape: Tuple[int, int, int, int] = (1, 3, 224, 224),
                opset: int = DEFAULT_OPSET, dynamic: bool = False,
                exporter: str = 'torchscript') -> ExportReport:
    """Export ``model`` (eval mode) to ``output`` atomically and check its ops.

    Args:
        input_shape: (N, C, H, W) of the example input; with ``dynamic`` any N, H, W run.
        opset: ONNX opset version.
        dynamic: make batch, height and width dynamic axes.
        exporter: ``'torchscript'`` (default, see the module docstring) or ``'dynamo'``.

    Raises:
        MissingDependencyError: onnx (or onnxscript for dynamo) is not installed.
        NonStandardOpError: the graph uses an op outside the default ONNX domain (the file is
            not written).
        DeployError: the exporter failed.
    """
    onnx = require('onnx', 'ONNX export')
    if exporter not in ('torchscript', 'dynamo'):
        raise DeployError(f"exporter must be 'torchscript' or 'dynamo', got {exporter!r}.")
    if model.training:
        model.eval()
    names = output_names(model)
    x = torch.randn(*input_shape)
    export = _export_torchscript if exporter == 'torchscript' else _export_dynamo
    report = ExportReport(os.fspath(output), 'input', names, opset, exporter, dynamic)

    def write(tmp):
        try:
            with torch.no_grad():
                export(model, x, tmp, names, opset, dynamic)
        except (MissingDependencyError, NonStandardOpError):
            raise
        except Exception as error:  # the exporters raise many types; keep the first line
            first = str(error).strip().splitlines()[0] if str(error).strip() else ''
            raise DeployError(f'{exporter} ONNX export failed: {type(error).__name__}: '
                              f'{first}') from error
        proto = onnx.load(tmp)
        onnx.checker.check_model(proto)
        ops = check_standard_ops(proto)
        written = next((o.version for o in proto.opset_import
                        if o.domain in STANDARD_DOMAINS), None)
        if written != opset:
            # torch's dynamo exporter converts its native opset down with onnxscript's version
            # converter and, when that fails, keeps the native one without raising.
            raise DeployError(f'the {exporter} exporter wrote opset {written}, not the requested '
                              f'{opset}; ask for opset {written} or use the torchscript exporter.')
        report.domains = list(ops)
        report.op_types = sorted({op for o in ops.values() for op in o})

    replace_file(output, write)
    return report


# --- running --------------------------------------------------------------------------------------
def onnxruntime_session(path: str, threads: Optional[int] = None):
    """A CPU ``onnxruntime.InferenceSession`` of ``path`` (``threads`` intra-op threads)."""
    ort = require('onnxruntime', 'running an exported model')
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def run_onnxruntime(session, images) -> List:
    """Run a session on (N, 3, H, W) float32 ``images`` (numpy or tensor); one array per output."""
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().contiguous().numpy()
    return session.run(None, {session.get_inputs()[0].name: images})
