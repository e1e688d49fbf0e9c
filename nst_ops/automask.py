"""Matched regions of a content and a style image without hand-drawn masks: the colour-coded
masks of Luan et al. (2017) computed from the VGG features the pair already uses.

Method (measured against Luan's hand masks in benchmarks/RESULTS.md, "Automatic masks"):
1. Per image, each pixel's feature is its deep features (relu3_1, relu4_1, relu5_1, each layer
   scaled to unit mean norm, bilinearly upsampled, reduced to their COMPONENTS principal
   components and whitened) beside its opponent colour (whitened, weight COLOUR_WEIGHT) and its
   height in the image (weight POSITION_WEIGHT: a weak prior that a region is one band, such
   as sky above buildings above water; it raised the mean IoU below from 0.44 to 0.49).
2. Per image, k-means, started from the quantiles of the first principal axis (deterministic:
   no random start): the content into `regions` clusters, the style into STYLE_EXTRA more.
3. The soft assignments are refined by a guided filter with the image as guide (He et al.
   2010), so region borders follow the image's edges; each pixel takes its best region.
4. Each content region takes the style region nearest to it (cosine distance of each region's
   mean features at the three layers, each L2-normalised): label k means the same part in both
   images. Several content regions may take one style region, and a style region nobody takes
   gives no style. (relu5_1 alone, whose receptive field spans a small image, failed to match a
   synthetic pair whose halves swap; the three layers match it.) Departure from the former
   one-to-one (Hungarian) matching of K regions per image, by measurement: with K and K + 1
   regions and nearest matching, a content region is never forced onto an unlike style region
   (statues onto a sunset sky, a lake onto city lights), and seg_w1 on pairs 1–8 fell from
   6.2 to 5.2 (benchmarks/RESULTS.md, "Automatic masks").

Departure from the issue's suggestion of one *joint* clustering of both images' features (or
Deep Feature Factorization, Collins et al. 2018): on Luan's pairs 1–8 both split along the
images, not along their parts (mean IoU 0.41 and 0.36–0.39, no better than cutting every image
into top and bottom halves, 0.41); clustering each image alone and matching the regions one to
one gives 0.49 at 3 regions (0.48 at 2, 0.43 at 4), nearest matching with one style region more
0.535.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from nst_ops.guided import guided_filter
from nst_ops.masks import COLOURS, PALETTE
from nst_ops.params import MAX_MASK_REGIONS
from nst_ops.vgg import VGGFeatures

FEATURE_LAYERS = ("relu3_1", "relu4_1", "relu5_1")
MATCH_LAYERS = FEATURE_LAYERS
COMPONENTS = 8  # principal components of the deep features per image
COLOUR_WEIGHT = 0.5  # the colour's weight beside the deep features (each block whitened)
POSITION_WEIGHT = 0.3  # the pixel's height's weight
KMEANS_STEPS = 20
STYLE_EXTRA = 1  # the style is split into this many regions more than the content
SOFTNESS = 0.1  # temperature of the soft assignment refined by the guided filter
GUIDE_EPS = 1e-3


def auto_masks(
    extractor: VGGFeatures, content: Tensor, style: Tensor, regions: int
) -> tuple[Tensor, Tensor]:
    """content (1, 3, H, W) and style (1, 3, H_s, W_s), RGB in [0,1], on the extractor's device
    (its trunk must reach FEATURE_LAYERS[-1], relu5_1) → colour-coded masks in Luan's palette,
    (3, H, W) and
    (3, H_s, W_s) in {0, 0.5, 1}: region k has colour COLOURS[k] in both. Deterministic."""
    if not 2 <= regions <= MAX_MASK_REGIONS:
        raise ValueError(f"mask_regions must be between 2 and {MAX_MASK_REGIONS}, got {regions}")
    content, style = (x.expand(-1, 3, -1, -1) for x in (content, style))  # grey images
    with torch.no_grad():
        content_labels, content_desc = _regions(extractor, content, regions)
        style_regions = min(regions + STYLE_EXTRA, MAX_MASK_REGIONS)
        style_labels, style_desc = _regions(extractor, style, style_regions)
        nearest = nearest_regions(content_desc, style_desc)
        return colour_coded(nearest[content_labels]), colour_coded(style_labels)


def _regions(extractor: VGGFeatures, image: Tensor, regions: int) -> tuple[Tensor, Tensor]:
    """One image's labels (H, W) in [0, regions) and each region's descriptor
    (regions, ΣN_l): its mean feature at each MATCH_LAYERS layer, L2-normalised, concatenated."""
    features = extractor(image.float(), FEATURE_LAYERS)
    x = pixel_features(features, image)
    centroids = kmeans(x, regions)
    h, w = image.shape[-2:]
    soft = torch.softmax(-torch.cdist(x, centroids).pow(2) / SOFTNESS, dim=1)
    soft = soft.T.reshape(1, regions, h, w)
    radius = max(2, max(h, w) // 64)
    labels = guided_filter(image[:, :3].float(), soft, radius, GUIDE_EPS)[0].argmax(0)
    descriptors = [region_descriptors(labels, features[n].float(), regions) for n in MATCH_LAYERS]
    return labels, torch.cat(descriptors, dim=1) / math.sqrt(len(MATCH_LAYERS))


def pixel_features(features: dict[str, Tensor], image: Tensor) -> Tensor:
    """{layer: (1, N_l, h_l, w_l)} and the image (1, 3, H, W) → per-pixel features
    (H·W, COMPONENTS + 4): whitened principal components of the deep features (at relu3_1's
    grid, then upsampled), the whitened opponent colour times COLOUR_WEIGHT and the whitened
    row coordinate times POSITION_WEIGHT."""
    grid = features[FEATURE_LAYERS[0]].shape[-2:]
    blocks = []
    for name in FEATURE_LAYERS:
        f = features[name].float()
        f = f / f.norm(dim=1).mean().clamp_min(1e-8)
        blocks.append(F.interpolate(f, size=grid, mode="bilinear"))
    deep = torch.cat(blocks, dim=1)[0].flatten(1).T  # (P, D)
    deep = deep - deep.mean(0)
    z = _whiten(deep @ _principal_axes(deep, COMPONENTS))
    h, w = image.shape[-2:]
    z = F.interpolate(z.T.reshape(1, -1, *grid), size=(h, w), mode="bilinear")[0]
    r, g, b = image[0, :3].float()
    opponent = torch.stack([(r + g + b) / 3, (r - g) / 2, (r + g - 2 * b) / 4]).flatten(1).T
    row = torch.arange(h, dtype=z.dtype, device=z.device).repeat_interleave(w)[:, None]
    return torch.cat(
        [z.flatten(1).T, COLOUR_WEIGHT * _whiten(opponent), POSITION_WEIGHT * _whiten(row)], dim=1
    )


def _principal_axes(x: Tensor, n: int) -> Tensor:
    """The n leading eigenvectors (D, n) of x's scatter x^T x, x (P, D): exact, in float64 (the
    randomised torch.pca_lowrank is not seeded; dead channels make eigenvalues repeat)."""
    scatter = (x.T @ x).double()
    ridge = 1e-9 * scatter.diagonal().mean().clamp_min(1e-12)
    eye = torch.eye(len(scatter), dtype=scatter.dtype, device=scatter.device)
    vectors: Tensor = torch.linalg.eigh(scatter + ridge * eye)[1]
    return vectors[:, -n:].to(x.dtype)


def _whiten(x: Tensor) -> Tensor:
    """(P, D) → zero mean, each column unit variance, the block unit total variance."""
    centred = x - x.mean(0)
    scale = centred.std(0).clamp_min(1e-8) * math.sqrt(centred.shape[1])
    return centred / scale


def kmeans(x: Tensor, k: int, steps: int = KMEANS_STEPS) -> Tensor:
    """Lloyd's k-means of x (P, D) → centroids (k, D), started from the k quantile bins of the
    projection on x's first principal axis (deterministic); an emptied cluster keeps its
    centroid."""
    axis = _principal_axes(x, 1)[:, 0]
    rank = (x @ axis).argsort().argsort()
    labels = (rank * k) // len(x)
    centroids = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device)
    for _ in range(steps + 1):
        one_hot = F.one_hot(labels, k).to(x.dtype)  # (P, k)
        count = one_hot.sum(0)[:, None]
        centroids = torch.where(count > 0, one_hot.T @ x / count.clamp_min(1), centroids)
        labels = torch.cdist(x, centroids).argmin(1)
    return centroids


def region_descriptors(labels: Tensor, features: Tensor, k: int) -> Tensor:
    """labels (H, W) and features (1, N, h, w) → each region's mean feature (k, N),
    L2-normalised (zero for a region with no pixel)."""
    one_hot = F.one_hot(labels, k).permute(2, 0, 1)[None].float()
    share = F.interpolate(one_hot, size=features.shape[-2:], mode="area")[0].flatten(1)
    mean = share @ features[0].flatten(1).T / share.sum(1, keepdim=True).clamp_min(1e-8)
    return F.normalize(mean, dim=1)


def nearest_regions(content: Tensor, style: Tensor) -> Tensor:
    """Region descriptors (k, N) of the content and (k', N) of the style → nearest (k,): the
    style region of least cosine distance to each content region (several may share one)."""
    return (content @ style.T).argmax(1)


def colour_coded(labels: Tensor) -> Tensor:
    """labels (H, W) in [0, 9) → (3, H, W) RGB in Luan's palette (grey: 0.5), COLOURS order."""
    table = torch.tensor(
        [[0.5, 0.5, 0.5] if min(PALETTE[c]) < 0 else PALETTE[c] for c in COLOURS],
        dtype=torch.float32,
        device=labels.device,
    )
    return table[labels].permute(2, 0, 1).contiguous()
