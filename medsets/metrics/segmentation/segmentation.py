"""BIS5k segmentation toolkit as a local `evaluate` metric (Dice, IoU, S-, E- and weighted F-measure, MAE).

Reproduces the evaluation toolkit shipped with BIS5k (derived from UACANet's Eval.py), fast: the 256
threshold curves come from one grey-level histogram per image instead of 256 passes over the pixels.

Load it by path, offline:

    import evaluate
    metric = evaluate.load(medsets.metric_path("segmentation"))   # import evaluate, medsets

Or call `toolkit_scores` / `summarize` directly (no Arrow, no `evaluate` machinery).

One module because `evaluate` loads a metric from the one file named after its folder; the thirteen
columns share their per-image histograms and counts, so they are computed together here.

Where the toolkit's formulas leave a choice (empty ground truth, quadrant split, 0/1 masks), the
choice made is listed at the end of _DESCRIPTION below.
"""

import io
import multiprocessing
import struct

import datasets
import evaluate
import numpy as np
from PIL import Image
from scipy import ndimage

_CITATION = """\
@misc{bis5k,
  title  = {{BIS5k}: A large-scale dataset for medical segmentation task based on {HE}-staining images of breast cancer},
  note   = {Dataset (5,000 training and 929 test images) and its evaluation toolkit, derived from UACANet's Eval.py},
}
@inproceedings{kim2021uacanet,
  title     = {{UACANet}: Uncertainty Augmented Context Attention for Polyp Segmentation},
  author    = {Kim, Taehun and Lee, Hyemin and Kim, Daijin},
  booktitle = {Proceedings of the 29th ACM International Conference on Multimedia},
  year      = {2021},
}
@inproceedings{fan2017structure,
  title     = {Structure-measure: A New Way to Evaluate Foreground Maps},
  author    = {Fan, Deng-Ping and Cheng, Ming-Ming and Liu, Yun and Li, Tao and Borji, Ali},
  booktitle = {IEEE International Conference on Computer Vision (ICCV)},
  pages     = {4548--4557},
  year      = {2017},
}
@inproceedings{fan2018enhanced,
  title     = {Enhanced-alignment Measure for Binary Foreground Map Evaluation},
  author    = {Fan, Deng-Ping and Gong, Cheng and Cao, Yang and Ren, Bo and Cheng, Ming-Ming and Borji, Ali},
  booktitle = {Proceedings of the Twenty-Seventh International Joint Conference on Artificial Intelligence (IJCAI)},
  pages     = {698--704},
  year      = {2018},
}
@inproceedings{margolin2014evaluate,
  title     = {How to Evaluate Foreground Maps?},
  author    = {Margolin, Ran and Zelnik-Manor, Lihi and Tal, Ayellet},
  booktitle = {IEEE Conference on Computer Vision and Pattern Recognition (CVPR)},
  pages     = {248--255},
  year      = {2014},
}
"""

