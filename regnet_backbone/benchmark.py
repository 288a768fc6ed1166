"""Side-by-side backbone timing: ours against mmdet's RegNet, torchvision and timm.

Fairness rules: every candidate runs in one process on the same input, rounds are interleaved
(A B C A B C ...) so drifts of the machine hit all of them alike, each candidate is warmed up
first, and the reported time is the median over rounds. Speeds are reported as ratios to mmdet's
eager NCHW model, the rival users have today.
"""
import gc
import resource
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .design.complexity import complexity
from .design.presets import get_preset, resolve_arch
from .models import RegNetBackbone


@dataclass
class Candidate:
    """One model to time. ``build`` returns a module mapping images to a tuple of features."""
    name: str
    build: Callable[[], nn.Module]
    channels_last: bool = False
    inference_only: bool = False
    training_only: bool = False


class _Features(nn.Module):
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


def _ours(arch: str, channels_last=False, deploy=False, with_cp=False) -> Callable[[], nn.Module]:
    def build():
        # norm_eval=False: every candidate trains its BN (see _mmdet).
        model = RegNetBackbone(arch, channels_last=channels_last, with_cp=with_cp,
                               zero_init_residual=False, norm_eval=False)
        model.init_weights()
        return model.switch_to_deploy() if deploy else model
    return build


def _mmdet(mmdet_name: str) -> Callable[[], nn.Module]:
    def build():
        from mmdet.models.backbones import RegNet
        # mmdet's ResNet family defaults to norm_eval=True (BN frozen in train mode, as in its
        # detection recipes); every other candidate trains its BN, so the training rows would
        # compare unequal work. norm_eval=False makes all of them update BN statistics.
        model = RegNet(arch=mmdet_name, out_indices=(0, 1, 2, 3), norm_eval=False)
        # mmengine logs one INFO paragraph per initialised tensor: hundreds of lines per build.
        from mmengine.logging import MMLogger
        logger = MMLogger.get_current_instance()
        level = logger.level
        logger.setLevel('WARNING')
        try:
            model.init_weights()
        finally:
            logger.setLevel(level)
        return model
    return build


def _torchvision(tv_name: str) -> Callable[[], nn.Module]:
    def build():
        import torchvision.models as tvm
        model = getattr(tvm, tv_name)()
        trunk = model.trunk_output
        return _Features(model.stem, [trunk.block1, trunk.block2, trunk.block3, trunk.block4])
    return build


def _timm(timm_name: str) -> Callable[[], nn.Module]:
    def build():
        import timm
        return _TupleOut(timm.create_model(timm_name, features_only=True, out_indices=(1, 2, 3, 4)))
    return build


