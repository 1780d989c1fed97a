"""Structural similarity (SSIM) of two pictures, with NumPy only (no Qt, no SciPy).

Used to compare the lesson guides' pictures (``cachestudio docs``) with a fresh rendering:
a live run is measured, not replayed, so two renderings of one moment are never equal pixel
for pixel; SSIM says how alike their structure is (1.0: the same picture).

Both pictures are made grayscale (ITU-R BT.601 luma), then down-sampled by area averaging
to a common small size (default 640 pixels wide: the text and the layout remain, a token's
exact position or an antialiased edge hardly count), then compared in Gaussian windows
(σ = 1.5, 11 × 11, as Wang, Bovik, Sheikh and Simoncelli 2004) with the standard constants
C1 = (0.01 L)² and C2 = (0.03 L)², L = 255.
"""

from __future__ import annotations

import numpy as np

WIDTH = 640
SIGMA = 1.5
RADIUS = 5  # an 11 x 11 window
L = 255.0
C1 = (0.01 * L) ** 2
C2 = (0.03 * L) ** 2


def gray(image) -> np.ndarray:
    """A picture as a 2-D float array of luma 0..255: from H×W (gray), H×W×3 (RGB) or
    H×W×4 (RGBA: alpha ignored)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim == 2:
        return a
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    raise ValueError(f"a picture is H×W, H×W×3 or H×W×4; got shape {a.shape}")


def _area_axis(a: np.ndarray, n: int, axis: int) -> np.ndarray:
    """Resize one axis to ``n`` samples by area averaging (each output sample is the mean of
    the input interval it covers, fractions of a pixel weighted by their share)."""
    size = a.shape[axis]
    if size == n:
        return a
    a = np.moveaxis(a, axis, 0)
    c = np.concatenate([np.zeros((1,) + a.shape[1:]), np.cumsum(a, axis=0)], axis=0)
    edges = np.linspace(0.0, size, n + 1)
    i = np.minimum(np.floor(edges).astype(int), size - 1)
    frac = (edges - i)[:, None] if a.ndim > 1 else edges - i
    integral = c[i] + frac * (c[i + 1] - c[i])  # the integral from 0 to each edge
    out = np.diff(integral, axis=0) / (size / n)
    return np.moveaxis(out, 0, axis)


def downsample(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """A 2-D array resized to ``width`` × ``height`` by area averaging."""
    return _area_axis(_area_axis(image, height, 0), width, 1)


def _kernel() -> np.ndarray:
    x = np.arange(-RADIUS, RADIUS + 1, dtype=np.float64)
    k = np.exp(-(x * x) / (2 * SIGMA * SIGMA))
    return k / k.sum()


def _filter(a: np.ndarray) -> np.ndarray:
    """The Gaussian window's weighted mean at every position where it fits ("valid")."""
    k = _kernel()
    n = len(k)
    h, w = a.shape
    rows = sum(k[j] * a[j : h - n + 1 + j, :] for j in range(n))
    return sum(k[j] * rows[:, j : w - n + 1 + j] for j in range(n))


def common_size(a_shape: tuple[int, int], width: int = WIDTH) -> tuple[int, int]:
    """(width, height) both pictures are brought to: ``width`` (never more than the first
    picture's own) and the first picture's aspect ratio."""
    h, w = a_shape
    width = min(width, w)
    return width, max(2 * RADIUS + 1, round(h * width / w))


def ssim_map(a, b, width: int = WIDTH) -> np.ndarray:
    """The SSIM of every 11 × 11 window of the two pictures, down-sampled to ``width``."""
    ga, gb = gray(a), gray(b)
    w, h = common_size(ga.shape, width)
    if min(w, h) < 2 * RADIUS + 1:
        raise ValueError(f"pictures too small for SSIM: {ga.shape[1]}×{ga.shape[0]}")
    x, y = downsample(ga, w, h), downsample(gb, w, h)
    mx, my = _filter(x), _filter(y)
    sxx = _filter(x * x) - mx * mx
    syy = _filter(y * y) - my * my
    sxy = _filter(x * y) - mx * my
    return ((2 * mx * my + C1) * (2 * sxy + C2)) / ((mx * mx + my * my + C1) * (sxx + syy + C2))


def ssim(a, b, width: int = WIDTH, weights=None) -> float:
    """The mean SSIM of two pictures (1.0: identical structure), grayscale, both down-sampled
    by area averaging to ``width`` pixels wide (and the first picture's aspect ratio).

    ``weights``: optional, an array of the first picture's shape (H×W, 0..1) saying how much
    each part counts (e.g. 0.2 over the charts' plot areas, whose measured lines differ from
    run to run); it is down-sampled and cropped as the SSIM map is."""
    m = ssim_map(a, b, width)
    if weights is None:
        return float(m.mean())
    g = np.asarray(weights, dtype=np.float64)
    w, h = common_size(gray(a).shape, width)
    g = downsample(g, w, h)[RADIUS : h - RADIUS, RADIUS : w - RADIUS]
    return float((m * g).sum() / g.sum())
