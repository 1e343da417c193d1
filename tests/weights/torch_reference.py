"""An independent PyTorch implementation of the reference DRN architectures (written from
SPECS.md, section 1), whose module names, and so state_dict keys, are the reference's. The
tests use it to check that converted weights give the reference's numbers."""

import numpy as np
import torch
from torch import nn

CHANNELS = (16, 32, 64, 128, 256, 512, 512, 512)


class Basic(nn.Module):
    expansion = 1

    def __init__(self, cin, planes, stride=1, downsample=None, dilation=(1, 1), residual=True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, dilation[0], dilation[0], bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, dilation[1], dilation[1], bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.residual = residual

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        if self.residual:
            out = out + (self.downsample(x) if self.downsample is not None else x)
        return self.relu(out)


class Bottle(nn.Module):
    expansion = 4

    def __init__(self, cin, planes, stride=1, downsample=None, dilation=(1, 1), residual=True):
        super().__init__()
        d = dilation[1]
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, d, d, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (self.downsample(x) if self.downsample is not None else x))


class Net(nn.Module):
    """arch "A", "C" or "D"; ``depths``: blocks per level (tests/published.py)."""

    def __init__(self, arch, bottleneck, depths, classes=1000):
        super().__init__()
        self.arch = arch
        block = Bottle if bottleneck else Basic
        if arch == "A":
            self.cin = 64
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            for level, (planes, stride, dil) in enumerate(
                    [(64, 1, 1), (128, 2, 1), (256, 1, 2), (512, 1, 4)], start=1):
                setattr(self, f"layer{level}",
                        self._blocks(block, planes, depths[level - 1], stride, dil, (1, 1)))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512 * block.expansion, classes)
            return
        self.cin = 16
        if arch == "C":
            self.conv1 = nn.Conv2d(3, 16, 7, 1, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(16)
            self.relu = nn.ReLU()
        else:
            self.layer0 = nn.Sequential(nn.Conv2d(3, 16, 7, 1, 3, bias=False),
                                        nn.BatchNorm2d(16), nn.ReLU())
        for level in range(1, 9):
            count, ch = depths[level - 1], CHANNELS[level - 1]
            stride = 2 if level in (2, 3, 4) else 1
            dil = {5: 2, 6: 4, 7: 2}.get(level, 1)
            if count == 0:
                continue
            if level in (3, 4, 5, 6):
                first = (1, 1) if dil == 1 else (dil, dil)
                module = self._blocks(block, ch, count, stride, dil, first)
            elif arch == "C":
                first = (1, 1) if dil == 1 else (dil, dil)
                module = self._blocks(Basic, ch, count, stride, dil, first,
                                      residual=level < 7)
            else:
                convs = []
                for i in range(count):
                    convs += [nn.Conv2d(self.cin, ch, 3, stride if i == 0 else 1, dil, dil,
                                        bias=False), nn.BatchNorm2d(ch), nn.ReLU()]
                    self.cin = ch
                module = nn.Sequential(*convs)
            setattr(self, f"layer{level}", module)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Conv2d(512, classes, 1)

    def _blocks(self, block, planes, count, stride, dilation, first, residual=True):
        downsample = None
        if stride != 1 or self.cin != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.cin, planes * block.expansion, 1, stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion))
        blocks = [block(self.cin, planes, stride, downsample, first, residual)]
        self.cin = planes * block.expansion
        blocks += [block(self.cin, planes, 1, None, (dilation, dilation), residual)
                   for _ in range(count - 1)]
        return nn.Sequential(*blocks)

    def features(self, x):
        for name, child in self.named_children():
            if name in ("avgpool", "fc"):
                break
            x = child(x)
        return x

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.fc(x).flatten(1) if self.arch != "A" else self.fc(x.flatten(1))


class Seg(nn.Module):
    """segment.py's DRNSeg: base = the backbone's children without avgpool and fc."""

    def __init__(self, net, classes):
        super().__init__()
        self.base = nn.Sequential(*[c for n, c in net.named_children()
                                    if n not in ("avgpool", "fc")])
        channels = net.fc.in_features if net.arch == "A" else net.fc.in_channels
        self.seg = nn.Conv2d(channels, classes, 1)
        self.up = nn.ConvTranspose2d(classes, classes, 16, 8, 4, groups=classes, bias=False)
        profile = 1 - torch.abs(torch.arange(16) / 8 - 0.9375)
        with torch.no_grad():
            self.up.weight.copy_((profile[:, None] * profile[None, :]).expand(classes, 1, 16, 16))

    def forward(self, x):
        return torch.log_softmax(self.up(self.seg(self.base(x))), dim=1)


def randomize(module, seed=0):
    """Random weights and BN statistics, so every parameter matters; eval mode."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("num_batches_tracked") or name == "up.weight":
                continue
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif name.endswith(("bn1.weight", "bn2.weight", "bn3.weight")) or tensor.ndim == 1:
                tensor.copy_(torch.rand(tensor.shape, generator=generator) * 0.5 + 0.5
                             if "weight" in name else
                             torch.randn(tensor.shape, generator=generator) * 0.1)
            else:
                fan_in = tensor[0].numel() if tensor.ndim > 1 else 1
                tensor.copy_(torch.randn(tensor.shape, generator=generator)
                             * (1.0 / fan_in) ** 0.5)
    return module.eval()


def reference_net(name, seed=0, classes=1000):
    """The randomised reference network of the variant ``name``, in eval mode: its block
    kind and depths come from the hand-typed tests/published.py, never from keras_drn."""
    from tests.published import BOTTLENECK, DEPTHS

    return randomize(Net(name[4].upper(), name in BOTTLENECK, DEPTHS[name], classes), seed)


def run_torch(module, x, method="forward"):
    """``module.<method>`` on an NHWC numpy batch; NCHW outputs come back as NHWC numpy."""
    with torch.no_grad():
        out = getattr(module, method)(torch.from_numpy(x).permute(0, 3, 1, 2))
    return (out.permute(0, 2, 3, 1) if out.ndim == 4 else out).numpy()


def save(state_dict, path, **kwargs):
    """``torch.save`` returning the path, for one-line fixtures."""
    torch.save(state_dict, path, **kwargs)
    return str(path)


# Measured on 2026-12-02, CPU: max |ours - reference| / max(1, max |reference|) was 2e-7 to
# 7e-7 on TensorFlow and PyTorch and up to 1.8e-6 on JAX (DRN-A-50), float32 through up to
# 105 layers; 1e-5 leaves a margin of 5x over the worst and still catches a wrong epsilon,
# padding or transposition, which move the outputs by 1e-3 and more.
TOLERANCE = 1e-5


def assert_close(ours, ref):
    """Max abs difference <= TOLERANCE of the reference's largest value (at least 1)."""
    assert ours.shape == ref.shape
    scale = max(1.0, float(np.abs(ref).max()))
    assert np.abs(ours - ref).max() <= TOLERANCE * scale, np.abs(ours - ref).max() / scale
