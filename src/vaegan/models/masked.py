"""The Gated PixelCNN network (van den Oord et al., 2016) and its cached one-pixel-at-a-time evaluation.

Two stacks of gated convolutions read the image without a blind spot:

* the **vertical stack** convolves ``(k // 2 + 1) x k`` windows that end at the current row, so its output at row
  ``r`` sees input rows ``<= r``; it reaches the horizontal stack shifted down one row (rows ``< r``);
* the **horizontal stack** convolves ``1 x (k // 2 + 1)`` windows that end at the current column; its first layer
  is shifted right one column (mask "A": the current pixel itself is not seen), later layers include it (mask
  "B") and are residual.

A layer with dilation ``d`` spaces its taps ``d`` pixels apart (rows and columns; the first layer has ``d = 1``), so a
few dilated layers see the whole digit above the current row, as dilated convolutions do in WaveNet. Every layer
is gated, ``tanh(a) * sigmoid(b)``, with a learned per-class bias in both stacks when the model is
class-conditional. The channels of one pixel are predicted together from the pixels before it (no order within
a pixel), so a pixel is one autoregressive step whatever the channel count.

:class:`CachedPass` evaluates the same network pixel by pixel in raster order the way Ramachandran et al. (2017,
"Fast Generation for Convolutional Autoregressive Models") do: every layer's activations are kept, the vertical
stack computes one new row per image row and the horizontal stack one new position per pixel, so a pixel costs
a few ``1 x 1``-output convolutions instead of a pass over the whole image.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gate(pre: torch.Tensor) -> torch.Tensor:
    """``tanh(a) * sigmoid(b)`` of the two channel halves of ``pre``."""
    a, b = pre.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedLayer(nn.Module):
    """One gated layer of both stacks; the first one (``first=True``) reads the image and masks the current pixel."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int, first: bool, num_classes: int | None,
                 dilation: int = 1):
        super().__init__()
        self.half, self.first, self.dilation = kernel_size // 2, first, dilation
        self.reach = dilation * self.half  # rows above / columns beside the current pixel that a tap reaches
        self.vertical = nn.Conv2d(in_channels, 2 * channels, (self.half + 1, kernel_size), dilation=dilation)
        # The first horizontal convolution sees the `half` pixels left of the current one, later ones `half + 1`.
        self.horizontal = nn.Conv2d(in_channels, 2 * channels, (1, self.half if first else self.half + 1),
                                    dilation=dilation)
        self.vertical_to_horizontal = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.horizontal_out = None if first else nn.Conv2d(channels, channels, 1)
        self.class_bias = nn.Embedding(num_classes, 4 * channels) if num_classes else None

    def biases(self, class_labels: torch.Tensor | None) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """The per-class biases of the vertical and the horizontal pre-activations, ``(B, 2 * channels, 1, 1)``."""
        if self.class_bias is None:
            return 0.0, 0.0
        vertical, horizontal = self.class_bias(class_labels)[:, :, None, None].chunk(2, dim=1)
        return vertical, horizontal

    def vertical_pre(self, rows: torch.Tensor) -> torch.Tensor:
        """Pre-activation of the vertical stack for inputs whose top ``reach`` rows are the context (zero-padded)."""
        return self.vertical(F.pad(rows, (self.reach, self.reach, 0, 0)))

    def horizontal_pre(self, columns: torch.Tensor) -> torch.Tensor:
        """Pre-activation of the horizontal stack for inputs whose left columns are the context (zero-padded)."""
        return self.horizontal(columns)

    def forward(self, v: torch.Tensor, h: torch.Tensor, class_labels: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        v_bias, h_bias = self.biases(class_labels)
        v_pre = self.vertical_pre(F.pad(v, (0, 0, self.reach, 0)))
        shifted = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]  # row r sees the vertical stack of rows < r
        if self.first:  # mask A: columns j - half .. j - 1 (dilation 1)
            columns = F.pad(h, (self.half, 0))[:, :, :, :-1]
        else:  # mask B: columns j - reach .. j, every `dilation`-th
            columns = F.pad(h, (self.reach, 0))
        h_pre = self.horizontal_pre(columns) + self.vertical_to_horizontal(shifted) + h_bias
        v_out, h_gated = gate(v_pre + v_bias), gate(h_pre)
        return v_out, (h_gated if self.first else h + self.horizontal_out(h_gated))