class _TupleOut(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return tuple(self.model(x))


def candidates_for(arch: str, rivals: bool = True) -> List[Candidate]:
    """Our variants plus every rival implementation that ships ``arch``."""
    preset = get_preset(arch)
    result = []
    if rivals and preset.mmdet_name:
        result.append(Candidate('mmdet RegNet (NCHW)', _mmdet(preset.mmdet_name)))
    result += [
        Candidate('ours (NCHW)', _ours(arch)),
        Candidate('ours channels_last', _ours(arch, channels_last=True), channels_last=True),
        Candidate('ours deploy + channels_last', _ours(arch, channels_last=True, deploy=True),
                  channels_last=True, inference_only=True),
        Candidate('ours with_cp (NCHW)', _ours(arch, with_cp=True), training_only=True),
    ]
    if rivals and preset.torchvision_name:
        result.append(Candidate('torchvision (NCHW)', _torchvision(preset.torchvision_name)))
    if rivals and preset.timm_name:
        result.append(Candidate('timm (NCHW)', _timm(preset.timm_name)))
    return result


def measure_sgemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """Achieved fp32 matrix-multiply GFLOP/s (2 n^3 flops per product): the machine's peak."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - start)
    return 2 * n**3 / statistics.median(times) / 1e9


def _step(model: nn.Module, x: torch.Tensor, mode: str) -> None:
    if mode == 'inference':
        with torch.inference_mode():
            model(x)
    else:
        outs = model(x)
        sum(o.float().mean() for o in outs).backward()
        model.zero_grad(set_to_none=True)


@dataclass
class Timing:
    name: str
    mode: str
    seconds: float
    rounds: List[float] = field(default_factory=list)


def time_candidates(cands: List[Candidate], mode: str, batch: int, size: Tuple[int, int],
                    rounds: int = 5, warmup: int = 2) -> List[Timing]:
    """Median seconds per step of each candidate, with interleaved rounds."""
    if mode not in ('inference', 'train'):
        raise ValueError(f"mode must be 'inference' or 'train', got {mode!r}.")
    torch.manual_seed(0)
    x = torch.randn(batch, 3, *size)
    active = [c for c in cands
              if not (c.inference_only and mode == 'train' or c.training_only and mode == 'inference')]
    models, inputs = {}, {}
    for c in active:
        model = c.build()
        model.train(mode == 'train')
        models[c.name] = model
        inputs[c.name] = x.contiguous(memory_format=torch.channels_last) if c.channels_last else x
        for _ in range(warmup):
            _step(model, inputs[c.name], mode)
    samples: Dict[str, List[float]] = {c.name: [] for c in active}
    for _ in range(rounds):
        for c in active:
            start = time.perf_counter()
            _step(models[c.name], inputs[c.name], mode)
            samples[c.name].append(time.perf_counter() - start)
    return [Timing(c.name, mode, statistics.median(samples[c.name]), samples[c.name])
            for c in active]


def peak_train_memory_mb(build: Callable[[], nn.Module], batch: int, size: Tuple[int, int],
                         channels_last: bool = False) -> float:
    """Peak resident memory added by one training step, in MiB (run in a fresh process)."""
    model = build()
    model.train()  # mmdet's ResNet.train() returns None: do not chain
    x = torch.randn(batch, 3, *size)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    gc.collect()
    with open('/proc/self/statm') as f:
        base = int(f.read().split()[1]) * resource.getpagesize() / 2**20
    _step(model, x, 'train')
    # VmHWM belongs to this address space; ru_maxrss would carry over the parent's peak when the
    # process was forked from a large one.
    with open('/proc/self/status') as f:
        peak_kib = next(int(line.split()[1]) for line in f if line.startswith('VmHWM:'))
    return peak_kib / 1024 - base


def backbone_gflop(arch: str, batch: int, size: Tuple[int, int]) -> float:
    """Forward GFLOP (2 x multiply-adds) of the backbone for a batch, from our own count."""
    macs = complexity(resolve_arch(arch), input_size=size, num_classes=None)['flops']
    return 2 * macs * batch / 1e9


def summarise(timings: List[Timing], arch: str, batch: int, size: Tuple[int, int],
              sgemm_gflops: Optional[float]) -> List[Dict]:
    """Rows with seconds, ratio to the mmdet (or first) candidate, GFLOP/s and % of sgemm."""
    gflop = backbone_gflop(arch, batch, size)
    rows = []
    for mode in dict.fromkeys(t.mode for t in timings):
        group = [t for t in timings if t.mode == mode]
        base = next((t for t in group if t.name.startswith('mmdet')), group[0])
        for t in group:
            # A training step is forward + backward: about 3x the forward flops. Detector steps
            # have no backbone-only flop count.
            work = None if mode.startswith('detector') else gflop * (3 if mode == 'train' else 1)
            rows.append(dict(mode=mode, name=t.name, seconds=t.seconds,
                             speedup=base.seconds / t.seconds, baseline=base.name,
                             gflops=work / t.seconds if work else None,
                             sgemm_fraction=(work / t.seconds / sgemm_gflops)
                             if work and sgemm_gflops else None))
    return rows


def markdown(rows: List[Dict], header: str) -> str:
    lines = [header, '', '| mode | implementation | median s/step | speed vs mmdet | GFLOP/s | % of sgemm |',
             '|---|---|---|---|---|---|']
    for r in rows:
        frac = f"{100 * r['sgemm_fraction']:.0f}%" if r['sgemm_fraction'] else '-'
        gflops = f"{r['gflops']:.0f}" if r['gflops'] else '-'
        lines.append(f"| {r['mode']} | {r['name']} | {r['seconds']:.3f} | {r['speedup']:.2f}x | "
                     f"{gflops} | {frac} |")
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------------
# Detector level: a Mask R-CNN training step and predict step, our config against mmdet's.
# ------------------------------------------------------------------------------------------------
OUR_MASK_RCNN = 'configs/mask_rcnn_regnetx_3.2gf_fpn.py'
MMDET_MASK_RCNN = 'mmdet::regnet/mask-rcnn_regnetx-3.2GF_fpn_1x_coco.py'


def build_detector(config: str, cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a detector from an mmdet config with pretrained init switched off."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules
    register_all_modules()
    from .runtime import registry  # noqa: F401  (registers RegNetBackbone)
    cfg = get_config(config) if '::' in config else Config.fromfile(config)
    cfg.model.backbone.init_cfg = None
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def time_detectors(builders: Dict[str, Callable[[], nn.Module]], batch: int,
                   size: Tuple[int, int], rounds: int = 3, warmup: int = 1) -> List[Timing]:
    """Median seconds of a training step (loss + backward) and a predict step per detector."""
    from mmdet.testing import demo_mm_inputs
    torch.manual_seed(0)
    data = demo_mm_inputs(batch_size=batch, image_shapes=[(3, *size)] * batch,
                          num_items=[6] * batch, num_classes=80, with_mask=True)
    models = {name: build() for name, build in builders.items()}

    def train_step(model):
        model.train()
        batch_data = model.data_preprocessor(data, True)
        losses = model(**batch_data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        model.zero_grad(set_to_none=True)

    def predict_step(model):
        model.eval()
        with torch.no_grad():
            model(**model.data_preprocessor(data, False), mode='predict')

    timings = []
    for mode, step in (('detector train', train_step), ('detector predict', predict_step)):
        for model in models.values():
            for _ in range(warmup):
                torch.manual_seed(0)
                step(model)
        samples: Dict[str, List[float]] = {name: [] for name in models}
        for _ in range(rounds):
            for name, model in models.items():
                torch.manual_seed(0)
                start = time.perf_counter()
                step(model)
                samples[name].append(time.perf_counter() - start)
        timings += [Timing(name, mode, statistics.median(s), s) for name, s in samples.items()]
    return timings


# The goals of the performance issue, checked against a run's rows.
TARGETS = (
    ('inference', 'ours deploy + channels_last', 'speedup', '>=', 1.45,
     'deploy-mode inference vs mmdet eager NCHW'),
    ('inference', 'ours deploy + channels_last', 'sgemm_fraction', '>=', 0.90,
     'deploy-mode inference, fraction of measured sgemm GFLOP/s'),
    ('train', 'ours channels_last', 'speedup', '>=', 1.1,
     'training forward+backward vs mmdet (fastest training variant of ours)'),
    ('memory', 'ours with_cp (NCHW)', 'ratio_to_ours_nchw', '<=', 0.6,
     'with_cp peak training memory vs without'),
    ('detector train', 'ours Mask R-CNN channels_last', 'speedup', '>=', 1.0,
     'Mask R-CNN training step vs mmdet RegNet config'),
)


def targets_markdown(rows: List[Dict], memory: List[Dict]) -> str:
    """A markdown table of each target, the measured value and whether it is met."""
    lookup = {(r['mode'], r['name']): r for r in list(rows) + list(memory)}
    lines = ['| target | goal | measured | met |', '|---|---|---|---|']
    for mode, name, key, op, goal, text in TARGETS:
        row = lookup.get((mode, name))
        if row is None or row.get(key) is None:
            lines.append(f'| {text} | {op} {goal} | not measured in this run | - |')
            continue
        value = row[key]
        met = value >= goal if op == '>=' else value <= goal
        lines.append(f'| {text} | {op} {goal:g} | {value:.2f} | {"yes" if met else "**no**"} |')
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------------
# onnxruntime: our deploy-mode backbone exported to ONNX, run on the CPU (a CPU inference row).
# ------------------------------------------------------------------------------------------------
class _OnnxRuntimeModel(nn.Module):
    """An onnxruntime CPU session behind the candidates' interface (images -> tuple of maps)."""

    def __init__(self, session):
        super().__init__()
        self.session = session

    def forward(self, x):
        from .deploy import run_onnxruntime
        return tuple(torch.from_numpy(o) for o in run_onnxruntime(self.session, x))


def _onnxruntime(arch: str) -> Callable[[], nn.Module]:
    def build():
        import os
        import tempfile

        from .deploy import build_backbone, export_onnx, onnxruntime_session
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, 'backbone.onnx')
            export_onnx(build_backbone(arch, deploy=True), path, (1, 3, 64, 64), dynamic=True)
            session = onnxruntime_session(path, threads=torch.get_num_threads())
        return _OnnxRuntimeModel(session)
    return build


