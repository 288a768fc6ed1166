"""The one builder registry: our backbone and each rival that ships the same arch.

Every builder returns a module mapping images to a tuple of feature maps (or, for onnxruntime,
an ONNX Runtime session behind that interface). Fairness: every model trains its BN
(``norm_eval=False``; mmdet's ``RegNet`` would freeze it by default and do less work).
"""
from dataclasses import dataclass
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from regnet_backbone.benchmark import BenchmarkError, first_line
from regnet_backbone.design.presets import get_preset
from regnet_backbone.models import RegNetBackbone

from .modes import TASKS, Mode

RIVALS = ('torchvision', 'timm', 'mmdet')


class Features(nn.Module):
    """Run ``stem`` then ``stages`` and return every stage output (for foreign models)."""

    def __init__(self, stem: nn.Module, stages: List[nn.Module]):
        super().__init__()
        self.stem, self.stages = stem, nn.ModuleList(stages)

    def forward(self, x):
        x, outs = self.stem(x), []
        for stage in self.stages:
            x = stage(x)
            outs.append(x)
        return tuple(outs)


class TupleOut(nn.Module):
    """Wrap a model whose output is a tensor or a list, so that it returns a tuple."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        out = self.model(x)
        return (out, ) if isinstance(out, torch.Tensor) else tuple(out)


def build_ours(arch: str, with_cp: bool = False) -> nn.Module:
    """Our backbone, pycls init, every BN training (``zero_init_residual=False`` as the rivals)."""
    model = RegNetBackbone(arch, with_cp=with_cp, zero_init_residual=False, norm_eval=False)
    model.init_weights()
    return model


def build_mmdet(name: str) -> nn.Module:
    from mmdet.models.backbones import RegNet
    from mmengine.logging import MMLogger
    model = RegNet(arch=name, out_indices=(0, 1, 2, 3), norm_eval=False)
    # mmengine logs one INFO paragraph per initialised tensor: hundreds of lines per build.
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel('WARNING')
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model


def build_torchvision(name: str) -> nn.Module:
    import torchvision.models as tvm
    model = getattr(tvm, name)()
    trunk = model.trunk_output
    return Features(model.stem, [trunk.block1, trunk.block2, trunk.block3, trunk.block4])


def build_timm(name: str) -> nn.Module:
    import timm
    return TupleOut(timm.create_model(name, features_only=True, out_indices=(1, 2, 3, 4)))


class OnnxRuntimeModel(nn.Module):
    """An onnxruntime CPU session behind the builders' interface (images -> tuple of maps)."""

    def __init__(self, session):
        super().__init__()
        self.session = session

    def forward(self, x):
        from regnet_backbone.deploy import run_onnxruntime
        return tuple(torch.from_numpy(o) for o in run_onnxruntime(self.session, x))


def build_onnxruntime(arch: str) -> nn.Module:
    """Our deploy-mode backbone exported with dynamic axes, in an onnxruntime CPU session."""
    import os
    import tempfile

    from regnet_backbone.deploy import export_onnx, load_for_export, onnxruntime_session
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'backbone.onnx')
        export_onnx(load_for_export(arch, deploy=True), path, (1, 3, 64, 64), dynamic=True)
        session = onnxruntime_session(path, threads=torch.get_num_threads())
    return OnnxRuntimeModel(session)


#: name -> (the preset's field naming the arch there, or None for ours, the modules that must
#: import, the builder taking that name).
BUILDERS = {
    'ours': (None, (), build_ours),
    'torchvision': ('torchvision_name', ('torchvision', ), build_torchvision),
    'timm': ('timm_name', ('timm', ), build_timm),
    'mmdet': ('mmdet_name', ('mmcv.ops', 'mmdet.models.backbones'), build_mmdet),
    'onnxruntime': (None, ('onnxruntime', 'onnx'), build_onnxruntime),
}


@dataclass
class Implementation:
    """A backbone implementation: ``build(**options)`` returns a module mapping images to
    feature maps. ``skip`` holds why it cannot run here (not installed, no such arch)."""
    name: str
    build: Optional[Callable[..., nn.Module]]
    skip: Optional[str] = None
    can_deploy: bool = False
    modes: Optional[Tuple[str, ...]] = None  # only these mode names, when set
    tasks: Tuple[str, ...] = TASKS

    def supports(self, mode: Mode, task: str) -> bool:
        if task not in self.tasks or (self.modes is not None and mode.name not in self.modes):
            return False
        return not mode.deploy or (self.can_deploy and task == 'inference')


def import_reason(module: str) -> Optional[str]:
    """Why ``module`` does not import here, or None when it does."""
    try:
        __import__(module)
    except Exception as error:  # a broken install raises more than ImportError
        return f'{module} does not import ({first_line(error)})'
    return None


def implementation(name: str, arch: str) -> Implementation:
    """The registry's entry ``name`` for ``arch``, with ``skip`` set when it cannot run here."""
    if name not in BUILDERS:
        raise BenchmarkError(f'unknown rival {name!r}; choose from {RIVALS}.')
    field, modules, builder = BUILDERS[name]
    target = getattr(get_preset(arch), field) if field else arch
    reason = None if target else f'{name} ships no {arch}'
    for module in modules:
        reason = reason or import_reason(module)

    def build(**options):
        return builder(target, **options)
    if name == 'onnxruntime':
        return Implementation(name, None if reason else build, reason, modes=('fp32', ),
                              tasks=('inference', ))
    return Implementation(name, None if reason else build, reason, can_deploy=name == 'ours')


def implementations_for(arch: str, rivals: Sequence[str] = RIVALS,
                        onnxruntime: bool = False) -> List[Implementation]:
    """Ours plus each requested rival (and onnxruntime), in that order."""
    names = ['ours', *rivals] + (['onnxruntime'] if onnxruntime else [])
    return [implementation(name, arch) for name in names]
