"""Client models of the tests and bench/python_models.py: a diffusers-style UNet block
stack (ResnetBlock2D: GroupNorm, SiLU, 3x3 conv, twice, plus a skip)."""

from torch import nn


class ResnetBlock2D(nn.Module):
    """diffusers' ResnetBlock2D without the time embedding: GroupNorm(32) + SiLU + conv3x3,
    twice, and a 1x1 conv on the skip path when the channel count changes."""

    def __init__(self, in_channels, out_channels, groups=32, eps=1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.act = nn.SiLU()
        self.skip = (nn.Conv2d(in_channels, out_channels, 1)
                     if in_channels != out_channels else nn.Identity())

    def forward(self, x):
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return self.skip(x) + h


def unet_blocks(in_channels, widths):
    """A down path of ResnetBlock2D, one per width, halving the resolution between them."""
    layers, c = [], in_channels
    for i, w in enumerate(widths):
        if i:
            layers.append(nn.AvgPool2d(2))
        layers.append(ResnetBlock2D(c, w))
        c = w
    return nn.Sequential(*layers)