def onnxruntime_candidate(arch: str) -> Candidate:
    """The onnxruntime CPU row (``tools/benchmark.py --onnx``): inference only."""
    return Candidate('onnxruntime CPU (ours deploy)', _onnxruntime(arch), inference_only=True)


# ================================================================================================
# Device benchmark (CPU or CUDA): ours in every precision/layout mode against each rival.
#
# A *mode* is a precision (fp32, AMP fp16, AMP bf16) plus flags: channels_last, deploy
# (``switch_to_deploy``, ours only, inference only) and compile (``torch.compile``). Every
# implementation runs every mode it can; ours in mode M is compared with each rival in M, or, when
# the rival cannot run M (deploy) or was not run in it (compile by default), in M without those
# flags (the rival's eager model), and the row says which. A mode a device or a torch build cannot
# do is not a crash: the row becomes a recorded skip with the reason.
# ================================================================================================
PRECISIONS = ('fp32', 'amp_fp16', 'amp_bf16')
MODE_FLAGS = ('channels_last', 'deploy', 'compile')
TASKS = ('inference', 'train')
MATRIX_ARCHS = ('regnetx_3.2gf', 'regnety_1.6gf')
#: (batch, height, width) of the issue: classification-size and detection-size inputs.
MATRIX_SHAPES = ((32, 224, 224), (8, 800, 1344))
DEFAULT_MODES = {
    'cuda': ('fp32', 'channels_last', 'amp_fp16', 'amp_bf16', 'amp_bf16+channels_last',
             'amp_bf16+channels_last+deploy', 'amp_bf16+channels_last+compile'),
    'cpu': ('fp32', 'channels_last', 'amp_bf16', 'channels_last+deploy', 'channels_last+compile'),
}
RIVALS = ('torchvision', 'timm', 'mmdet')


class BenchmarkError(Exception):
    """A benchmark cannot run as asked (unknown mode, device not present, bad shape)."""


@dataclass(frozen=True)
class Mode:
    """How a model runs: a precision plus layout/deploy/compile flags, written
    ``'amp_bf16+channels_last'``."""
    precision: str = 'fp32'
    channels_last: bool = False
    deploy: bool = False
    compile: bool = False

    @classmethod
    def parse(cls, text: str) -> 'Mode':
        tokens = [t for t in text.split('+') if t]
        precision = [t for t in tokens if t in PRECISIONS]
        unknown = [t for t in tokens if t not in PRECISIONS and t not in MODE_FLAGS]
        if unknown or len(precision) > 1 or not tokens:
            raise BenchmarkError(f'mode {text!r}: use one of {PRECISIONS} (default fp32) joined by '
                                 f"'+' with any of {MODE_FLAGS}, e.g. 'amp_bf16+channels_last'.")
        return cls(precision[0] if precision else 'fp32', *(f in tokens for f in MODE_FLAGS))

    @property
    def name(self) -> str:
        flags = [f for f in MODE_FLAGS if getattr(self, f)]
        if self.precision == 'fp32' and flags:
            return '+'.join(flags)
        return '+'.join([self.precision] + flags)

    @property
    def dtype(self) -> Optional[torch.dtype]:
        return {'amp_fp16': torch.float16, 'amp_bf16': torch.bfloat16}.get(self.precision)

    def without(self, *flags: str) -> 'Mode':
        return Mode(self.precision, *(getattr(self, f) and f not in flags for f in MODE_FLAGS))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    line = text.splitlines()[0] if text else ''
    return f'{type(error).__name__}: {line[:300]}'


@dataclass
class Implementation:
    """A backbone implementation: ``build()`` returns a module mapping images to feature maps.

    ``skip`` holds why it cannot run here (a rival not installed, an arch it does not ship).
    """
    name: str
    build: Optional[Callable[[], nn.Module]]
    skip: Optional[str] = None
    can_deploy: bool = False
    modes: Optional[Tuple[str, ...]] = None  # only these mode names, when set
    tasks: Tuple[str, ...] = TASKS

    def supports(self, mode: Mode, task: str) -> bool:
        if task not in self.tasks or (self.modes is not None and mode.name not in self.modes):
            return False
        return not mode.deploy or (self.can_deploy and task == 'inference')


def _import_reason(module: str) -> Optional[str]:
    try:
        __import__(module)
    except Exception as error:  # a broken install raises more than ImportError
        return f'{module} does not import ({_first_line(error)})'
    return None