class GatedPixelCNNNet(nn.Module):
    """Images ``(B, C, H, W)`` scaled to [-1, 1] -> logits ``(B, C * levels, H, W)``, each from the pixels before.

    ``out_channels`` (default ``C * levels``): the number of logits per position, e.g. one per code of a codebook
    for inputs that are code embeddings.
    """

    def __init__(self, in_channels: int, channels: int, num_layers: int, kernel_size: int, levels: int,
                 head_channels: int, num_classes: int | None, dilations: list[int] | None = None,
                 out_channels: int | None = None):
        super().__init__()
        dilations = dilations or [1] * num_layers
        self.layers = nn.ModuleList(
            GatedLayer(in_channels if i == 0 else channels, channels, kernel_size, i == 0, num_classes, dilations[i])
            for i in range(num_layers)
        )
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, head_channels, 1), nn.ReLU(),
                                  nn.Conv2d(head_channels, out_channels or in_channels * levels, 1))

    def forward(self, x: torch.Tensor, class_labels: torch.Tensor | None = None) -> torch.Tensor:
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h, class_labels)
        return self.head(h)


class CachedPass:
    """The network evaluated one pixel at a time, in raster order, reusing every activation computed before.

    Call :meth:`logits` for pixel ``(i, j)`` once the pixels before it are in ``x`` (``x`` is read, never written).
    """

    def __init__(self, net: GatedPixelCNNNet, x: torch.Tensor, class_labels: torch.Tensor | None):
        self.net, self.x, self.row = net, x, -1
        batch, _, height, width = x.shape
        self.layers = list(net.layers)
        self.biases = [layer.biases(class_labels) for layer in self.layers]
        channels = self.layers[0].vertical.out_channels // 2
        like = dict(device=x.device, dtype=x.dtype)
        # Outputs of the vertical stack, every row so far; the current row of the horizontal stack.
        self.v = [torch.zeros(batch, channels, height, width, **like) for _ in self.layers]
        self.h = [torch.zeros(batch, channels, width, **like) for _ in self.layers]
        self.v_to_h: list[torch.Tensor] = []
        # One output position of a convolution is a matrix product: the weights as matrices, once.
        self.matrices = [(layer.horizontal.weight.flatten(1), layer.horizontal.bias,
                          None if layer.first else layer.horizontal_out.weight.flatten(1),
                          None if layer.first else layer.horizontal_out.bias) for layer in self.layers]
        self.biases = [(v, h if isinstance(h, float) else h.flatten(1)) for v, h in self.biases]
        _, hidden, _, out = net.head
        self.head_weights = (hidden.weight.flatten(1), hidden.bias, out.weight.flatten(1), out.bias)

    def _start_row(self, i: int) -> None:
        """Vertical stack of row ``i - 1`` (now complete) and its contribution to row ``i``'s horizontal stack."""
        self.v_to_h = []
        below = self.x
        for layer, v, (v_bias, _) in zip(self.layers, self.v, self.biases, strict=True):
            if i == 0:  # nothing above the first row
                shifted = v.new_zeros(v.shape[0], 2 * v.shape[1], 1, v.shape[3])
            else:
                top = i - 1 - layer.reach
                rows = below[:, :, max(top, 0):i]
                rows = F.pad(rows, (0, 0, max(-top, 0), 0))
                shifted = layer.vertical_pre(rows)  # (B, 2C, 1, W): row i - 1
                v[:, :, i - 1:i] = gate(shifted + v_bias)
            self.v_to_h.append(layer.vertical_to_horizontal(shifted)[:, :, 0])  # (B, 2C, W)
            below = v
        self.row = i

    def logits(self, i: int, j: int) -> torch.Tensor:
        """Logits ``(B, C * levels)`` of pixel ``(i, j)``."""
        if i != self.row:
            self._start_row(i)
        below = self.x[:, :, i]  # (B, C, W)
        for layer, h, v_to_h, (_, h_bias), (weight, bias, out_weight, out_bias) in zip(
                self.layers, self.h, self.v_to_h, self.biases, self.matrices, strict=True):
            end = j if layer.first else j + 1  # mask A stops before the current pixel
            taps, step = weight.shape[1] // below.shape[1], layer.dilation
            start = end - 1 - step * (taps - 1)  # the leftmost tap; taps left of column 0 read zeros
            columns = below[:, :, start + step * max(0, -(start // step)):end:step]
            if columns.shape[-1] < taps:
                columns = F.pad(columns, (taps - columns.shape[-1], 0))
            pre = torch.addmm(bias, columns.flatten(1), weight.T) + v_to_h[:, :, j] + h_bias
            gated = gate(pre)
            if not layer.first:
                gated = below[:, :, j] + torch.addmm(out_bias, gated, out_weight.T)
            h[:, :, j] = gated
            below = h
        hidden_weight, hidden_bias, out_weight, out_bias = self.head_weights
        hidden = F.relu(torch.addmm(hidden_bias, F.relu(below[:, :, j]), hidden_weight.T))
        return torch.addmm(out_bias, hidden, out_weight.T)
