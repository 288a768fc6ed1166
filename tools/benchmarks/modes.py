"""A mode (how a model runs) and :class:`StepRunner`, the one step every benchmark times."""
import contextlib
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn as nn

from regnet_backbone.benchmark import BenchmarkError

PRECISIONS = ('fp32', 'amp_fp16', 'amp_bf16')
MODE_FLAGS = ('channels_last', 'deploy', 'compile')
TASKS = ('inference', 'train')


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


def autocast(device: torch.device, mode: Mode):
    """``torch.autocast`` in the mode's half type, or a null context for fp32."""
    if mode.dtype is None:
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

    inference: a forward pass without autograd. train: forward, backward of the sum of the
    outputs' means, and (``sgd``, the default) an SGD step with momentum 0.9, every BN updating
    its statistics; AMP fp16 on CUDA uses a GradScaler. ``sgd=False`` times forward + backward
    alone (the CPU report's training row, which compares the backbones' own work).
    """

    def __init__(self, model: nn.Module, mode: Mode, task: str, images: torch.Tensor,
                 device: torch.device, sgd: bool = True):
        if task not in TASKS:
            raise BenchmarkError(f'task must be one of {TASKS}, got {task!r}.')
        self.mode, self.task, self.device = mode, task, device
        model = model.to(device)
        if mode.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if mode.deploy:
            model.switch_to_deploy()
        model.train(task == 'train')  # mmdet's ResNet.train() returns None: do not chain
        self.model = model
        memory_format = torch.channels_last if mode.channels_last else torch.contiguous_format
        self.images = images.to(device).contiguous(memory_format=memory_format)
        self.forward = torch.compile(model) if mode.compile else model
        self.optimizer = self.scaler = None
        if task == 'train' and sgd:
            params = [p for p in model.parameters() if p.requires_grad]
            # A small lr: weights barely move, so every round times the same network.
            self.optimizer = torch.optim.SGD(params, lr=1e-4, momentum=0.9)
            self.scaler = _grad_scaler(device, mode)

    def __call__(self) -> None:
        if self.task == 'inference':
            with torch.no_grad(), autocast(self.device, self.mode):
                self.forward(self.images)
            return
        with autocast(self.device, self.mode):
            outs = self.forward(self.images)
            loss = sum(o.float().mean() for o in outs)
        if self.optimizer is None:
            loss.backward()
            self.model.zero_grad(set_to_none=True)
        elif self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            self.optimizer.zero_grad(set_to_none=True)
        else:
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