def implementations_for(arch: str, rivals: Sequence[str] = RIVALS,
                        onnxruntime: bool = False) -> List[Implementation]:
    """Ours plus each requested rival, each rival with ``skip`` set when it cannot run here."""
    preset = get_preset(arch)
    result = [Implementation('ours', _ours(arch), can_deploy=True)]
    names = {'torchvision': preset.torchvision_name, 'timm': preset.timm_name,
             'mmdet': preset.mmdet_name}
    builders = {'torchvision': _torchvision, 'timm': _timm, 'mmdet': _mmdet}
    for rival in rivals:
        if rival not in builders:
            raise BenchmarkError(f'unknown rival {rival!r}; choose from {RIVALS}.')
        module = 'mmcv.ops' if rival == 'mmdet' else rival
        reason = None if names[rival] else f'{rival} ships no {arch}'
        reason = reason or _import_reason(module)
        if rival == 'mmdet' and reason is None:
            reason = _import_reason('mmdet.models.backbones')
        result.append(Implementation(rival, builders[rival](names[rival]) if not reason else None,
                                     skip=reason))
    if onnxruntime:
        reason = _import_reason('onnxruntime') or _import_reason('onnx')
        result.append(Implementation('onnxruntime', _onnxruntime(arch) if not reason else None,
                                     skip=reason, modes=('fp32', ), tasks=('inference', )))
    return result


def _autocast(device: torch.device, mode: Mode):
    if mode.dtype is None:
        import contextlib
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=mode.dtype)


def _grad_scaler(device: torch.device, mode: Mode):
    """A GradScaler for fp16 training on CUDA (bf16 and fp32 need none); None elsewhere."""
    if mode.precision != 'amp_fp16' or device.type != 'cuda':
        return None
    try:
        return torch.amp.GradScaler('cuda')
    except (AttributeError, TypeError):  # torch < 2.3
        return torch.cuda.amp.GradScaler()


class StepRunner:
    """One (model, mode, task) on a device with its own input: calling it runs one step.

    inference: a forward pass without autograd. train: forward, backward and an SGD step
    (momentum 0.9) with every BN updating its statistics; AMP fp16 on CUDA uses a GradScaler.
    """

    def __init__(self, model: nn.Module, mode: Mode, task: str, images: torch.Tensor,
                 device: torch.device):
        if task not in TASKS:
            raise BenchmarkError(f'task must be one of {TASKS}, got {task!r}.')
        self.mode, self.task, self.device = mode, task, device
        model = model.to(device)
        if mode.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if mode.deploy:
            model.switch_to_deploy()
        model.train(task == 'train')
        self.model = model
        memory_format = torch.channels_last if mode.channels_last else torch.contiguous_format
        self.images = images.to(device).contiguous(memory_format=memory_format)
        self.forward = torch.compile(model) if mode.compile else model
        self.optimizer = self.scaler = None
        if task == 'train':
            params = [p for p in model.parameters() if p.requires_grad]
            # A small lr: weights barely move, so every round times the same network.
            self.optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
            self.scaler = _grad_scaler(device, mode)

    def __call__(self) -> None:
        if self.task == 'inference':
            with torch.no_grad(), _autocast(self.device, self.mode):
                self.forward(self.images)
            return
        with _autocast(self.device, self.mode):
            outs = self.forward(self.images)
            loss = sum(o.float().mean() for o in outs)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_calls(fn: Callable[[], None], iters: int, device: torch.device) -> float:
    """Seconds per call over ``iters`` back-to-back calls: CUDA events on a GPU (the time the
    GPU stream took between the two events), ``perf_counter`` on the CPU."""
    if device.type == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3 / iters
    begin = time.perf_counter()
    for _ in range(iters):
        fn()
    return (time.perf_counter() - begin) / iters


def peak_step_memory_mb(fn: Callable[[], None], device: torch.device) -> Optional[float]:
    """``torch.cuda.max_memory_allocated`` during one step, above what was allocated before it
    (MiB); None on a CPU."""
    if device.type != 'cuda':
        return None
    synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    fn()
    synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / 2**20


def _release(device: torch.device) -> None:
    gc.collect()
    if device.type == 'cuda':
        torch.cuda.empty_cache()


def time_interleaved(runners: Dict[str, Callable[[], None]], device: torch.device, rounds: int,
                     warmup: int, min_sample_s: float = 0.0,
                     skipped: Optional[Dict[str, str]] = None) -> Dict[str, List[float]]:
    """Seconds per step of each runner: ``warmup`` steps each, then ``rounds`` interleaved rounds
    (A B C A B C ...). Each sample repeats the step until it lasts about ``min_sample_s``, so short
    GPU steps are not dominated by launch jitter. A runner that raises is dropped and its reason
    put in ``skipped``. Returns the per-round samples (take the median)."""
    skipped = {} if skipped is None else skipped
    iters: Dict[str, int] = {}
    for key, fn in list(runners.items()):
        try:
            for _ in range(max(warmup, 1)):
                fn()
            synchronize(device)
            once = time_calls(fn, 1, device)
        except Exception as error:
            skipped[key] = _first_line(error)
            del runners[key]
            _release(device)
            continue
        iters[key] = max(1, min(50, int(min_sample_s / max(once, 1e-6)) + 1)) if min_sample_s else 1
    samples: Dict[str, List[float]] = {key: [] for key in runners}
    for _ in range(rounds):
        for key, fn in runners.items():
            samples[key].append(time_calls(fn, iters[key], device))
    return samples