_DESCRIPTION = """\
The BIS5k evaluation toolkit (derived from UACANet's Eval.py and utils/eval_functions.py) for binary
segmentation, equal to UACANet's functions (to 1e-15 on every column, tested against a transcription of
its formulas and measured against its code) and fast (one grey-level histogram per image for the
threshold curves).

Per image, the prediction is read as grey levels / 255 and the ground truth G as gt / 255 > 0.5.
- Threshold curves: for each of 256 thresholds t in np.linspace(1, 0, 256), P = pred >= t, and
  Dice = 2TP/(|P|+|G|), IoU = TP/|P or G|, sensitivity = TP/|G|, specificity = TN/(TN+FP) (all four 0
  when TP = 0, even if P and G are both empty; specificity also 0 when G has no background), and the
  E-measure (enhanced alignment, Fan et al. IJCAI 2018) of the binary P: sum/(N-1); 1-P for an empty G,
  P for a full G. The curves are averaged over images; meanX / maxX are the mean / max over the
  thresholds of that averaged curve.
- mae: mean |pred - G|. Sm: S-measure (Fan et al. ICCV 2017), alpha 0.5, the object score with the
  population standard deviation (np.std), quadrants split at the ground truth's centroid X =
  np.round(mean column), Y = np.round(mean row) (0-based, halves to even), left/top = [0:X] / [0:Y].
  wFm: weighted F-measure (Margolin et al. CVPR 2014), beta 1, 7x7 Gaussian with sigma 5, edge pixels
  repeated beyond the border (scipy's mode='nearest', as UACANet convolves). These three are averaged
  over images.

convention="pysodmetrics" equals the pysodmetrics package instead (Sm, wFm, MAE and the E-measure curve
to 1e-15; tests/test_segmentation_metric.py), the implementation most salient- and camouflaged-object and
polyp papers report with, which follows the original MATLAB code: the ground truth is gt > 128; the
prediction is stretched to span [0, 1] (MATLAB's mapminmax) unless it is constant; the threshold curves
are over the integer levels 255 .. 0 of (pred * 255).astype(uint8); the S-measure's object score uses the
sample deviation and its quadrants split one row and column further (MATLAB's 1:X); the weighted
F-measure pads with zeros and is 0 for an empty ground truth. Dice, IoU, sensitivity and specificity,
which the package does not compute this way, use the same levels and the TP = 0 rule.

Returns 13 floats, in the toolkit's order: meanDic, meanIoU, wFm, Sm, meanEm, mae, maxEm, maxDic, maxIoU,
meanSen, maxSen, meanSpe, maxSpe.

Inputs are bytes (features `Value("binary")`), so that masks do not go through Arrow image encoding
(~45 ms per 512x512 mask): either PNG file bytes, or an array packed with this module's `pack()`.

Where the reference's code gives NaN (which then makes its averaged column NaN), this module gives a
number, and `toolkit_scores` lists the columns in "undefined_in_reference" so that tables can say so
(`undefined_in_reference()` counts them over images). UACANet:
- an empty ground truth has wFm 0 (the formula takes the mean over no pixels);
- a ground truth with no background has specificity 0 (TN + FP = 0), as the TP = 0 rule does;
- a ground truth whose centroid rounds to the first row or column leaves a quadrant empty: Sm gives it
  weight 0 (its share of the image), where UACANet's SSIM of no pixels is NaN.
pysodmetrics: the same empty quadrant, there when the centroid lies on the last row or column.
Other choices:
- quadrant split [0:X] / [X:] with 0-based X: the centroid column and row go right / down (a 1-based
  split as in MATLAB would put them left / up);
- a mask whose values are all 0 or 1 (bool, 0/1 array, 1-bit or 0/1 palette PNG) is read as 0/255:
  read literally as grey levels it would be an empty ground truth or a black prediction.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list`): one predicted map per image, as
        - a 2-D uint8 array of grey levels 0-255, or a bool array (binary prediction);
        - a PIL image, or PNG file bytes: read like Eval.py, np.array(Image.open(f)): grey levels 0-255,
          the first channel of an RGB(A) image, the index of a palette image; or
        - `pack(array)` bytes (what arrays become before evaluate stores them).
        A map whose values are all 0 or 1 (a bool array, a 0/1 array or PNG) is a binary mask: 1 is
        read as 255.
    references (`list`): the ground-truth masks, in the same forms; foreground is a grey
        level above 127 (gt / 255 > 0.5), or 1 in a 0/1 mask. Each must have the size of its prediction
        (a ValueError names both shapes; nothing is resized).
    num_proc (`int`, *optional*, defaults to 1): worker processes for the per-image scores (the distance
        transform of the weighted F-measure dominates; about 30 ms per 512x512 image on one core).
    convention (`str`, *optional*, defaults to "uacanet"): "uacanet" (the BIS5k toolkit, UACANet's Eval.py)
        or "pysodmetrics" (the pysodmetrics package); see above.

Returns:
    `dict` of 13 floats: meanDic, meanIoU, wFm, Sm, meanEm, mae, maxEm, maxDic, maxIoU, meanSen, maxSen,
    meanSpe, maxSpe.

Examples:
    >>> import numpy as np
    >>> import evaluate, medsets
    >>> from medsets.metrics.segmentation import pack              # this module's helpers
    >>> metric = evaluate.load(medsets.metric_path("segmentation"))  # a path: works offline
    >>> gt = np.zeros((64, 64), bool); gt[16:48, 16:48] = True
    >>> pred = (gt * 200).astype(np.uint8)                        # grey levels 0-255
    >>> scores = metric.compute(predictions=[pack(pred)], references=[pack(gt)])
    >>> list(scores)[:4], round(scores["maxDic"], 4), round(scores["mae"], 4)
    (['meanDic', 'meanIoU', 'wFm', 'Sm'], 1.0, 0.0539)

    PNG file bytes work the same way, and batches can be added one at a time:
    >>> metric.add_batch(predictions=[open("pred.png", "rb").read()], references=[open("gt.png", "rb").read()])
    >>> scores = metric.compute(num_proc=2)                        # two worker processes
"""

