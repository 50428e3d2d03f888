#!/usr/bin/env python3
"""CNN-family ONNX fixtures from both PyTorch exporters.

For every model and exporter variant this writes ``NAME.EXPORTER.onnx``, and per model
``NAME.input.npy`` (float32, NCHW) and ``NAME.output.npy`` (PyTorch's eval-mode logits of the
same weights, float32), plus ``manifest.json`` describing each file.

Sizes:

* ``--small [DIR]`` (default DIR: ``testdata/families`` next to this script): one reduced
  representative per family, built from the family's torchvision classes and blocks with
  smaller configurations (fewer classes, small inputs, narrow and shallow), meant to be
  committed.
* ``--full DIR``: the torchvision architectures at their standard sizes (224x224, 299x299 for
  Inception-v3 and Xception, 1000 classes), on demand. ``--one-per-family`` picks the
  ``ONE_PER_FAMILY`` models (1.8 GB per exporter; what ``compiler/tests/families.rs``'s
  ``with_full_models`` tests and the benchmark's ``--families DIR`` expect); ``--batch 1`` keeps
  the reference files small.

Weights are random but realistic, in this order:

1. each module's default initialisation (LeNet-5: Glorot with its activation's gain);
2. norm-layer affine parameters and ConvNeXt's layer scales get random values, and every conv
   or linear bias a random value of a tenth of the spread of that layer's output (a trained
   network has none of them at a neutral value, a neutral value hides a mistake in folding
   them, and torchvision's default biases drown the signal of the networks without BatchNorm);
3. BatchNorm statistics are calibrated on random batches in ``train()`` mode with cumulative
   averages (``momentum=None``), so BatchNorm is never an identity;
4. the last layer is scaled so the logits vary over inputs with a standard deviation of about
   2, and its bias centres them;
5. every floating parameter and buffer is rounded to a power-of-two grid of 2^-7 of the
   tensor's largest magnitude (rounded values are exact in float32 and the files compress);
   nothing is recomputed after that.

The reference output is computed with the rounded model in ``eval()`` mode. Everything is
seeded from the model's name, so a model is reproducible on its own. The input is standard
normal, clamped to [-4, 4] and rounded to multiples of 1/64.

Exporters (the ``EXPORTER`` in the file name):

* ``dynamo``: ``torch.onnx.export(..., dynamo=True)`` at its default opset, one self-contained
  file (``external_data=False``);
* ``ts17``: the TorchScript exporter, ``dynamo=False, opset_version=17``;
* ``ts9``: the TorchScript exporter at ``opset_version=9``, where it can still write the model.

The batch dimension is symbolic (``batch``) where the exporter accepts it, fixed otherwise.
Each written file is run with onnxruntime (CPU, one thread) on the same input; the manifest
records the error against PyTorch, the largest logit, PyTorch's own float32-vs-float64
difference, the opset and the ONNX op types used. With ``--full``, the same model and input run
in float64 give ``NAME.output_fp64.npy`` (rounded to float32: the logits float32 approximates;
deep random-weight nets' float32 logits, PyTorch's included, are up to ~0.7e-4 × max|logit| from
them) and the manifest records onnxruntime's distance from them; ``--references-only`` adds these to files already
written, checking that the rebuilt model reproduces the stored input and logits.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib
import io
import json
import math
import sys
import time
import traceback
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from torch import nn

# `torchvision.models.alexnet` and others are also builder functions: import the modules by path.
tv_alexnet = importlib.import_module("torchvision.models.alexnet")
tv_convnext = importlib.import_module("torchvision.models.convnext")
tv_densenet = importlib.import_module("torchvision.models.densenet")
tv_efficientnet = importlib.import_module("torchvision.models.efficientnet")
tv_googlenet = importlib.import_module("torchvision.models.googlenet")
tv_inception = importlib.import_module("torchvision.models.inception")
tv_mnasnet = importlib.import_module("torchvision.models.mnasnet")
tv_mobilenetv2 = importlib.import_module("torchvision.models.mobilenetv2")
tv_mobilenetv3 = importlib.import_module("torchvision.models.mobilenetv3")
tv_regnet = importlib.import_module("torchvision.models.regnet")
tv_resnet = importlib.import_module("torchvision.models.resnet")
tv_shufflenetv2 = importlib.import_module("torchvision.models.shufflenetv2")
tv_squeezenet = importlib.import_module("torchvision.models.squeezenet")
tv_vgg = importlib.import_module("torchvision.models.vgg")

EXPORTERS = ("dynamo", "ts17", "ts9")
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
BATCH_NAME = "batch"
# Node metadata of the dynamo exporter holding the Python stack trace of the node's origin.
STACK_TRACE_KEY = "pkg.torch.onnx.stack_trace"
# Values per sign of the rounding grid: the grid step is 2^(ceil(log2(max|w|)) - GRID_BITS).
GRID_BITS = 7
# Inputs are rounded to multiples of this step.
INPUT_STEP = 1.0 / 64.0
# Standard deviation of the logits over random inputs.
LOGIT_STD = 2.0
# Standard deviation of a bias relative to that of its layer's output.
BIAS_SPREAD = 0.1
# onnxruntime's error, relative to the largest logit (at least 1), above which a file is a mismatch.
MISMATCH_REL = 1e-3
# ONNX protobufs cannot hold more than 2 GiB; bigger models keep their weights outside.
PROTO_LIMIT = 2_000_000_000
# One standard-size model per family (with both ResNet block kinds), none of the huge ones
# (VGG-16/19, ResNet-152, RegNet 16gf+, EfficientNet B5+, ConvNeXt base/large): the set that
# `with_full_models` in compiler/tests/families.rs lists.
ONE_PER_FAMILY = (
    "lenet5_tanh",
    "alexnet",
    "vgg11_bn",
    "googlenet",
    "inception_v3",
    "resnet18",
    "resnet50",
    "wide_resnet50_2",
    "resnext50_32x4d",
    "squeezenet1_1",
    "densenet121",
    "shufflenet_v2_x1_0",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "mnasnet1_0",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "regnet_x_400mf",
    "regnet_y_400mf",
    "convnext_tiny",
    "xception",
)


@dataclass
class Spec:
    """One model: how to build it and what it eats."""

    name: str
    family: str
    build: Callable[[], nn.Module]
    input_hw: tuple[int, int]
    in_channels: int = 3
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# Models defined here


class LeNet5(nn.Module):
    """LeCun et al.'s LeNet-5: 1x32x32 input, average pooling, a squashing activation."""

    def __init__(self, activation: Callable[[], nn.Module] = nn.Tanh, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 6, 5),
            activation(),
            nn.AvgPool2d(2, 2),
            nn.Conv2d(6, 16, 5),
            activation(),
            nn.AvgPool2d(2, 2),
            nn.Conv2d(16, 120, 5),
            activation(),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(120, 84), activation(), nn.Linear(84, num_classes))
        # Glorot initialisation with the activation's gain (4 for the sigmoid, whose slope at 0
        # is 1/4): with PyTorch's default, the signal fades within a few sigmoid layers.
        gain = 4.0 if activation is nn.Sigmoid else nn.init.calculate_gain("tanh")
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight, gain=gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class SeparableConv2d(nn.Sequential):
    """Depthwise 3x3 then pointwise 1x1, no bias (a BatchNorm follows)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cin, 3, padding=1, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
        )


class XceptionBlock(nn.Module):
    """Chollet's Xception block: `reps` x (ReLU, separable conv, BN), optionally a stride-2
    max pool, plus a residual: identity, or a strided 1x1 conv + BN where the shape changes."""

    def __init__(self, cin: int, cout: int, reps: int, stride: int, start_with_relu: bool, grow_first: bool) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        for i in range(reps):
            # Grow the width at the first conv, or (exit flow) at the last.
            target = cout if (grow_first and i == 0) or (not grow_first and i == reps - 1) else c
            if i > 0 or start_with_relu:
                layers.append(nn.ReLU(inplace=False))
            layers += [SeparableConv2d(c, target), nn.BatchNorm2d(target)]
            c = target
        if stride != 1:
            layers.append(nn.MaxPool2d(3, stride, padding=1))
        self.body = nn.Sequential(*layers)
        if cin != cout or stride != 1:
            self.skip: nn.Module = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        else:
            self.skip = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.skip(x)


class Xception(nn.Module):
    """Xception's entry, middle and exit flows with configurable widths and middle depth."""

    def __init__(
        self,
        stem: tuple[int, int] = (32, 64),
        entry: tuple[int, int, int] = (128, 256, 728),
        middle_blocks: int = 8,
        exit_widths: tuple[int, int, int] = (1024, 1536, 2048),
        num_classes: int = 1000,
    ) -> None:
        super().__init__()
        s0, s1 = stem
        self.stem = nn.Sequential(
            nn.Conv2d(3, s0, 3, stride=2, bias=False),
            nn.BatchNorm2d(s0),
            nn.ReLU(inplace=True),
            nn.Conv2d(s0, s1, 3, bias=False),
            nn.BatchNorm2d(s1),
            nn.ReLU(inplace=True),
        )
        e0, e1, e2 = entry
        self.entry = nn.Sequential(
            XceptionBlock(s1, e0, 2, 2, start_with_relu=False, grow_first=True),
            XceptionBlock(e0, e1, 2, 2, start_with_relu=True, grow_first=True),
            XceptionBlock(e1, e2, 2, 2, start_with_relu=True, grow_first=True),
        )
        self.middle = nn.Sequential(
            *[XceptionBlock(e2, e2, 3, 1, start_with_relu=True, grow_first=True) for _ in range(middle_blocks)]
        )
        x0, x1, x2 = exit_widths
        self.exit = nn.Sequential(
            XceptionBlock(e2, x0, 2, 2, start_with_relu=True, grow_first=False),
            SeparableConv2d(x0, x1),
            nn.BatchNorm2d(x1),
            nn.ReLU(inplace=True),
            SeparableConv2d(x1, x2),
            nn.BatchNorm2d(x2),
            nn.ReLU(inplace=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(x2, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.exit(self.middle(self.entry(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


# ---------------------------------------------------------------------------------------------
# Reduced torchvision families: the family's own classes and blocks, smaller configurations


class SmallAlexNet(tv_alexnet.AlexNet):
    """AlexNet's layer sequence (11x11/4 stem, three max pools, adaptive pool, three linears)
    with narrow channels; `forward` is torchvision's."""

    def __init__(self, widths=(16, 32, 48, 32, 32), pool: int = 3, hidden: int = 64, num_classes: int = 10) -> None:
        nn.Module.__init__(self)
        a, b, c, d, e = widths
        self.features = nn.Sequential(
            nn.Conv2d(3, a, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(a, b, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(b, c, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(c, d, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(d, e, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((pool, pool))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(e * pool * pool, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(hidden, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, num_classes),
        )


def small_vgg(batch_norm: bool) -> nn.Module:
    """VGG-11's configuration at 1/8 width with a 2x2 adaptive pool and a narrow classifier."""
    cfg = [8, "M", 16, "M", 32, 32, "M", 64, 64, "M", 64, 64, "M"]
    model = tv_vgg.VGG(tv_vgg.make_layers(cfg, batch_norm=batch_norm), num_classes=10)
    model.avgpool = nn.AdaptiveAvgPool2d((2, 2))
    model.classifier = nn.Sequential(
        nn.Linear(64 * 2 * 2, 64),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(64, 64),
        nn.ReLU(True),
        nn.Dropout(),
        nn.Linear(64, 10),
    )
    for m in model.classifier:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            nn.init.constant_(m.bias, 0)
    return model


def _scale(c: int, div: int) -> int:
    return max(1, c // div)


class SmallGoogLeNet(tv_googlenet.GoogLeNet):
    """GoogLeNet's nine Inception modules (torchvision's `Inception` and `BasicConv2d`) with
    every width divided by `div`; `forward` is torchvision's."""

    def __init__(self, div: int = 8, num_classes: int = 10) -> None:
        nn.Module.__init__(self)
        s = partial(_scale, div=div)
        conv = tv_googlenet.BasicConv2d
        self.aux_logits = False
        self.transform_input = False
        self.conv1 = conv(3, s(64), kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.conv2 = conv(s(64), s(64), kernel_size=1)
        self.conv3 = conv(s(64), s(192), kernel_size=3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        cin = s(192)

        def block(*widths: int) -> nn.Module:
            nonlocal cin
            w = [s(c) for c in widths]
            module = tv_googlenet.Inception(cin, *w)
            cin = w[0] + w[2] + w[4] + w[5]
            return module

        self.inception3a = block(64, 96, 128, 16, 32, 32)
        self.inception3b = block(128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = block(192, 96, 208, 16, 48, 64)
        self.inception4b = block(160, 112, 224, 24, 64, 64)
        self.inception4c = block(128, 128, 256, 24, 64, 64)
        self.inception4d = block(112, 144, 288, 32, 64, 64)
        self.inception4e = block(256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.inception5a = block(256, 160, 320, 32, 128, 128)
        self.inception5b = block(384, 192, 384, 48, 128, 128)
        self.aux1 = None
        self.aux2 = None
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(cin, num_classes)
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                torch.nn.init.trunc_normal_(m.weight, mean=0.0, std=0.01, a=-2, b=2)


def small_inception_v3(div: int = 8, num_classes: int = 10) -> nn.Module:
    """Inception-v3 with every block's widths divided by `div`: torchvision's blocks, given a
    conv factory that scales channel counts (every Inception-v3 width is a multiple of 16)."""

    def conv(cin: int, cout: int, **kwargs) -> nn.Module:
        return tv_inception.BasicConv2d(cin if cin == 3 else cin // div, cout // div, **kwargs)

    blocks = [
        conv,
        partial(tv_inception.InceptionA, conv_block=conv),
        partial(tv_inception.InceptionB, conv_block=conv),
        partial(tv_inception.InceptionC, conv_block=conv),
        partial(tv_inception.InceptionD, conv_block=conv),
        partial(tv_inception.InceptionE, conv_block=conv),
        tv_inception.InceptionAux,
    ]
    model = tv_inception.Inception3(
        num_classes=num_classes, aux_logits=False, transform_input=False, inception_blocks=blocks, init_weights=True
    )
    model.fc = nn.Linear(2048 // div, num_classes)
    nn.init.trunc_normal_(model.fc.weight, mean=0.0, std=0.1, a=-2, b=2)
    return model


class SmallResNet(tv_resnet.ResNet):
    """torchvision's ResNet with configurable stage widths (torchvision fixes 64..512); the
    blocks, `_make_layer` and `forward` are torchvision's."""

    def __init__(
        self,
        block,
        layers: list[int],
        widths=(8, 16, 32, 64),
        num_classes: int = 10,
        groups: int = 1,
        width_per_group: int = 64,
    ) -> None:
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes = widths[0]
        self.dilation = 1
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = nn.Conv2d(3, self.inplanes, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, widths[0], layers[0])
        self.layer2 = self._make_layer(block, widths[1], layers[1], stride=2)
        self.layer3 = self._make_layer(block, widths[2], layers[2], stride=2)
        self.layer4 = self._make_layer(block, widths[3], layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[3] * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


class SmallSqueezeNet(tv_squeezenet.SqueezeNet):
    """SqueezeNet 1.0 / 1.1 (torchvision's `Fire`) with widths divided by `div`; `forward` is
    torchvision's."""

    def __init__(self, version: str, div: int = 4, num_classes: int = 10) -> None:
        nn.Module.__init__(self)
        self.num_classes = num_classes
        s = partial(_scale, div=div)

        def fire(cin: int, squeeze: int, e1: int, e3: int) -> nn.Module:
            return tv_squeezenet.Fire(s(cin), s(squeeze), s(e1), s(e3))

        pool = partial(nn.MaxPool2d, kernel_size=3, stride=2, ceil_mode=True)
        if version == "1_0":
            self.features = nn.Sequential(
                nn.Conv2d(3, s(96), kernel_size=7, stride=2),
                nn.ReLU(inplace=True),
                pool(),
                fire(96, 16, 64, 64),
                fire(128, 16, 64, 64),
                fire(128, 32, 128, 128),
                pool(),
                fire(256, 32, 128, 128),
                fire(256, 48, 192, 192),
                fire(384, 48, 192, 192),
                fire(384, 64, 256, 256),
                pool(),
                fire(512, 64, 256, 256),
            )
        else:
            self.features = nn.Sequential(
                nn.Conv2d(3, s(64), kernel_size=3, stride=2),
                nn.ReLU(inplace=True),
                pool(),
                fire(64, 16, 64, 64),
                fire(128, 16, 64, 64),
                pool(),
                fire(128, 32, 128, 128),
                fire(256, 32, 128, 128),
                pool(),
                fire(256, 48, 192, 192),
                fire(384, 48, 192, 192),
                fire(384, 64, 256, 256),
                fire(512, 64, 256, 256),
            )
        final_conv = nn.Conv2d(s(512), num_classes, kernel_size=1)
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5), final_conv, nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d((1, 1))
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if m is final_conv:
                    nn.init.normal_(m.weight, mean=0.0, std=0.01)
                else:
                    nn.init.kaiming_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.constant_(m.bias, 0)


def small_mobilenet_v2() -> nn.Module:
    """MobileNetV2 at width 0.25 with one block per stage (two where it repeats a stride-1
    residual)."""
    # t (expansion), c (channels), n (repeats), s (stride), as in torchvision.
    setting = [
        [1, 16, 1, 1],
        [6, 24, 2, 2],
        [6, 32, 2, 2],
        [6, 64, 1, 2],
        [6, 96, 2, 1],
        [6, 160, 1, 2],
        [6, 320, 1, 1],
    ]
    return tv_mobilenetv2.MobileNetV2(num_classes=10, width_mult=0.25, inverted_residual_setting=setting)


def small_mobilenet_v3() -> nn.Module:
    """MobileNetV3-Small's configuration at width 0.5 with the reduced tail."""
    setting, last = tv_mobilenetv3._mobilenet_v3_conf("mobilenet_v3_small", width_mult=0.5, reduced_tail=True)
    return tv_mobilenetv3.MobileNetV3(setting, last, num_classes=10)


class SmallMNASNet(tv_mnasnet.MNASNet):
    """MNASNet's stem and inverted-residual stacks (torchvision's `_stack`) at width `alpha`,
    with configurable repeats and head width; `forward` is torchvision's."""

    def __init__(self, alpha: float = 0.5, repeats=(1, 2, 1, 1, 2, 1), head: int = 128, num_classes: int = 10) -> None:
        nn.Module.__init__(self)
        self.alpha = alpha
        self.num_classes = num_classes
        d = tv_mnasnet._get_depths(alpha)
        m = tv_mnasnet._BN_MOMENTUM
        r = repeats
        self.layers = nn.Sequential(
            nn.Conv2d(3, d[0], 3, padding=1, stride=2, bias=False),
            nn.BatchNorm2d(d[0], momentum=m),
            nn.ReLU(inplace=True),
            nn.Conv2d(d[0], d[0], 3, padding=1, stride=1, groups=d[0], bias=False),
            nn.BatchNorm2d(d[0], momentum=m),
            nn.ReLU(inplace=True),
            nn.Conv2d(d[0], d[1], 1, padding=0, stride=1, bias=False),
            nn.BatchNorm2d(d[1], momentum=m),
            tv_mnasnet._stack(d[1], d[2], 3, 2, 3, r[0], m),
            tv_mnasnet._stack(d[2], d[3], 5, 2, 3, r[1], m),
            tv_mnasnet._stack(d[3], d[4], 5, 2, 6, r[2], m),
            tv_mnasnet._stack(d[4], d[5], 3, 1, 6, r[3], m),
            tv_mnasnet._stack(d[5], d[6], 5, 2, 6, r[4], m),
            tv_mnasnet._stack(d[6], d[7], 3, 1, 6, r[5], m),
            nn.Conv2d(d[7], head, 1, padding=0, stride=1, bias=False),
            nn.BatchNorm2d(head, momentum=m),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Sequential(nn.Dropout(p=0.2, inplace=True), nn.Linear(head, num_classes))
        for mod in self.modules():
            if isinstance(mod, nn.Conv2d):
                nn.init.kaiming_normal_(mod.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(mod, nn.Linear):
                nn.init.kaiming_uniform_(mod.weight, mode="fan_out", nonlinearity="sigmoid")
                nn.init.zeros_(mod.bias)


def small_efficientnet_v1() -> nn.Module:
    """EfficientNet-B0's stages (MBConv with squeeze-excitation and SiLU) at width 0.25, depth 0.25."""
    setting, last = tv_efficientnet._efficientnet_conf("efficientnet_b0", width_mult=0.25, depth_mult=0.25)
    return tv_efficientnet.EfficientNet(setting, dropout=0.2, num_classes=10, last_channel=last)


def small_efficientnet_v2() -> nn.Module:
    """EfficientNetV2-S's stage kinds (three fused-MBConv stages, then MBConv with SE) at about
    1/3 width with one or two blocks per stage."""
    fused, mb = tv_efficientnet.FusedMBConvConfig, tv_efficientnet.MBConvConfig
    setting = [
        fused(1, 3, 1, 8, 8, 1),
        fused(4, 3, 2, 8, 16, 2),
        fused(4, 3, 2, 16, 24, 1),
        mb(4, 3, 2, 24, 32, 2),
        mb(6, 3, 1, 32, 48, 1),
        mb(6, 3, 2, 48, 64, 1),
    ]
    return tv_efficientnet.EfficientNet(
        setting, dropout=0.2, num_classes=10, last_channel=256, norm_layer=partial(nn.BatchNorm2d, eps=1e-03)
    )


def small_regnet(se: bool) -> nn.Module:
    """A RegNet design (X: grouped bottlenecks; Y: with squeeze-excitation) from torchvision's
    width rule at a small w_0 and depth."""
    params = tv_regnet.BlockParams.from_init_params(
        depth=6, w_0=16, w_a=8.0, w_m=2.0, group_width=8, se_ratio=0.25 if se else None
    )
    return tv_regnet.RegNet(params, num_classes=10, stem_width=16)


def small_convnext() -> nn.Module:
    """ConvNeXt's four stages (7x7 depthwise, LayerNorm, inverted MLP, layer scale) at 1/6 width,
    one block per stage except two in the third."""
    cfg = tv_convnext.CNBlockConfig
    setting = [cfg(16, 32, 1), cfg(32, 64, 1), cfg(64, 128, 2), cfg(128, None, 1)]
    return tv_convnext.ConvNeXt(setting, num_classes=10)


def small_specs() -> list[Spec]:
    b, bb = tv_resnet.BasicBlock, tv_resnet.Bottleneck
    return [
        Spec("lenet5_tanh", "lenet", lambda: LeNet5(nn.Tanh), (32, 32), in_channels=1),
        Spec("lenet5_sigmoid", "lenet", lambda: LeNet5(nn.Sigmoid), (32, 32), in_channels=1),
        Spec("alexnet_mini", "alexnet", SmallAlexNet, (128, 128)),
        Spec("vgg11_mini", "vgg", lambda: small_vgg(False), (64, 64)),
        Spec("vgg11_bn_mini", "vgg", lambda: small_vgg(True), (64, 64)),
        Spec("googlenet_mini", "googlenet", SmallGoogLeNet, (64, 64)),
        Spec("inception_v3_mini", "inception_v3", small_inception_v3, (107, 107)),
        Spec("resnet_basic_mini", "resnet", lambda: SmallResNet(b, [2, 1, 1, 1]), (64, 64)),
        Spec("resnet_bottleneck_mini", "resnet", lambda: SmallResNet(bb, [2, 1, 1, 1]), (64, 64)),
        Spec("wide_resnet_mini", "wide_resnet", lambda: SmallResNet(bb, [2, 1, 1, 1], width_per_group=128), (64, 64)),
        Spec(
            "resnext_mini",
            "resnext",
            lambda: SmallResNet(bb, [2, 1, 1, 1], groups=8, width_per_group=16),
            (64, 64),
        ),
        Spec("squeezenet1_0_mini", "squeezenet", lambda: SmallSqueezeNet("1_0"), (64, 64)),
        Spec("squeezenet1_1_mini", "squeezenet", lambda: SmallSqueezeNet("1_1"), (64, 64)),
        Spec(
            "densenet_mini",
            "densenet",
            lambda: tv_densenet.DenseNet(
                growth_rate=8, block_config=(2, 2, 2, 2), num_init_features=16, num_classes=10
            ),
            (64, 64),
        ),
        Spec(
            "shufflenet_v2_mini",
            "shufflenet_v2",
            lambda: tv_shufflenetv2.ShuffleNetV2(
                stages_repeats=[2, 2, 2], stages_out_channels=[8, 16, 32, 64, 128], num_classes=10
            ),
            (64, 64),
        ),
        Spec("mobilenet_v2_mini", "mobilenet_v2", small_mobilenet_v2, (64, 64)),
        Spec("mobilenet_v3_mini", "mobilenet_v3", small_mobilenet_v3, (64, 64)),
        Spec("mnasnet_mini", "mnasnet", SmallMNASNet, (64, 64)),
        Spec("efficientnet_v1_mini", "efficientnet", small_efficientnet_v1, (64, 64)),
        Spec("efficientnet_v2_mini", "efficientnet", small_efficientnet_v2, (64, 64)),
        Spec("regnet_x_mini", "regnet", lambda: small_regnet(False), (64, 64)),
        Spec("regnet_y_mini", "regnet", lambda: small_regnet(True), (64, 64)),
        Spec("convnext_mini", "convnext", small_convnext, (64, 64)),
        Spec(
            "xception_mini",
            "xception",
            lambda: Xception(
                stem=(8, 16), entry=(32, 48, 64), middle_blocks=2, exit_widths=(96, 128, 192), num_classes=10
            ),
            (96, 96),
        ),
    ]


def _tv(name: str, **kwargs) -> Callable[[], nn.Module]:
    return lambda: torchvision.models.get_model(name, weights=None, **kwargs)


def full_specs() -> list[Spec]:
    """The standard architectures: torchvision's constructors, 1000 classes."""
    fam = {
        "alexnet": ["alexnet"],
        "vgg": [f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")],
        "resnet": ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
        "wide_resnet": ["wide_resnet50_2", "wide_resnet101_2"],
        "resnext": ["resnext50_32x4d", "resnext101_32x8d", "resnext101_64x4d"],
        "squeezenet": ["squeezenet1_0", "squeezenet1_1"],
        "densenet": ["densenet121", "densenet161", "densenet169", "densenet201"],
        "shufflenet_v2": [f"shufflenet_v2_x{w}" for w in ("0_5", "1_0", "1_5", "2_0")],
        "mobilenet_v2": ["mobilenet_v2"],
        "mobilenet_v3": ["mobilenet_v3_small", "mobilenet_v3_large"],
        "mnasnet": ["mnasnet0_5", "mnasnet0_75", "mnasnet1_0", "mnasnet1_3"],
        "efficientnet": [f"efficientnet_b{i}" for i in range(8)] + [f"efficientnet_v2_{s}" for s in "sml"],
        "regnet": [
            f"regnet_{k}_{s}"
            for k, sizes in (
                ("x", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf")),
                ("y", ("400mf", "800mf", "1_6gf", "3_2gf", "8gf", "16gf", "32gf", "128gf")),
            )
            for s in sizes
        ],
        "convnext": [f"convnext_{s}" for s in ("tiny", "small", "base", "large")],
    }
    specs = [
        Spec("lenet5_tanh", "lenet", lambda: LeNet5(nn.Tanh), (32, 32), in_channels=1),
        Spec("lenet5_sigmoid", "lenet", lambda: LeNet5(nn.Sigmoid), (32, 32), in_channels=1),
        Spec(
            "googlenet",
            "googlenet",
            _tv("googlenet", aux_logits=False, transform_input=False, init_weights=True),
            (224, 224),
        ),
        Spec(
            "inception_v3",
            "inception_v3",
            _tv("inception_v3", aux_logits=False, transform_input=False, init_weights=True),
            (299, 299),
        ),
        Spec("xception", "xception", Xception, (299, 299)),
    ]
    for family, names in fam.items():
        specs += [Spec(n, family, _tv(n), (224, 224)) for n in names]
    return specs


# ---------------------------------------------------------------------------------------------
# Weights


def seed_of(name: str) -> int:
    return zlib.crc32(name.encode())


NORMS = (nn.BatchNorm2d, nn.LayerNorm, nn.GroupNorm)


@torch.no_grad()
def perturb(model: nn.Module, shape: tuple[int, ...], gen: torch.Generator) -> None:
    """Move the parameters that default initialisation leaves at a neutral value off it: norm
    affine parameters, ConvNeXt layer scales, and biases. Each conv or linear bias becomes random
    with a tenth of the spread of the layer's output on a random batch (BatchNorm on batch
    statistics, dropout off), so that no bias drowns the input's signal (torchvision's default
    biases and 0.01-std classifiers do, in the networks without BatchNorm)."""
    for m in model.modules():
        if isinstance(m, NORMS) and getattr(m, "weight", None) is not None:
            m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
            m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=gen))
        elif isinstance(m, tv_convnext.CNBlock):
            m.layer_scale.copy_(0.1 + 0.4 * torch.rand(m.layer_scale.shape, generator=gen))

    def rebias(m: nn.Module, _inputs, out: torch.Tensor) -> torch.Tensor:
        view = (1, -1, 1, 1) if isinstance(m, nn.Conv2d) else (-1,)
        pre = out - m.bias.view(view)
        m.bias.copy_(BIAS_SPREAD * float(pre.std()) * torch.randn(m.bias.shape, generator=gen))
        return pre + m.bias.view(view)

    hooks = [
        m.register_forward_hook(rebias)
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and m.bias is not None
    ]
    if hooks:
        model.eval()
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.train()
        model(torch.randn(shape, generator=gen))
        model.eval()
    for h in hooks:
        h.remove()


@torch.no_grad()
def calibrate(model: nn.Module, shape: tuple[int, ...], batches: int, gen: torch.Generator) -> None:
    """Cumulative BatchNorm statistics over random batches, in train() mode."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    for _ in range(batches):
        model(torch.randn(shape, generator=gen))
    model.eval()


@torch.no_grad()
def scale_logits(model: nn.Module, shape: tuple[int, ...], gen: torch.Generator) -> None:
    """Scale the last conv or linear layer so that the logits vary over random inputs with a
    standard deviation of LOGIT_STD, then shift its bias so that each logit's mean over them is
    zero (untrained classifiers give logits of a few hundredths on a per-class offset). Every
    family's head is linear in its last layer except SqueezeNet's (conv, ReLU, pooling: only
    positively homogeneous, and its logits are never negative); the scaling is checked and
    undone where it does not hold."""
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    if not layers:
        return
    last = layers[-1]
    params = [t for t in (last.weight, last.bias) if t is not None]
    x = torch.randn(shape, generator=gen)
    y0 = model(x)
    spread = float(y0.std(dim=0).mean())
    if not (spread > 0 and math.isfinite(spread)):
        return
    k = LOGIT_STD / spread
    saved = [t.clone() for t in params]
    for t in params:
        t.mul_(k)
    y1 = model(x)
    if not torch.allclose(y1, k * y0, rtol=1e-3, atol=1e-4 * LOGIT_STD):
        for t, old in zip(params, saved):
            t.copy_(old)
        return
    if last.bias is None:
        return
    if isinstance(last, nn.Linear):
        shift = y1.mean(dim=0)
        last.bias.sub_(shift)
        if not torch.allclose(model(x), y1 - shift, rtol=1e-3, atol=1e-4 * LOGIT_STD):
            last.bias.add_(shift)
    else:
        # A conv head (then ReLU and pooling): lower the offsets to about 2 * LOGIT_STD, where
        # the ReLU still passes most values.
        last.bias.sub_(y1.mean(dim=0).flatten() - 2 * LOGIT_STD)


def round_grid(t: torch.Tensor, positive: bool = False) -> torch.Tensor:
    """Round to the power-of-two grid 2^(ceil(log2(max|t|)) - GRID_BITS); exact in float32."""
    peak = float(t.abs().max()) if t.numel() else 0.0
    if peak == 0.0 or not math.isfinite(peak):
        return t
    step = 2.0 ** (math.ceil(math.log2(peak)) - GRID_BITS)
    r = torch.round(t / step) * step
    if positive:
        r = torch.clamp(r, min=step)
    return r


@torch.no_grad()
def round_weights(model: nn.Module) -> None:
    for p in model.parameters():
        p.copy_(round_grid(p))
    for name, buf in model.named_buffers():
        if buf.is_floating_point():
            buf.copy_(round_grid(buf, positive=name.endswith("running_var")))


def make_model(
    spec: Spec, batch: int, calib_batches: int, calib_size: int
) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """The seeded model with final weights, the input and PyTorch's reference logits."""
    torch.manual_seed(seed_of(spec.name))
    gen = torch.Generator().manual_seed(seed_of(spec.name) + 1)
    model = spec.build()
    calib_shape = (calib_size, spec.in_channels, *spec.input_hw)
    perturb(model, calib_shape, gen)
    calibrate(model, calib_shape, calib_batches, gen)
    model.eval()
    scale_logits(model, calib_shape, gen)
    round_weights(model)
    x = torch.round(torch.randn((batch, *calib_shape[1:]), generator=gen) / INPUT_STEP) * INPUT_STEP
    x = x.clamp(-4.0, 4.0)
    with torch.no_grad():
        y = model(x)
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"{spec.name}: model returned {type(y).__name__}, expected a logits tensor")
    if not torch.isfinite(y).all():
        raise ValueError(f"{spec.name}: reference logits are not finite")
    return model, x, y


# ---------------------------------------------------------------------------------------------
# Export and check


def param_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))


@contextlib.contextmanager
def quiet():
    """Silence the exporters' progress lines and warnings (errors still propagate)."""
    out, err = io.StringIO(), io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield


def export(model: nn.Module, x: torch.Tensor, path: Path, exporter: str, big: bool) -> list[str]:
    """Write `path`; return notes (fallbacks taken)."""
    notes: list[str] = []
    if exporter == "dynamo":
        kwargs = dict(dynamo=True, input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], external_data=big)
        # torch.export specialises a dimension of size 1 to a constant: trace a batch of 1 with two
        # copies of it, so the batch stays symbolic (ConvNeXt's head otherwise fails to export).
        example = torch.cat([x, x]) if x.shape[0] == 1 else x
        try:
            with quiet():
                torch.onnx.export(
                    model, (example,), str(path), dynamic_shapes=({0: torch.export.Dim(BATCH_NAME)},), **kwargs
                )
        except Exception as e:  # noqa: BLE001 - any failure: retry with a fixed batch
            notes.append(f"fixed batch: symbolic batch failed: {first_line(e)}")
            with quiet():
                torch.onnx.export(model, (x,), str(path), **kwargs)
        # The dynamo exporter names the batch dimension itself: name it like the others. Its
        # nodes carry the Python stack trace of their origin, with this machine's paths and
        # this script's line numbers: drop it, so a file depends on the model only.
        proto = onnx.load(str(path), load_external_data=False)
        for vi in list(proto.graph.input) + list(proto.graph.output):
            d0 = vi.type.tensor_type.shape.dim[0]
            if d0.HasField("dim_param"):
                d0.dim_param = BATCH_NAME
        for graph in [proto.graph, *proto.functions]:
            strip_metadata(graph, STACK_TRACE_KEY)
        onnx.save(proto, str(path))
    else:
        opset = int(exporter.removeprefix("ts"))
        kwargs = dict(
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            do_constant_folding=True,
        )
        try:
            with quiet():
                axes = {INPUT_NAME: {0: BATCH_NAME}, OUTPUT_NAME: {0: BATCH_NAME}}
                torch.onnx.export(model, (x,), str(path), dynamic_axes=axes, **kwargs)
        except Exception as e:  # noqa: BLE001 - any failure: retry with a fixed batch
            with quiet():
                torch.onnx.export(model, (x,), str(path), **kwargs)
            notes.append(f"fixed batch: symbolic batch failed: {first_line(e)}")
    return notes


def strip_metadata(graph: onnx.GraphProto | onnx.FunctionProto, key: str) -> None:
    """Remove the node metadata entries named `key`, in nested subgraphs too."""
    for n in graph.node:
        kept = [p for p in n.metadata_props if p.key != key]
        if len(kept) != len(n.metadata_props):
            del n.metadata_props[:]
            n.metadata_props.extend(kept)
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                strip_metadata(a.g, key)
            for g in a.graphs:
                strip_metadata(g, key)


def first_line(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[0][:300] if lines else type(e).__name__


def op_types(graph: onnx.GraphProto) -> set[str]:
    """Op types of the graph's nodes and of any nested subgraphs."""
    ops = set()
    for n in graph.node:
        ops.add(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}")
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                ops |= op_types(a.g)
            for g in a.graphs:
                ops |= op_types(g)
    return ops


def run_ort(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def max_abs_diff(a, b) -> float:
    """``max |a − b|`` computed in float64 (NaN if either holds a NaN)."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def check(path: Path, x: torch.Tensor, y: torch.Tensor, y64: np.ndarray | None = None) -> dict:
    proto = onnx.load(str(path), load_external_data=False)
    onnx.checker.check_model(str(path))
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    dim0 = proto.graph.input[0].type.tensor_type.shape.dim[0]
    dynamic = dim0.HasField("dim_param")
    xn, yn = x.numpy(), y.numpy()
    got = run_ort(path, xn)
    if got.shape != yn.shape:
        raise ValueError(f"onnxruntime output shape {got.shape} != PyTorch {yn.shape}")
    err = max_abs_diff(got, yn)
    if not math.isfinite(err):
        raise ValueError("the error against PyTorch is not finite (NaN or Inf in an output)")
    entry = {
        "opset": opset,
        "dynamic_batch": dynamic,
        "ort_max_abs_err": err,
        "op_types": sorted(op_types(proto.graph)),
    }
    if y64 is not None:
        entry["ort_fp64_max_abs_err"] = max_abs_diff(got, y64)
    if proto.functions:
        entry["function_op_types"] = sorted(set().union(*(op_types(f) for f in proto.functions)))
    if dynamic and xn.shape[0] > 1:
        # The symbolic batch really is one: a batch of one gives the first row.
        one = run_ort(path, xn[:1])
        entry["ort_batch1_max_abs_err"] = max_abs_diff(one, yn[:1])
    return entry


def logits_fp64(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """The same weights and input run in float64: the logits float32 approximates. PyTorch's own
    float32 logits are some way from them (the float32 noise inherent in the model), so deep
    models are also compared with these (``NAME.output_fp64.npy``)."""
    with torch.no_grad():
        return copy.deepcopy(model).double()(x.double()).numpy()


def process(spec: Spec, out: Path, exporters: list[str], args) -> list[dict]:
    t0 = time.time()
    model, x, y = make_model(spec, args.batch, args.calib_batches, args.calib_size)
    y64 = logits_fp64(model, x)
    full = args.full is not None
    if args.references_only:
        return references_only(spec, out, exporters, x, y, y64)
    np.save(out / f"{spec.name}.input.npy", x.numpy().astype(np.float32))
    np.save(out / f"{spec.name}.output.npy", y.numpy().astype(np.float32))
    if full:
        np.save(out / f"{spec.name}.output_fp64.npy", y64.astype(np.float32))
    big = param_bytes(model) > PROTO_LIMIT
    base = {
        "model": spec.name,
        "family": spec.family,
        "input_shape": list(x.shape),
        "output_shape": list(y.shape),
        "params": sum(p.numel() for p in model.parameters()),
        "max_abs_logit": float(y.abs().max()),
        "torch_fp64_max_abs_diff": max_abs_diff(y64, y.numpy()),
    }
    entries = []
    for exporter in exporters:
        path = out / f"{spec.name}.{exporter}.onnx"
        entry = dict(base, file=path.name, exporter=exporter)
        if path.exists():
            path.unlink()
        data = path.with_name(path.name + ".data")
        if data.exists():
            data.unlink()
        try:
            notes = export(model, x, path, exporter, big)
        except Exception as e:  # noqa: BLE001 - recorded in the manifest
            entry["status"] = "export_failed" if exporter != "ts9" else "skipped"
            entry["error"] = first_line(e)
            if args.verbose:
                traceback.print_exc()
            if path.exists():
                path.unlink()
            entries.append(entry)
            continue
        if big:
            notes.append("weights in external data (model exceeds the 2 GiB protobuf limit)")
        try:
            entry.update(check(path, x, y, y64 if full else None))
            tolerance = MISMATCH_REL * max(1.0, base["max_abs_logit"])
            entry["status"] = "ok" if entry["ort_max_abs_err"] <= tolerance else "mismatch"
        except Exception as e:  # noqa: BLE001 - recorded in the manifest
            entry["status"] = "check_failed"
            entry["error"] = first_line(e)
            if args.verbose:
                traceback.print_exc()
        entry["bytes"] = path.stat().st_size
        if notes:
            entry["notes"] = notes
        entries.append(entry)
    print(f"  {spec.name}: {base['params']} params, {time.time() - t0:.1f} s", file=sys.stderr, flush=True)
    return entries


def references_only(spec: Spec, out: Path, exporters: list[str], x, y, y64) -> list[dict]:
    """``--references-only``: the float64 logits of already written files, after checking that the
    rebuilt model reproduces their input and float32 logits bit for bit; the manifest entries get
    the float64 distances (PyTorch float32's and onnxruntime's)."""
    for what, want, suffix in (("input", x, "input"), ("logits", y, "output")):
        stored = np.load(out / f"{spec.name}.{suffix}.npy")
        if not np.array_equal(stored, want.numpy().astype(np.float32)):
            raise ValueError(f"{spec.name}: the rebuilt model does not reproduce the stored {what}")
    np.save(out / f"{spec.name}.output_fp64.npy", y64.astype(np.float32))
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    torch_fp64 = max_abs_diff(y64, y.numpy())
    entries = []
    for e in manifest:
        if e["model"] != spec.name or e["exporter"] not in exporters:
            continue
        e = dict(e, torch_fp64_max_abs_diff=torch_fp64)
        path = out / e["file"]
        if e.get("status") == "ok" and path.exists():
            got = run_ort(path, x.numpy())
            e["ort_fp64_max_abs_err"] = max_abs_diff(got, y64)
        entries.append(e)
    print(f"  {spec.name}: float64 logits", file=sys.stderr, flush=True)
    return entries


def summary(entries: list[dict]) -> str:
    lines = []
    w = max((len(e["file"]) for e in entries), default=10)
    lines.append(f"{'file':<{w}}  opset  {'status':<13}  {'max_err':>9}  {'max|y|':>8}  op types")
    for e in entries:
        err = f"{e['ort_max_abs_err']:.2e}" if "ort_max_abs_err" in e else "-"
        ops = " ".join(e.get("op_types", [])) or e.get("error", "")
        opset = str(e.get("opset", "-"))
        lines.append(f"{e['file']:<{w}}  {opset:>5}  {e['status']:<13}  {err:>9}  {e['max_abs_logit']:8.3f}  {ops}")
    lines.append("")
    for exporter in EXPORTERS:
        sel = [e for e in entries if e["exporter"] == exporter and e["status"] == "ok"]
        if not sel:
            continue
        union = sorted(set().union(*(e["op_types"] for e in sel)))
        opsets = sorted({e["opset"] for e in sel})
        lines.append(f"{exporter} (opset {', '.join(map(str, opsets))}), {len(sel)} files: {' '.join(union)}")
    return "\n".join(lines)


def main() -> int:
    here = Path(__file__).resolve().parent
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    size = p.add_mutually_exclusive_group(required=True)
    size.add_argument(
        "--small",
        nargs="?",
        const=str(here / "families"),
        metavar="DIR",
        help="reduced models (default DIR: %(const)s)",
    )
    size.add_argument("--full", metavar="DIR", help="standard-size models into DIR")
    p.add_argument("--only", help="comma-separated model names (manifest entries of the others are kept)")
    p.add_argument(
        "--one-per-family",
        action="store_true",
        help="with --full: the models of ONE_PER_FAMILY (%s)" % ",".join(ONE_PER_FAMILY),
    )
    p.add_argument("--exporters", default=",".join(EXPORTERS), help="comma-separated subset of %(default)s")
    p.add_argument("--list", action="store_true", help="list the models and exit")
    p.add_argument(
        "--references-only",
        action="store_true",
        help="with --full: only write NAME.output_fp64.npy (and the float64 distances) for files already in DIR",
    )
    p.add_argument("--batch", type=int, default=2, help="batch of the input and reference output (default %(default)s)")
    p.add_argument("--verbose", action="store_true", help="print tracebacks of failures")
    args = p.parse_args()

    full = args.full is not None
    if args.one_per_family:
        if not full or args.only:
            p.error("--one-per-family goes with --full and without --only")
        args.only = ",".join(ONE_PER_FAMILY)
    specs = full_specs() if full else small_specs()
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {s.name for s in specs})
        if unknown:
            p.error(f"unknown model(s): {', '.join(unknown)} (see --list)")
        specs = [s for s in specs if s.name in wanted]
    if args.list:
        for s in specs:
            print(f"{s.name:28} {s.family:14} {s.in_channels}x{s.input_hw[0]}x{s.input_hw[1]}")
        return 0
    if args.references_only and not full:
        p.error("--references-only goes with --full")
    exporters = args.exporters.split(",")
    if set(exporters) - set(EXPORTERS):
        p.error(f"unknown exporter(s) in {args.exporters}; choose from {', '.join(EXPORTERS)}")
    args.calib_batches, args.calib_size = (4, 4) if full else (8, 16)

    torch.set_num_threads(1)
    out = Path(args.full if full else args.small)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    keep_others = args.only or args.references_only
    old = json.loads(manifest_path.read_text())["files"] if (keep_others and manifest_path.exists()) else []

    entries = []
    for spec in specs:
        try:
            entries += process(spec, out, exporters, args)
        except Exception as e:  # noqa: BLE001 - recorded in the manifest
            if args.verbose:
                traceback.print_exc()
            for exporter in exporters:
                entries.append(
                    {
                        "model": spec.name,
                        "family": spec.family,
                        "file": f"{spec.name}.{exporter}.onnx",
                        "exporter": exporter,
                        "max_abs_logit": float("nan"),
                        "status": "model_failed",
                        "error": first_line(e),
                    }
                )

    done = {(e["model"], e["exporter"]) for e in entries}
    merged = [e for e in old if (e["model"], e["exporter"]) not in done] + entries
    order = {s.name: i for i, s in enumerate(full_specs() if full else small_specs())}
    merged.sort(key=lambda e: (order.get(e["model"], len(order)), EXPORTERS.index(e["exporter"])))
    manifest = {
        "generator": "testdata/make_fixtures.py " + ("--full" if full else "--small"),
        "versions": {
            "torch": torch.__version__.split("+")[0],
            "torchvision": torchvision.__version__.split("+")[0],
            "onnx": onnx.__version__,
            "onnxruntime": ort.__version__,
        },
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "files": merged,
    }
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    print(summary(merged))
    bad = [e for e in merged if e["status"] in ("export_failed", "check_failed", "mismatch", "model_failed")]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