def matmul_peaks(device: torch.device, size: Optional[int] = None,
                 repeats: int = 5) -> Dict[str, Dict]:
    """The device's achieved matrix-multiply TFLOP/s per precision, in this run.

    fp32 multiplies with the TF32 setting convs use (``torch.backends.cudnn.allow_tf32``), so an
    fp32 row is compared with the peak of the math it actually gets. Each entry holds ``tflops``
    or, when the device cannot multiply in that dtype, ``skip`` with the reason.
    """
    result = {}
    cuda = device.type == 'cuda'
    for precision, dtype in (('fp32', torch.float32), ('amp_fp16', torch.float16),
                             ('amp_bf16', torch.bfloat16)):
        # CPUs without bf16/fp16 units multiply half types hundreds of times slower: keep small.
        n = size or (8192 if cuda else (1024 if dtype == torch.float32 else 256))
        old_tf32 = torch.backends.cuda.matmul.allow_tf32
        try:
            if cuda:
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32
            a = torch.randn(n, n, device=device).to(dtype)
            b = torch.randn(n, n, device=device).to(dtype)
            for _ in range(2):
                a @ b
            synchronize(device)
            times = [time_calls(lambda: a @ b, 1, device) for _ in range(repeats)]
            entry = dict(tflops=2 * n**3 / statistics.median(times) / 1e12, n=n)
            if cuda and dtype == torch.float32:
                entry['tf32'] = bool(torch.backends.cudnn.allow_tf32)
            result[precision] = entry
            del a, b
        except Exception as error:
            result[precision] = dict(skip=_first_line(error))
        finally:
            torch.backends.cuda.matmul.allow_tf32 = old_tf32
    _release(device)
    return result


@dataclass
class MatrixResult:
    """Rows (one per arch, shape, task, implementation, mode), skips with reasons, peaks."""
    device: str
    rows: List[Dict] = field(default_factory=list)
    skipped: List[Dict] = field(default_factory=list)
    peaks: Dict[str, Dict] = field(default_factory=dict)

    def to_dict(self) -> Dict:
        return dict(device=self.device, rows=self.rows, skipped=self.skipped, peaks=self.peaks)


def parse_shape(text: str) -> Tuple[int, int, int]:
    """``'32x224x224'`` -> (batch, height, width)."""
    try:
        batch, height, width = (int(v) for v in text.lower().split('x'))
    except ValueError:
        raise BenchmarkError(f'shape {text!r}: write BATCHxHEIGHTxWIDTH, e.g. 32x224x224.'
                             ) from None
    if min(batch, height, width) < 1:
        raise BenchmarkError(f'shape {text!r}: every size must be >= 1.')
    return batch, height, width


def resolve_device(name: str) -> torch.device:
    """``'cpu'`` or ``'cuda'`` (``'cuda:N'``); raises BenchmarkError when CUDA is absent."""
    device = torch.device(name)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise BenchmarkError('--device cuda: torch sees no CUDA device here '
                             f'(torch {torch.__version__}, built for CUDA {torch.version.cuda}).')
    if device.type not in ('cpu', 'cuda'):
        raise BenchmarkError(f'device {name!r}: use cpu or cuda.')
    return device


def run_matrix(device: torch.device, archs: Sequence[str] = MATRIX_ARCHS,
               shapes: Sequence[Tuple[int, int, int]] = MATRIX_SHAPES,
               modes: Optional[Sequence[str]] = None, tasks: Sequence[str] = TASKS,
               rivals: Sequence[str] = RIVALS, compile_rivals: bool = False,
               onnxruntime: bool = False, rounds: int = 5, warmup: int = 2,
               min_sample_s: Optional[float] = None, deadline: Optional[float] = None,
               compile_reserve_s: float = 90.0,
               log: Optional[Callable[[str], None]] = None) -> MatrixResult:
    """Time every (arch, shape, task, implementation, mode) on ``device``.

    Eager modes of one (arch, shape, task) are timed together in interleaved rounds; compiled
    models are timed afterwards, in groups of their own, because compiling takes long and can
    fail. ``deadline`` (a ``time.monotonic()`` value) turns groups that would start after it
    (compile groups: less than ``compile_reserve_s`` before it) into recorded skips. Rows hold
    images/s, seconds/step, GFLOP/s, the fraction of this run's matmul peak for the row's
    precision, CUDA peak memory, and ratios to each rival.
    """
    log = log or (lambda message: None)
    parsed = [Mode.parse(m) for m in (modes or DEFAULT_MODES[device.type])]
    for task in tasks:
        if task not in TASKS:
            raise BenchmarkError(f'task must be one of {TASKS}, got {task!r}.')
    if min_sample_s is None:
        min_sample_s = 0.05 if device.type == 'cuda' else 0.0
    result = MatrixResult(device=str(device))
    result.peaks = matmul_peaks(device)

    groups = []
    for arch in archs:
        impls = implementations_for(arch, rivals, onnxruntime=onnxruntime and device.type == 'cpu')
        for impl in impls:
            if impl.skip:
                result.skipped.append(dict(arch=arch, implementation=impl.name, reason=impl.skip))
        impls = [i for i in impls if not i.skip]
        for shape in shapes:
            for task in tasks:
                eager, compiled = [], []
                for impl in impls:
                    for mode in parsed:
                        if not impl.supports(mode, task):
                            continue
                        if mode.compile and impl.name != 'ours' and not compile_rivals:
                            continue
                        (compiled if mode.compile else eager).append((impl, mode))
                groups.append((arch, shape, task, eager))
                if compiled:
                    groups.append((arch, shape, task, compiled))
    # Eager groups first: the compile groups are the ones a deadline should cut, and among them
    # every arch at the first shape before any arch at the next.
    groups.sort(key=lambda g: (any(mode.compile for _, mode in g[3]),
                               list(shapes).index(g[1]) if any(m.compile for _, m in g[3]) else 0))

    for arch, (batch, height, width), task, members in groups:
        where = dict(arch=arch, batch=batch, height=height, width=width, task=task)
        # Compiling takes a minute or so: one that could not finish before the deadline is not
        # started.
        reserve = compile_reserve_s if any(mode.compile for _, mode in members) else 0.0
        if deadline is not None and time.monotonic() + reserve > deadline:
            for impl, mode in members:
                result.skipped.append(dict(where, implementation=impl.name, mode=mode.name,
                                           reason='time budget of this run spent'))
            continue
        began = time.monotonic()
        torch.manual_seed(0)
        images = torch.randn(batch, 3, height, width)
        runners, keys = {}, {}
        for impl, mode in members:
            key = f'{impl.name} [{mode.name}]'
            keys[key] = (impl, mode)
            try:
                runners[key] = StepRunner(impl.build(), mode, task, images, device)
            except Exception as error:
                result.skipped.append(dict(where, implementation=impl.name, mode=mode.name,
                                           reason=_first_line(error)))
        skipped: Dict[str, str] = {}
        samples = time_interleaved(runners, device, rounds, warmup, min_sample_s, skipped)
        for key, reason in skipped.items():
            impl, mode = keys[key]
            if mode.compile:  # a failed compile can leave dynamo's caches half-filled
                _reset_dynamo()
            result.skipped.append(dict(where, implementation=impl.name, mode=mode.name,
                                       reason=reason))
        gflop = backbone_gflop(arch, batch, (height, width)) * (3 if task == 'train' else 1)
        for key, times in samples.items():
            impl, mode = keys[key]
            seconds = statistics.median(times)
            peak = result.peaks.get(mode.precision, {}).get('tflops')
            try:
                memory = peak_step_memory_mb(runners[key], device)
            except Exception:  # memory is a side measurement: a failure leaves it blank
                memory = None
            result.rows.append(dict(
                where, implementation=impl.name, mode=mode.name, seconds=seconds,
                images_per_s=batch / seconds, rounds=times, gflops=gflop / seconds,
                peak_fraction=gflop / seconds / (peak * 1e3) if peak else None,
                peak_mb=memory))
        runners.clear()
        _release(device)
        log(f'{arch} {batch}x{height}x{width} {task}: {len(samples)} timed, '
            f'{len(members) - len(samples)} skipped, {time.monotonic() - began:.1f} s')
    _add_ratios(result.rows)
    return result