EPS = np.finfo(np.float64).eps
KEYS = ("meanDic", "meanIoU", "wFm", "Sm", "meanEm", "mae", "maxEm", "maxDic", "maxIoU",
        "meanSen", "maxSen", "meanSpe", "maxSpe")
CURVES = {"Dic": "dice", "IoU": "iou", "Em": "em", "Sen": "sen", "Spe": "spe"}  # key suffix -> curve name
FROM_CURVE = {stat + suffix: (name, stat) for suffix, name in CURVES.items() for stat in ("mean", "max")}

THRESHOLDS = np.linspace(1, 0, 256)
LEVELS = np.arange(256) / 255  # grey level k as the toolkit sees it: k / 255 in float64
# ABOVE[k, i]: grey level k is predicted positive at threshold i. Taken from the toolkit's own float
# comparison, because linspace(1, 0, 256)[i] and (255 - i) / 255 can differ by an ulp.
ABOVE = (LEVELS[:, None] >= THRESHOLDS[None, :]).astype(np.float64)

CONVENTIONS = ("uacanet", "pysodmetrics")

# MATLAB fspecial('gaussian', 7, 5) is the outer product of this 1-D kernel with itself, so the 7x7
# convolution is done as two 1-D passes (the same result, with zero padding, in half the time).
_G1 = np.exp(-np.arange(-3, 4) ** 2 / (2 * 5.0 ** 2))
GAUSS_1D = _G1 / _G1.sum()


# -- inputs: PNG bytes or packed arrays ----------------------------------------------------------------
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
PACK_MAGIC = b"MSK1"
_HEADER = struct.Struct("<4s1sII")  # magic, dtype code, height, width
_DTYPE_CODES = {np.dtype(np.uint8): b"u", np.dtype(np.bool_): b"b"}
_CODE_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}


def pack(mask: np.ndarray) -> bytes:
    """A 2-D uint8 or bool array as bytes: b"MSK1", dtype code, height, width (uint32 LE), raw C-order data."""
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype not in _DTYPE_CODES:
        raise ValueError(f"pack() takes a 2-D uint8 or bool array, got {mask.dtype} of shape {mask.shape}")
    height, width = mask.shape
    return _HEADER.pack(PACK_MAGIC, _DTYPE_CODES[mask.dtype], height, width) + np.ascontiguousarray(mask).tobytes()


def unpack(data: bytes) -> np.ndarray:
    """The array that `pack()` turned into `data`."""
    magic, code, height, width = _HEADER.unpack_from(data)
    if magic != PACK_MAGIC or code not in _CODE_DTYPES:
        raise ValueError("not a packed mask (no MSK1 header)")
    body = memoryview(data)[_HEADER.size:]
    if len(body) != height * width:
        raise ValueError(f"packed mask of shape ({height}, {width}) holds {len(body)} bytes of data, "
                         f"expected {height * width}")
    return np.frombuffer(body, dtype=_CODE_DTYPES[code]).reshape(height, width)


def decode(data: bytes) -> np.ndarray:
    """PNG bytes or `pack()` bytes -> the 2-D array they hold.

    A PNG is read as Eval.py reads it, np.array(Image.open(f)) keeping the first channel of a colour
    image: grey levels, palette indices for a palette PNG, bool for a 1-bit PNG (see `as_grey`)."""
    data = bytes(data)
    if data.startswith(PACK_MAGIC):
        return unpack(data)
    if data.startswith(PNG_MAGIC):
        with Image.open(io.BytesIO(data)) as image:
            array = np.asarray(image)
        return array[..., 0] if array.ndim == 3 else array
    raise ValueError(f"expected PNG bytes or pack() bytes, got bytes starting {data[:8]!r}")


