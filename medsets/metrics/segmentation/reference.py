"""The BIS5k toolkit's definitions written out plainly, independently of segmentation.py: a Python loop over
the 256 thresholds with boolean arrays, plain numpy for the rest. Slow (about a second per 512x512 pair),
so it is for checking the fast module, not for use: the tests compare the two on small masks, and
`python -m benchmarks segmentation-metric` times both.
"""

import numpy as np
from scipy import ndimage

EPS = np.finfo(np.float64).eps
KEYS = ["meanDic", "meanIoU", "wFm", "Sm", "meanEm", "mae", "maxEm", "maxDic", "maxIoU",
        "meanSen", "maxSen", "meanSpe", "maxSpe"]


def ref_image(pred_u8, gt_u8):
    """One image: per-threshold lists and the three scalars, by the book."""
    pred = pred_u8.astype(np.float64) / 255
    G = gt_u8.astype(np.float64) / 255 > 0.5
    curves = {"dice": [], "iou": [], "sen": [], "spe": [], "em": []}
    for t in np.linspace(1, 0, 256):
        P = pred >= t
        tp, fp = np.sum(P & G), np.sum(P & ~G)
        tn = np.sum(~P & ~G)
        if tp == 0:
            dice = iou = sen = spe = 0.0
        else:
            dice = 2 * tp / (P.sum() + G.sum())
            iou = tp / np.sum(P | G)
            sen = tp / G.sum()
            spe = tn / (tn + fp) if tn + fp > 0 else 0.0  # no background at all: 0 (module's choice)
        for name, value in zip(["dice", "iou", "sen", "spe"], [dice, iou, sen, spe]):
            curves[name].append(value)
        curves["em"].append(ref_emeasure(P, G))
    return {**curves, "mae": np.mean(np.abs(pred - G)), "Sm": ref_smeasure(pred, G), "wFm": ref_wfm(pred, G)}


def ref_emeasure(P, G):
    Pf = P.astype(np.float64)
    if G.sum() == 0:
        enhanced = 1 - Pf
    elif G.all():
        enhanced = Pf
    else:
        aP = Pf - Pf.mean()
        aG = G - G.mean()
        align = 2 * aG * aP / (aG ** 2 + aP ** 2 + EPS)
        enhanced = (align + 1) ** 2 / 4
    return enhanced.sum() / (G.size - 1 + EPS)


def ref_smeasure(pred, G):
    y = G.mean()
    if y == 0:
        return 1 - pred.mean()
    if y == 1:
        return pred.mean()
    q = 0.5 * ref_object(pred, G) + 0.5 * ref_region(pred, G)
    return max(q, 0)


def ref_object(pred, G):
    def obj(x, mask):
        values = x[mask]
        m = values.mean()
        s = values.std()  # np.std: the population deviation, as UACANet's Object
        return 2 * m / (m * m + 1 + s + EPS)

    y = G.mean()
    fg = pred * G
    bg = (1 - pred) * (1 - G)
    return y * obj(fg, G) + (1 - y) * obj(bg, ~G)


def ref_region(pred, G):
    h, w = G.shape
    rows, cols = np.nonzero(G)
    X, Y = int(np.round(cols.mean())), int(np.round(rows.mean()))  # 0-based, split at [0:X] / [X:]
    total = 0.0
    for quad in [(slice(0, Y), slice(0, X)), (slice(0, Y), slice(X, w)),
                 (slice(Y, h), slice(0, X)), (slice(Y, h), slice(X, w))]:
        x, g = pred[quad], G[quad].astype(np.float64)
        if x.size:
            total += x.size / (h * w) * ref_ssim(x, g)
    return total


def ref_ssim(x, g):
    N = x.size
    mx, my = np.mean(x), np.mean(g)
    sx = np.sum((x - mx) ** 2) / (N - 1 + EPS)
    sy = np.sum((g - my) ** 2) / (N - 1 + EPS)
    sxy = np.sum((x - mx) * (g - my)) / (N - 1 + EPS)
    alpha = 4 * mx * my * sxy
    beta = (mx ** 2 + my ** 2) * (sx + sy)
    if alpha != 0:
        return alpha / (beta + EPS)
    if alpha == 0 and beta == 0:
        return 1.0
    return 0.0


def ref_wfm(pred, G):
    if not G.any():
        return 0.0  # the module's documented choice
    E = np.abs(pred - G)
    dist, (iy, ix) = ndimage.distance_transform_edt(~G, return_indices=True)
    Et = E.copy()
    Et[~G] = E[iy[~G], ix[~G]]
    yy, xx = np.mgrid[-3:4, -3:4]
    K = np.exp(-(xx ** 2 + yy ** 2) / (2 * 5.0 ** 2))
    K /= K.sum()  # fspecial('gaussian', 7, 5)
    EA = ndimage.convolve(Et, K, mode="nearest")  # as UACANet's original_WFb
    MIN_E_EA = np.where(G & (EA < E), EA, E)
    B = np.where(G, 1.0, 2 - np.exp(np.log(0.5) / 5 * dist))
    Ew = MIN_E_EA * B
    TPw = np.sum(G) - np.sum(Ew[G])
    FPw = np.sum(Ew[~G])
    R = 1 - np.mean(Ew[G])
    P = TPw / (TPw + FPw + EPS)
    return 2 * R * P / (R + P + EPS)


def ref_toolkit(pairs):
    """The 13 reported numbers over (pred_u8, gt_u8) pairs."""
    per_image = [ref_image(p, g) for p, g in pairs]
    out = {}
    for key in KEYS:
        suffix = key.removeprefix("mean").removeprefix("max")
        curve_name = {"Dic": "dice", "IoU": "iou", "Em": "em", "Sen": "sen", "Spe": "spe"}.get(suffix)
        if curve_name:
            curve = np.mean([r[curve_name] for r in per_image], axis=0)  # mean over images, per threshold
            out[key] = curve.mean() if key.startswith("mean") else curve.max()
        else:
            out[key] = np.mean([r[key] for r in per_image])
    return out


# -- test data -----------------------------------------------------------------------------------------