def _reset_dynamo() -> None:
    try:
        from torch import _dynamo
        _dynamo.reset()
    except Exception:  # torch without dynamo: nothing to reset
        pass


def _add_ratios(rows: List[Dict]) -> None:
    """Give each row of ours ``vs[rival] = {ratio, rival_mode}`` (ours images/s over theirs)."""
    index = {(r['arch'], r['batch'], r['height'], r['width'], r['task'], r['implementation'],
              r['mode']): r for r in rows}
    for row in rows:
        if row['implementation'] != 'ours':
            continue
        row['vs'] = {}
        mode = Mode.parse(row['mode'])
        place = (row['arch'], row['batch'], row['height'], row['width'], row['task'])
        rivals = sorted({r['implementation'] for r in rows if r['implementation'] != 'ours'})
        for rival in rivals:
            for candidate in (mode, mode.without('compile'), mode.without('deploy', 'compile')):
                theirs = index.get(place + (rival, candidate.name))
                if theirs:
                    row['vs'][rival] = dict(ratio=row['images_per_s'] / theirs['images_per_s'],
                                            rival_mode=candidate.name)
                    break


def matrix_markdown(result: MatrixResult) -> str:
    """Tables per (arch, shape, task), the matmul peaks and the skipped rows with reasons."""
    lines = ['Matrix-multiply peak measured in this run: ' + ', '.join(
        f"{p} {v['tflops']:.3g} TFLOP/s (n={v['n']})" + (' (TF32)' if v.get('tf32') else '')
        if 'tflops' in v else f"{p} not measured ({v['skip']})"
        for p, v in result.peaks.items()) + '.']
    rivals = sorted({r['implementation'] for r in result.rows if r['implementation'] != 'ours'})
    places = list(dict.fromkeys((r['arch'], r['batch'], r['height'], r['width'], r['task'])
                                for r in result.rows))
    for arch, batch, height, width, task in places:
        group = [r for r in result.rows if (r['arch'], r['batch'], r['height'], r['width'],
                                            r['task']) == (arch, batch, height, width, task)]
        lines += ['', f'**{arch}, batch {batch} at {height}x{width}, {task}**'
                  f"{' (forward + backward + SGD step)' if task == 'train' else ''}", '',
                  '| implementation | mode | images/s | ' + ''.join(f'vs {r} | ' for r in rivals) +
                  'peak MiB | % of matmul peak |',
                  '|---|---|---|' + '---|' * len(rivals) + '---|---|']
        for r in group:
            ratios = ''
            for rival in rivals:
                v = r.get('vs', {}).get(rival)
                note = '' if not v or v['rival_mode'] == r['mode'] else f" (vs {v['rival_mode']})"
                ratios += f"{v['ratio']:.2f}x{note} | " if v else '- | '
            memory = f"{r['peak_mb']:.0f}" if r.get('peak_mb') is not None else '-'
            fraction = f"{100 * r['peak_fraction']:.0f}%" if r.get('peak_fraction') else '-'
            lines.append(f"| {r['implementation']} | {r['mode']} | {r['images_per_s']:.1f} | "
                         f'{ratios}{memory} | {fraction} |')
    lines += ['', skipped_markdown(result.skipped)]
    return '\n'.join(lines)


def skipped_markdown(skipped: List[Dict]) -> str:
    if not skipped:
        return 'Skipped: nothing.'
    lines = ['Skipped (what could not run here, and why):', '',
             '| where | implementation | mode | reason |', '|---|---|---|---|']
    for s in skipped:
        where = s.get('arch', s.get('model', ''))
        if 'batch' in s:
            where += f", {s['batch']}x{s['height']}x{s['width']} {s['task']}"
        lines.append(f"| {where} | {s.get('implementation', '-')} | {s.get('mode', 'all')} | "
                     f"{s['reason'].replace('|', '/')} |")
    return '\n'.join(lines)