def as_grey(mask: np.ndarray) -> np.ndarray:
    """A mask as uint8 grey levels 0-255. Bool and 0/1 arrays are binary masks: 1 becomes 255."""
    mask = np.asarray(mask)
    if mask.ndim == 3:  # what Eval.py does with an RGB file: keep the first channel
        mask = mask[..., 0]
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8) * np.uint8(255)
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"expected uint8 grey levels 0-255 or a bool mask, got {mask.dtype} "
                         "(scale probabilities with (p * 255).round().astype(np.uint8))")
    low, high = (int(mask.min()), int(mask.max())) if mask.size else (0, 0)
    if low < 0 or high > 255:
        raise ValueError(f"grey levels must lie in 0-255, got {low}-{high}")
    # A 0/1 mask read as grey levels would be all background (gt / 255 > 0.5 is never true).
    return mask.astype(np.uint8) * np.uint8(255 if high == 1 else 1)


# -- per image -----------------------------------------------------------------------------------------
def toolkit_scores(pred: np.ndarray, gt: np.ndarray, convention: str = "uacanet") -> dict:
    """One image's scores: the five 256-point threshold curves ("dice", "iou", "sen", "spe", "em",
    threshold order 1 -> 0) and the scalars "mae", "Sm", "wFm", under `convention` ("uacanet", the BIS5k
    toolkit's, or "pysodmetrics"; see _DESCRIPTION). Average many with `summarize()`.

    pred: uint8 grey levels 0-255, or bool (binary prediction). gt: uint8 0-255 (foreground > 127) or bool.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"convention={convention!r}: choose one of {', '.join(CONVENTIONS)}")
    pred, gt = as_grey(pred), as_grey(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from ground-truth shape {gt.shape} "
                         "(masks are not resized)")
    if convention == "pysodmetrics":
        return sod_scores(pred, gt)
    fg = gt > 127  # the same as gt / 255 > 0.5, without a float copy
    hist_bg, hist_fg = grey_histograms(pred, fg)
    scores = threshold_curves(hist_bg, hist_fg)
    scores["mae"] = float(hist_bg @ LEVELS + hist_fg @ (1 - LEVELS)) / pred.size
    grey = pred / 255
    scores["Sm"] = s_measure(grey, fg, hist_bg, hist_fg)
    scores["wFm"] = weighted_f_measure(grey, fg)
    scores["undefined_in_reference"] = undefined_columns(fg)
    return scores


def sod_scores(pred: np.ndarray, gt: np.ndarray) -> dict:
    """One image under the pysodmetrics convention (the package's own input preparation and formulas)."""
    fg = gt > 128  # its prepare_data: gt > 128
    grey = pred / 255
    if grey.max() != grey.min():  # MATLAB's mapminmax, as its prepare_data does
        grey = (grey - grey.min()) / (grey.max() - grey.min())
    levels = (grey * 255).astype(np.uint8)  # its E-measure curve's levels (truncated, as astype does)
    hist_bg, hist_fg = grey_histograms(levels, fg)
    # Thresholds are the integer levels 255 .. 0 (P = level >= k): its cumulative histograms.
    tp, fp = np.cumsum(hist_fg[::-1]), np.cumsum(hist_bg[::-1])
    n_fg, n_bg = hist_fg.sum(), hist_bg.sum()
    fn, tn = n_fg - tp, n_bg - fp
    hit = tp > 0

    def ratio(num, den, where=hit):
        return np.divide(num, den, out=np.zeros(256), where=where)

    scores = {"dice": ratio(2 * tp, tp + fp + n_fg), "iou": ratio(tp, tp + fp + fn), "sen": ratio(tp, n_fg),
              "spe": ratio(tn, tn + fp, hit & (tn + fp > 0)), "em": e_measure_curve(tp, fp, fn, tn)}
    scores["mae"] = float(np.abs(grey - fg).mean())
    y = fg.mean()
    if y == 0:
        scores["Sm"] = float(1 - grey.mean())
    elif y == 1:
        scores["Sm"] = float(grey.mean())
    else:
        s_object = y * _sample_object_score(grey[fg]) + (1 - y) * _sample_object_score(1 - grey[~fg])
        scores["Sm"] = float(max(0.5 * s_object + 0.5 * _region_score(grey, fg, one_based=True), 0.0))
    scores["wFm"] = weighted_f_measure(grey, fg, mode="constant")
    scores["undefined_in_reference"] = ["Sm"] if 0 < y < 1 and _split_leaves_a_quadrant_empty(fg) else []
    return scores


def _sample_object_score(values: np.ndarray) -> float:
    """pysodmetrics' s_object: 2m / (m^2 + 1 + s + eps) with the sample deviation (0 for one pixel)."""
    m = values.mean()
    s = values.std(ddof=1) if values.size > 1 else 0.0
    return 2 * m / (m * m + 1 + s + EPS)


def _split_leaves_a_quadrant_empty(fg: np.ndarray) -> bool:
    """With pysodmetrics' 1-based split, a centroid on the last row or column leaves quadrants empty
    (its SSIM of no pixels is NaN there)."""
    x, y = centroid(fg)
    return y + 1 == fg.shape[0] or x + 1 == fg.shape[1]


def undefined_columns(fg: np.ndarray) -> list[str]:
    """The columns UACANet's code makes NaN for this ground truth (see _DESCRIPTION)."""
    share = fg.mean() if fg.size else 0.0
    if share == 0:
        return ["wFm"]
    if share == 1:
        return ["meanSpe", "maxSpe"]
    return ["Sm"] if 0 in centroid(fg) else []


def undefined_in_reference(scores) -> dict[str, int]:
    """Per column, how many images the convention's reference code would score NaN (this module gives a
    number there: see _DESCRIPTION)."""
    counts: dict[str, int] = {}
    for s in scores:
        for column in s.get("undefined_in_reference", ()):
            counts[column] = counts.get(column, 0) + 1
    return counts


def grey_histograms(pred: np.ndarray, fg: np.ndarray) -> tuple:
    """Pixel counts per grey level (float64, 256 bins) outside and inside the ground truth."""
    counts = np.bincount(pred.ravel() + 256 * fg.ravel().astype(np.intp), minlength=512)
    return counts[:256].astype(np.float64), counts[256:].astype(np.float64)


def threshold_curves(hist_bg: np.ndarray, hist_fg: np.ndarray) -> dict:
    """Dice, IoU, sensitivity, specificity and E-measure at each of the 256 thresholds, from the counts."""
    tp, fp = hist_fg @ ABOVE, hist_bg @ ABOVE  # positives inside / outside G at each threshold
    n_fg, n_bg = hist_fg.sum(), hist_bg.sum()
    fn, tn = n_fg - tp, n_bg - fp
    hit = tp > 0  # the toolkit scores 0 wherever TP = 0

    def ratio(num, den, where=hit):
        return np.divide(num, den, out=np.zeros(256), where=where)

    return {"dice": ratio(2 * tp, tp + fp + n_fg), "iou": ratio(tp, tp + fp + fn), "sen": ratio(tp, n_fg),
            "spe": ratio(tn, tn + fp, hit & (tn + fp > 0)), "em": e_measure_curve(tp, fp, fn, tn)}


def e_measure_curve(tp, fp, fn, tn) -> np.ndarray:
    """E-measure of the binary prediction at each threshold. P and G are binary, so the enhanced
    alignment takes one value per (P, G) combination: its sum is count x value over the four."""
    n_fg = tp[0] + fn[0]
    n = n_fg + fp[0] + tn[0]
    if n_fg == 0:  # enhanced = 1 - P: one per negative pixel
        total = fn + tn
    elif n_fg == n:  # enhanced = P
        total = tp + fp
    else:
        mu_p, mu_g = (tp + fp) / n, n_fg / n
        total = sum(count * _enhanced(p - mu_p, g - mu_g)
                    for count, p, g in ((tp, 1.0, 1.0), (fp, 1.0, 0.0), (fn, 0.0, 1.0), (tn, 0.0, 0.0)))
    return total / (n - 1 + EPS)


def _enhanced(a_p, a_g):
    """Enhanced alignment of one pixel, from its bias-removed prediction a_p and ground truth a_g."""
    align = 2 * a_g * a_p / (a_g ** 2 + a_p ** 2 + EPS)
    return (align + 1) ** 2 / 4


def s_measure(grey: np.ndarray, fg: np.ndarray, hist_bg: np.ndarray, hist_fg: np.ndarray) -> float:
    """Structure measure, alpha 0.5: grey = prediction in [0, 1], fg = ground truth; histograms as above."""
    y = fg.mean()
    if y == 0:
        return float(1 - grey.mean())
    if y == 1:
        return float(grey.mean())
    # Object part: the prediction's values inside G, and 1 - prediction outside G.
    s_object = y * _object_score(hist_fg, LEVELS) + (1 - y) * _object_score(hist_bg, 1 - LEVELS)
    q = 0.5 * s_object + 0.5 * _region_score(grey, fg)
    return float(max(q, 0.0))


def _object_score(hist: np.ndarray, values: np.ndarray) -> float:
    """2m / (m^2 + 1 + s + eps) of the pixels counted in `hist` (grey level k has value values[k]);
    m, s = mean and standard deviation (population, np.std's default, as UACANet's Object), straight
    from the histogram."""
    n = hist.sum()
    m = hist @ values / n
    s = np.sqrt(hist @ (values - m) ** 2 / n)
    return 2 * m / (m * m + 1 + s + EPS)


def _region_score(grey: np.ndarray, fg: np.ndarray, one_based: bool = False) -> float:
    """Area-weighted SSIM of the four quadrants split at the ground truth's centroid: at its 0-based
    index (UACANet), or one further (pysodmetrics, which follows MATLAB's 1:X)."""
    height, width = fg.shape
    x, y = centroid(fg)
    x, y = (x + 1, y + 1) if one_based else (x, y)
    gt = fg.astype(np.float64)
    score = 0.0
    for rows in (slice(0, y), slice(y, height)):
        for cols in (slice(0, x), slice(x, width)):
            part = grey[rows, cols]
            if part.size:  # an empty quadrant has weight 0
                score += part.size / grey.size * _ssim(part, gt[rows, cols])
    return score


def centroid(fg: np.ndarray) -> tuple:
    """(X, Y) = rounded mean column and row index of the foreground, 0-based (centre if empty)."""
    height, width = fg.shape
    n = fg.sum()
    if n == 0:
        return width // 2, height // 2
    x = np.round(fg.sum(axis=0) @ np.arange(width) / n)
    y = np.round(fg.sum(axis=1) @ np.arange(height) / n)
    return int(x), int(y)


def _ssim(x: np.ndarray, g: np.ndarray) -> float:
    # Plain float arithmetic on purpose, as in the toolkit: the "alpha == 0 and beta == 0" branch is a
    # discontinuity, so sx must come out of mean-then-subtract exactly as it does there.
    n = x.size
    mx, my = x.mean(), g.mean()
    dx, dy = x - mx, g - my
    sx = np.sum(dx * dx) / (n - 1 + EPS)
    sy = np.sum(dy * dy) / (n - 1 + EPS)
    sxy = np.sum(dx * dy) / (n - 1 + EPS)
    alpha = 4 * mx * my * sxy
    beta = (mx ** 2 + my ** 2) * (sx + sy)
    if alpha != 0:
        return alpha / (beta + EPS)
    return 1.0 if beta == 0 else 0.0


def weighted_f_measure(grey: np.ndarray, fg: np.ndarray, mode: str = "nearest") -> float:
    """Weighted F-measure, beta 1 (Margolin et al. 2014); 0 when the ground truth is empty."""
    if not fg.any():
        return 0.0
    err = np.abs(grey - fg)
    # Distance to, and index of, the nearest ground-truth pixel. A ground-truth pixel is its own
    # nearest one, so err[iy, ix] is err itself on G and the nearest object pixel's error off G.
    dist, (iy, ix) = ndimage.distance_transform_edt(~fg, return_indices=True)
    err_t = err[iy, ix]
    # UACANet convolves with mode='nearest': beyond the border the edge pixel repeats (the kernel is
    # symmetric, so correlation is the convolution; it is separable, so two 1-D passes are the 7x7 one).
    err_a = ndimage.correlate1d(ndimage.correlate1d(err_t, GAUSS_1D, axis=0, mode=mode),
                                GAUSS_1D, axis=1, mode=mode)
    min_e_ea = np.where(fg & (err_a < err), err_a, err)
    # Off the object, errors weigh more the further they are from it (2 - exp(ln 0.5 / 5 * dist));
    # on it dist = 0, so the same expression gives the weight 1 exactly.
    err_w = min_e_ea * (2 - np.exp(np.log(0.5) / 5 * dist))
    on_fg = err_w[fg]
    tp_w = fg.sum() - on_fg.sum()
    fp_w = err_w[~fg].sum()
    recall = 1 - on_fg.mean()
    precision = tp_w / (tp_w + fp_w + EPS)
    return float(2 * recall * precision / (recall + precision + EPS))


# -- many images ---------------------------------------------------------------------------------------
def summarize(scores) -> dict:
    """The toolkit's 13 numbers from per-image `toolkit_scores` results: threshold curves averaged
    over images, then mean / max over thresholds; mae, Sm and wFm averaged over images."""
    scores = list(scores)
    if not scores:
        raise ValueError("no images to score")
    curves = {name: np.mean([s[name] for s in scores], axis=0) for name in CURVES.values()}
    out = {}
    for key in KEYS:
        if key in FROM_CURVE:
            name, stat = FROM_CURVE[key]
            out[key] = float(curves[name].mean() if stat == "mean" else curves[name].max())
        else:
            out[key] = float(np.mean([s[key] for s in scores]))
    return out


def per_image(predictions, references, num_proc=None, convention: str = "uacanet") -> list[dict]:
    """`toolkit_scores` of each encoded pair, in order, on `num_proc` processes: what `summarize` averages
    (and what an interval over images resamples)."""
    jobs = [(index, p, r, convention) for index, (p, r) in enumerate(zip(predictions, references))]
    if num_proc and num_proc > 1 and len(jobs) > 1:
        with multiprocessing.Pool(min(num_proc, len(jobs))) as pool:
            return pool.starmap(score_encoded, jobs, chunksize=max(1, len(jobs) // (8 * num_proc)))
    return [score_encoded(*job) for job in jobs]


def score_encoded(index: int, prediction: bytes, reference: bytes, convention: str = "uacanet") -> dict:
    """`toolkit_scores` of one encoded pair; errors name the pair's position."""
    try:
        return toolkit_scores(decode(prediction), decode(reference), convention)
    except ValueError as err:
        raise ValueError(f"pair {index}: {err}") from None


def as_bytes(mask) -> bytes:
    """A mask as the module's input bytes: bytes pass through (PNG file bytes or `pack()`ed), an array is
    packed, a PIL image is written as PNG (and then read as its file would be: first channel, palette index)."""
    if isinstance(mask, (bytes, bytearray, memoryview)):
        return bytes(mask)
    if isinstance(mask, Image.Image):
        buffer = io.BytesIO()
        mask.save(buffer, format="PNG")
        return buffer.getvalue()
    return pack(mask)


def _masks(values):
    return None if values is None else [as_bytes(v) for v in values]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Segmentation(evaluate.Metric):
    # What users hold (uint8 or bool arrays, PIL images, PNG bytes) becomes bytes before evaluate's Arrow
    # encoding, which would otherwise reject arrays; masks never go through Arrow image encoding.
    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one image's prediction and reference (masks (arrays, PIL images or bytes)).
        """
        return super().add(prediction=None if prediction is None else as_bytes(prediction),
                           reference=None if reference is None else as_bytes(reference), **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references (masks (arrays, PIL images or bytes)).
        """
        return super().add_batch(predictions=_masks(predictions), references=_masks(references), **kwargs)

    def compute(self, *, predictions=None, references=None, **kwargs):
        """The scores of what was added and of `predictions` / `references` (masks (arrays, PIL images or bytes)).
        """
        return super().compute(predictions=_masks(predictions), references=_masks(references), **kwargs)

    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("binary"),
                                        "references": datasets.Value("binary")}),
            codebase_urls=["https://github.com/POSTECH-CVLab/UACANet"],
        )

    def _compute(self, predictions, references, num_proc=None, convention="uacanet"):
        if convention not in CONVENTIONS:
            raise ValueError(f"convention={convention!r}: choose one of {', '.join(CONVENTIONS)}")
        return summarize(per_image(predictions, references, num_proc, convention))