# ------------------------------------------------------------------------------------------------
# Families: RegNetY/RegNetX against EfficientNet and ResNet-50 at matched flops (whole classifiers)
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FamilyModel:
    """A classification network of the families comparison, at its own input resolution."""
    label: str
    family: str
    source: str       # 'ours', 'timm' or 'torchvision'
    name: str         # our preset, timm or torchvision model name
    resolution: int


#: The paper's pairs (Radosavovic et al. 2020, Table 4 and Fig. 14), EfficientNets at their own
#: resolutions; RegNetX-4.0GF against ResNet-50 as the paper's ResNet comparison.
FAMILY_MODELS = (
    FamilyModel('RegNetY-400MF', 'RegNetY', 'ours', 'regnety_400mf', 224),
    FamilyModel('EfficientNet-B0', 'EfficientNet', 'timm', 'efficientnet_b0', 224),
    FamilyModel('RegNetY-1.6GF', 'RegNetY', 'ours', 'regnety_1.6gf', 224),
    FamilyModel('EfficientNet-B2', 'EfficientNet', 'timm', 'efficientnet_b2', 260),
    FamilyModel('RegNetX-4.0GF', 'RegNetX', 'ours', 'regnetx_4.0gf', 224),
    FamilyModel('ResNet-50', 'ResNet', 'torchvision', 'resnet50', 224),
)
FAMILY_PAIRS = (('RegNetY-400MF', 'EfficientNet-B0'), ('RegNetY-1.6GF', 'EfficientNet-B2'),
                ('RegNetX-4.0GF', 'ResNet-50'))


class _Classifier(nn.Module):
    """Our backbone with pycls's head (global average pool, linear to 1000 classes)."""

    def __init__(self, arch: str):
        super().__init__()
        self.backbone = RegNetBackbone(arch, out_indices=(-1, ), zero_init_residual=False,
                                       norm_eval=False)
        self.backbone.init_weights()
        self.fc = nn.Linear(self.backbone.out_channels[-1], 1000)

    def forward(self, x):
        x = self.backbone(x)[-1].mean((2, 3))
        return (self.fc(x), )

    def switch_to_deploy(self):
        self.backbone.switch_to_deploy()
        return self


class _TupleLogits(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return (self.model(x), )


def build_family_model(model: FamilyModel) -> nn.Module:
    """The classifier of ``model``, returning a 1-tuple of logits (random weights)."""
    if model.source == 'ours':
        return _Classifier(model.name)
    if model.source == 'timm':
        import timm
        return _TupleLogits(timm.create_model(model.name))
    import torchvision.models as tvm
    return _TupleLogits(getattr(tvm, model.name)())


def forward_gflop(model: nn.Module, images: torch.Tensor) -> Optional[float]:
    """GFLOP (2 x multiply-adds) of one forward pass, counted by torch's FlopCounterMode."""
    try:
        from torch.utils.flop_counter import FlopCounterMode
    except ImportError:  # torch < 2.1
        return None
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(images)
    return counter.get_total_flops() / 1e9


def _storage(t: torch.Tensor):
    try:
        return t.untyped_storage()
    except AttributeError:  # torch < 2.0
        return t.storage()


def activation_memory_mb(model: nn.Module, images: torch.Tensor, mode: Mode = Mode()) -> float:
    """MiB of the tensors autograd keeps from a training forward pass for the backward pass
    (each storage counted once; parameters excluded): the activation memory of training."""
    storages: Dict[Tuple[int, str], int] = {}

    def pack(t):
        s = _storage(t)
        storages[(s.data_ptr(), str(t.device))] = s.nbytes()
        return t

    params = {_storage(p).data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            _autocast(images.device, mode):
        outs = model(images)
    del outs
    return sum(n for (ptr, _), n in storages.items() if ptr not in params) / 2**20


def run_families(device: torch.device, batch: int, modes: Sequence[str] = ('fp32', ),
                 resolution: Optional[int] = None, rounds: int = 5, warmup: int = 2,
                 min_sample_s: Optional[float] = None,
                 models: Sequence[FamilyModel] = FAMILY_MODELS,
                 log: Optional[Callable[[str], None]] = None) -> Dict:
    """Inference and training images/s, GFLOPs and activation memory of each family model.

    ``resolution`` overrides every model's own (for quick runs). Returns ``rows`` (one per model,
    mode and task), ``pairs`` (RegNet / rival speed ratios) and ``skipped``.
    """
    log = log or (lambda message: None)
    if min_sample_s is None:
        min_sample_s = 0.05 if device.type == 'cuda' else 0.0
    rows, skipped, info = [], [], {}
    available = []
    for m in models:
        reason = None if m.source == 'ours' else _import_reason(m.source)
        if reason:
            skipped.append(dict(model=m.label, reason=reason))
        else:
            available.append(m)
    for m in available:
        res = resolution or m.resolution
        torch.manual_seed(0)
        try:
            model = build_family_model(m).to(device).eval()
            probe = torch.randn(1, 3, res, res, device=device)
            info[m.label] = dict(gflops=forward_gflop(model, probe),
                                 params_m=sum(p.numel() for p in model.parameters()) / 1e6,
                                 resolution=res)
            model.train()
            info[m.label]['activation_mb'] = activation_memory_mb(
                model, torch.randn(batch, 3, res, res, device=device))
        except Exception as error:
            skipped.append(dict(model=m.label, reason=_first_line(error)))
        model = None
        _release(device)
    available = [m for m in available if m.label in info]
    for mode_text in modes:
        mode = Mode.parse(mode_text)
        for task in TASKS:
            began = time.monotonic()
            runners = {}
            for m in available:
                res = info[m.label]['resolution']
                torch.manual_seed(0)
                try:
                    runners[m.label] = StepRunner(build_family_model(m), mode, task,
                                                  torch.randn(batch, 3, res, res), device)
                except Exception as error:
                    skipped.append(dict(model=m.label, mode=mode.name, reason=_first_line(error)))
            failed: Dict[str, str] = {}
            samples = time_interleaved(runners, device, rounds, warmup, min_sample_s, failed)
            skipped += [dict(model=k, mode=mode.name, task=task, reason=v)
                        for k, v in failed.items()]
            for label, times in samples.items():
                m = next(x for x in available if x.label == label)
                seconds = statistics.median(times)
                try:
                    memory = peak_step_memory_mb(runners[label], device)
                except Exception:  # a side measurement: a failure leaves it blank
                    memory = None
                rows.append(dict(model=label, family=m.family, source=m.source, name=m.name,
                                 mode=mode.name, task=task, batch=batch, seconds=seconds,
                                 images_per_s=batch / seconds, rounds=times, peak_mb=memory,
                                 **info[label]))
            runners.clear()
            _release(device)
            log(f'families {mode.name} {task}: {len(samples)} timed, '
                f'{time.monotonic() - began:.1f} s')
    pairs = []
    lookup = {(r['model'], r['mode'], r['task']): r for r in rows}
    labels = {m.label for m in models}
    for regnet, rival in (p for p in FAMILY_PAIRS if set(p) <= labels):
        for mode_text in modes:
            name = Mode.parse(mode_text).name
            entry = dict(regnet=regnet, rival=rival, mode=name)
            for task in TASKS:
                a, b = lookup.get((regnet, name, task)), lookup.get((rival, name, task))
                entry[f'{task}_ratio'] = a['images_per_s'] / b['images_per_s'] if a and b else None
            a, b = info.get(regnet), info.get(rival)
            entry['gflops_ratio'] = a['gflops'] / b['gflops'] if a and b and b['gflops'] else None
            entry['activation_ratio'] = (a['activation_mb'] / b['activation_mb']
                                         if a and b and 'activation_mb' in b else None)
            pairs.append(entry)
    return dict(device=str(device), batch=batch, rows=rows, pairs=pairs, skipped=skipped)


def families_markdown(result: Dict) -> str:
    """The per-model table, the pair ratios and the skips."""
    lines = ['| model | mode | resolution | GFLOPs/image | params (M) | inference images/s | '
             'training images/s | activation MiB (batch) | peak MiB (train step) |',
             '|---|---|---|---|---|---|---|---|---|']
    models = list(dict.fromkeys((r['model'], r['mode']) for r in result['rows']))
    lookup = {(r['model'], r['mode'], r['task']): r for r in result['rows']}
    for model, mode in models:
        inf, train = lookup.get((model, mode, 'inference')), lookup.get((model, mode, 'train'))
        any_row = inf or train
        gflops = f"{any_row['gflops']:.2f}" if any_row.get('gflops') else '-'
        peak = f"{train['peak_mb']:.0f}" if train and train.get('peak_mb') is not None else '-'
        lines.append(f"| {model} | {mode} | {any_row['resolution']} | {gflops} | "
                     f"{any_row['params_m']:.1f} | {inf['images_per_s']:.1f} | "
                     f"{train['images_per_s']:.1f} | {any_row['activation_mb']:.0f} | {peak} |"
                     if inf and train else f'| {model} | {mode} | incomplete | | | | | | |')
    lines += ['', '| RegNet vs rival | mode | flops ratio | inference speed ratio | '
              'training speed ratio | activation memory ratio |', '|---|---|---|---|---|---|']

    def fmt(v):
        return f'{v:.2f}x' if v is not None else '-'
    for p in result['pairs']:
        lines.append(f"| {p['regnet']} vs {p['rival']} | {p['mode']} | {fmt(p['gflops_ratio'])} | "
                     f"{fmt(p['inference_ratio'])} | {fmt(p['train_ratio'])} | "
                     f"{fmt(p['activation_ratio'])} |")
    lines += ['', skipped_markdown(result['skipped'])]
    return '\n'.join(lines)


def log_log_axes(ax) -> None:
    """Log scales on both axes of a matplotlib ``ax``, ticked at 1, 2, 5 x 10^k, plain numbers."""
    import matplotlib.ticker
    ax.set_xscale('log')
    ax.set_yscale('log')
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_locator(matplotlib.ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        axis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def plot_families(result: Dict, path: str, title: str) -> None:
    """One picture: images/s against GFLOPs per image, inference and training, log-log."""
    import io

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    from .atomic import replace_bytes
    colours = {'RegNetY': 'tab:blue', 'RegNetX': 'tab:cyan', 'EfficientNet': 'tab:red',
               'ResNet': 'tab:green'}
    modes = list(dict.fromkeys(r['mode'] for r in result['rows']))
    fig, axes = plt.subplots(len(modes) or 1, 2, figsize=(10, 4 * max(len(modes), 1)),
                             squeeze=False)
    for row_axes, mode in zip(axes, modes):
        for ax, task in zip(row_axes, TASKS):
            for r in (r for r in result['rows'] if r['mode'] == mode and r['task'] == task):
                ax.scatter(r['gflops'], r['images_per_s'], color=colours.get(r['family'], 'k'),
                           s=40, label=r['family'])
                # RegNet labels above their point, rivals' below: matched pairs sit close.
                below = not r['family'].startswith('RegNet')
                ax.annotate(r['model'], (r['gflops'], r['images_per_s']), fontsize=7,
                            xytext=(4, -10 if below else 4), textcoords='offset points')
            log_log_axes(ax)
            ax.set_xlabel('GFLOPs per image (2 x multiply-adds)')
            ax.set_ylabel(f'{task} images/s')
            ax.set_title(f'{task}, {mode} (higher is faster)', fontsize=9)
            handles, labels = ax.get_legend_handles_labels()
            unique = dict(zip(labels, handles))
            ax.legend(unique.values(), unique.keys(), fontsize=7)
            ax.grid(True, which='both', alpha=0.3)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format='png', dpi=110)
    plt.close(fig)
    replace_bytes(path, buffer.getvalue())
