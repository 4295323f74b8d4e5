"""medsets.metrics.segmentation: the BIS5k toolkit (fast, histogram-based) against a slow reference.

The reference (medsets.metrics.segmentation.reference) is written straight from the toolkit's definitions,
independently of the module: a Python loop over the 256 thresholds with boolean arrays, plain numpy for the
rest. It is slow, so it only sees small masks.
"""

import io

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from medsets import metric_path
from medsets.metrics.segmentation import segmentation as seg
from medsets.metrics.segmentation.reference import KEYS, ref_image, ref_toolkit


def blob_gt(rng, shape, fraction=0.35):
    """A ground truth made of smooth random blobs, `fraction` of the pixels, as 0/255 uint8."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=max(2, min(shape) / 8))
    return np.where(field > np.quantile(field, 1 - fraction), 255, 0).astype(np.uint8)


def grey_prediction(rng, gt):
    """A noisy grey-level prediction of `gt` that also holds exact zeros and 255s."""
    noisy = ndimage.gaussian_filter(gt / 255 + 0.6 * rng.standard_normal(gt.shape), sigma=1.5)
    return (np.clip(noisy, 0, 1) * 255).round().astype(np.uint8)


def every_level(shape):
    """Each grey level 0..255 in turn: the levels k whose k / 255 sits an ulp under linspace's value."""
    return (np.arange(np.prod(shape)) % 256).reshape(shape).astype(np.uint8)


def u8(mask):
    return np.where(mask, 255, 0).astype(np.uint8)


def cases():
    rng = np.random.default_rng(20240501)
    out = {}
    for shape in [(40, 40), (37, 53), (64, 31), (25, 70)]:
        gt = blob_gt(rng, shape)
        out[f"grey-{shape[0]}x{shape[1]}"] = (grey_prediction(rng, gt), gt)
    gt = blob_gt(rng, (33, 45))
    out["binary"] = (grey_prediction(rng, gt) > 127, gt)  # bool prediction: True means 255
    out["empty-gt"] = (grey_prediction(rng, np.zeros((30, 41), np.uint8)), np.zeros((30, 41), np.uint8))
    out["full-gt"] = (grey_prediction(rng, np.full((29, 36), 255, np.uint8)), np.full((29, 36), 255, np.uint8))
    out["empty-pred"] = (np.zeros(gt.shape, np.uint8), gt)
    out["perfect"] = (gt.copy(), gt)
    out["constant"] = (np.full(gt.shape, 77, np.uint8), gt)
    out["every-level"] = (every_level((48, 48)), blob_gt(rng, (48, 48)))
    edge = np.zeros((20, 30), np.uint8)
    edge[4:15, 0] = 255  # centroid in column 0: the two left quadrants are empty
    out["left-column-gt"] = (grey_prediction(rng, edge), edge)
    dot = np.zeros((21, 19), np.uint8)
    dot[7, 11] = 255  # one foreground pixel: std of a single value
    out["one-pixel-gt"] = (grey_prediction(rng, dot), dot)
    dots = np.zeros((30, 30), np.uint8)
    dots[2:6, 2:6] = dots[20:24, 20:24] = 255
    # Two S-measure quadrants hold no foreground. With a constant prediction their SSIM takes the
    # "alpha == 0 and beta == 0" branch only if the float mean of the constant comes out exact: it
    # does for 51/255 (score 1) and not for 77/255 (score 0). The fast code must follow the floats.
    out["constant-51-dots"] = (np.full(dots.shape, 51, np.uint8), dots)
    out["constant-77-dots"] = (np.full(dots.shape, 77, np.uint8), dots)
    return out


CASES = cases()


# -- fast against slow ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(CASES))
def test_fast_matches_reference(name):
    pred, gt = CASES[name]
    expected = ref_toolkit([(seg.as_grey(pred), gt)])
    got = seg.summarize([seg.toolkit_scores(pred, gt)])
    assert list(got) == KEYS
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


def test_fast_matches_reference_over_many_images():
    names = ["grey-40x40", "grey-37x53", "binary", "empty-gt", "full-gt", "every-level", "constant"]
    pairs = [CASES[n] for n in names]
    expected = ref_toolkit([(seg.as_grey(p), g) for p, g in pairs])
    got = seg.summarize(seg.toolkit_scores(p, g) for p, g in pairs)
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key


def test_threshold_table_keeps_the_ulp_quirk():
    # The naive table "k >= 255 - i" is wrong for many levels: linspace(1, 0, 256)[255 - k] > k / 255.
    naive = np.arange(256)[:, None] >= 255 - np.arange(256)[None, :]
    assert (seg.ABOVE.astype(bool) != naive).any()
    assert not seg.ABOVE[4, 255 - 4]  # 4/255 is not >= linspace's value for it
    assert seg.ABOVE[:, -1].all()  # t = 0: every pixel is positive


def test_per_image_curves_match_reference():
    pred, gt = CASES["every-level"]
    expected, got = ref_image(pred, gt), seg.toolkit_scores(pred, gt)
    for name in ["dice", "iou", "sen", "spe", "em"]:
        np.testing.assert_allclose(got[name], expected[name], rtol=0, atol=1e-12, err_msg=name)


# -- hand-checked values -------------------------------------------------------------------------------
def test_perfect_binary_prediction():
    gt = np.zeros((40, 50), bool)
    gt[10:30, 5:25] = True
    n, n_fg = gt.size, gt.sum()
    got = seg.summarize([seg.toolkit_scores(gt, gt)])
    # P = pred >= t is exactly G for the first 255 thresholds (1 >= t > 0), but at t = 0 every pixel
    # is positive: there Dice = 2|G| / (N + |G|), IoU = |G| / N, specificity 0, E-measure 1/4 per pixel.
    assert got["maxDic"] == got["maxIoU"] == got["maxSen"] == got["maxSpe"] == 1
    assert got["meanDic"] == pytest.approx((255 + 2 * n_fg / (n + n_fg)) / 256, abs=1e-12)
    assert got["meanIoU"] == pytest.approx((255 + n_fg / n) / 256, abs=1e-12)
    assert got["meanSen"] == 1
    assert got["meanSpe"] == pytest.approx(255 / 256, abs=1e-12)
    # E-measure divides by N - 1: a perfect map scores N / (N - 1), slightly above 1.
    assert got["maxEm"] == pytest.approx(n / (n - 1), abs=1e-12)
    assert got["meanEm"] == pytest.approx((255 * n / (n - 1) + n / 4 / (n - 1)) / 256, abs=1e-12)
    assert got["mae"] == 0
    assert got["Sm"] == pytest.approx(1, abs=1e-12)
    assert got["wFm"] == pytest.approx(1, abs=1e-12)


def test_empty_gt_and_empty_prediction():
    empty = np.zeros((16, 24), np.uint8)
    n = empty.size
    got = seg.summarize([seg.toolkit_scores(empty, empty)])
    for key in ["meanDic", "maxDic", "meanIoU", "meanSen", "meanSpe", "maxSpe"]:
        assert got[key] == 0, key  # TP = 0 everywhere, so all four are 0 by rule
    assert got["Sm"] == 1
    assert got["mae"] == 0
    assert got["wFm"] == 0  # documented choice: no foreground, no weighted F-measure
    # 1 - P is 1 everywhere except at t = 0, where every pixel is predicted positive.
    assert got["meanEm"] == pytest.approx(255 / 256 * n / (n - 1), abs=1e-12)


def test_constant_map_s_measure_by_hand():
    gt = np.zeros((10, 10), np.uint8)
    full = np.full((10, 10), 255, np.uint8)
    assert seg.toolkit_scores(np.full((10, 10), 51, np.uint8), gt)["Sm"] == pytest.approx(0.8)  # 1 - mean
    assert seg.toolkit_scores(np.full((10, 10), 51, np.uint8), full)["Sm"] == pytest.approx(0.2)  # mean


# -- inputs --------------------------------------------------------------------------------------------
def png_bytes(array, mode="L"):
    buffer = io.BytesIO()
    image = Image.fromarray(array)
    if mode != image.mode:
        image = image.convert(mode)
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_pack_round_trip():
    for array in [np.arange(12, dtype=np.uint8).reshape(3, 4), np.eye(5, 7, dtype=bool)]:
        back = seg.unpack(seg.pack(array))
        assert back.dtype == array.dtype and back.shape == array.shape and (back == array).all()
    with pytest.raises(ValueError, match="2-D uint8 or bool"):
        seg.pack(np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="expected 16"):
        seg.unpack(seg.pack(np.zeros((4, 4), np.uint8))[:-1])


def test_decode_png_forms():
    pred, gt = CASES["grey-37x53"]
    assert (seg.decode(png_bytes(pred)) == pred).all()
    assert (seg.decode(png_bytes(pred, "RGB")) == pred).all()  # first channel of RGB
    assert (seg.decode(png_bytes(gt > 0, "1")) == (gt > 0)).all()  # 1-bit PNG
    palette = Image.fromarray((gt > 0).astype(np.uint8))
    palette.putpalette([0, 0, 0, 255, 0, 0])  # indices 0/1, as many mask tools write them
    buffer = io.BytesIO()
    palette.save(buffer, format="PNG")
    indices = seg.decode(buffer.getvalue())
    assert (indices == (gt > 0)).all() and (seg.as_grey(indices) == gt).all()  # a 0/1 mask: 1 -> 255
    with pytest.raises(ValueError, match="PNG bytes or pack"):
        seg.decode(b"GIF89a...")


def test_binary_forms_agree():
    pred, gt = CASES["grey-40x40"]
    binary = pred > 127
    expected = seg.toolkit_scores(u8(binary), gt)
    for form in [binary, binary.astype(np.uint8), seg.decode(png_bytes(binary.astype(np.uint8)))]:
        got = seg.toolkit_scores(form, gt > 0)  # 0/1 or bool masks on both sides
        for key in ["dice", "em"]:
            np.testing.assert_array_equal(got[key], expected[key])
        assert got["Sm"] == expected["Sm"] and got["wFm"] == expected["wFm"]


def test_bad_arrays():
    gt = np.zeros((8, 8), np.uint8)
    with pytest.raises(ValueError, match=r"\(8, 9\).*\(8, 8\)"):
        seg.toolkit_scores(np.zeros((8, 9), np.uint8), gt)
    with pytest.raises(ValueError, match="float"):
        seg.toolkit_scores(np.zeros((8, 8), np.float32), gt)
    with pytest.raises(ValueError, match="0-255"):
        seg.toolkit_scores(np.full((8, 8), 300, np.int32), gt)


# -- the evaluate interface ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def metric_module(tmp_path_factory):
    import evaluate
    cache = tmp_path_factory.mktemp("metric-cache")
    return lambda: evaluate.load(metric_path("segmentation"), cache_dir=str(cache))


def test_evaluate_png_and_packed_match_toolkit_scores(metric_module):
    names = ["grey-40x40", "grey-64x31", "binary", "empty-gt", "every-level"]
    pairs = [CASES[n] for n in names]
    expected = seg.summarize(seg.toolkit_scores(p, g) for p, g in pairs)

    metric = metric_module()
    assert "Structure-measure" in metric.citation and "Enhanced-alignment" in metric.citation
    metric.add_batch(predictions=[png_bytes(seg.as_grey(p)) for p, _ in pairs[:2]],
                     references=[png_bytes(g) for _, g in pairs[:2]])
    metric.add_batch(predictions=[png_bytes(seg.as_grey(p)) for p, _ in pairs[2:]],
                     references=[png_bytes(g) for _, g in pairs[2:]])
    from_png = metric.compute()

    metric = metric_module()
    from_packed = metric.compute(predictions=[seg.pack(p) for p, _ in pairs],
                                 references=[seg.pack(g) for _, g in pairs], num_proc=2)
    assert list(from_png) == list(from_packed) == KEYS
    for key in KEYS:
        assert isinstance(from_png[key], float)
        assert from_png[key] == pytest.approx(expected[key], abs=1e-12), key
        assert from_packed[key] == pytest.approx(expected[key], abs=1e-12), key


def test_evaluate_size_mismatch_is_a_clear_error(metric_module):
    metric = metric_module()
    good = seg.pack(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=r"pair 1: prediction shape \(8, 9\) differs from ground-truth shape \(8, 8\)"):
        metric.compute(predictions=[good, seg.pack(np.zeros((8, 9), np.uint8))], references=[good, good])


# -- UACANet's conventions where they matter: the border, the object score, its NaNs ------------------------
@pytest.mark.parametrize("seed", range(40))
def test_blobs_at_the_border_equal_uacanet_formulas(seed):
    """Ground truth touching the image's edges, where the weighted F-measure's convolution reads beyond the
    border (UACANet: the edge pixel repeated) and the centroid split leaves thin quadrants."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((40, 56), np.uint8)
    top, left = int(rng.integers(0, 3)), int(rng.integers(0, 3))
    gt[top:top + int(rng.integers(2, 20)), left:left + int(rng.integers(2, 30))] = 255
    if seed % 2:
        gt = gt[::-1, ::-1].copy()  # the bottom-right corner too
    pred = grey_prediction(rng, gt)
    expected, got = ref_toolkit([(pred, gt)]), seg.summarize([seg.toolkit_scores(pred, gt)])
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key


def test_object_score_uses_the_population_deviation():
    gt = np.zeros((8, 8), bool)
    gt[2:6, 2:6] = True
    pred = np.where(gt, np.arange(64).reshape(8, 8) % 5 * 50, 30).astype(np.uint8)
    values = pred[gt] / 255
    m, s = values.mean(), values.std()  # ddof 0, as UACANet's np.std
    assert seg._object_score(*[np.bincount(pred[gt], minlength=256).astype(float)], seg.LEVELS) == pytest.approx(
        2 * m / (m * m + 1 + s + np.finfo(float).eps), abs=1e-15)


def test_where_uacanet_gives_nan_the_scores_say_so():
    rng = np.random.default_rng(3)
    pred = rng.integers(0, 256, (16, 16)).astype(np.uint8)
    empty, full, corner = np.zeros((16, 16), bool), np.ones((16, 16), bool), np.zeros((16, 16), bool)
    corner[0, :3] = True  # centroid on the first row: a quadrant with no pixels
    middle = np.zeros((16, 16), bool)
    middle[5:9, 5:9] = True
    scored = [seg.toolkit_scores(pred, gt) for gt in (empty, full, corner, middle)]
    assert [s["undefined_in_reference"] for s in scored] == [["wFm"], ["meanSpe", "maxSpe"], ["Sm"], []]
    assert scored[0]["wFm"] == 0 and not scored[1]["spe"].any() and 0 <= scored[2]["Sm"] <= 1
    assert seg.undefined_in_reference(scored) == {"wFm": 1, "meanSpe": 1, "maxSpe": 1, "Sm": 1}


# -- convention="pysodmetrics": equal to the package ------------------------------------------------------
def sod_case(rng, index, shape=(40, 52)):
    kind = index % 6
    gt = blob_gt(rng, shape, fraction=float(rng.uniform(0.05, 0.6)))
    if kind == 1:  # touching an edge, centroid near the last row or column
        gt[:] = 0
        gt[-int(rng.integers(1, 4)):, -int(rng.integers(1, 20)):] = 255
    if kind == 2:
        gt[:] = 0
    if kind == 3:
        gt[:] = 255
    pred = grey_prediction(rng, gt)
    if kind == 4:
        pred = np.where(pred > 127, 255, 0).astype(np.uint8)
    if kind == 5:  # a map that does not span 0-255: the package stretches it (mapminmax)
        pred = (pred // 3 + 40).astype(np.uint8)
    return pred, gt


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the package's own NaN on empty quadrants
def test_pysodmetrics_convention_equals_the_package():
    import py_sod_metrics as sod

    rng = np.random.default_rng(11)
    worst = {"Sm": 0.0, "wFm": 0.0, "mae": 0.0, "em": 0.0}
    nan_flagged = 0
    for index in range(300):
        pred, gt = sod_case(rng, index)
        ours = seg.toolkit_scores(pred, gt, convention="pysodmetrics")
        sm, wfm, mae, em = sod.Smeasure(), sod.WeightedFmeasure(), sod.MAE(), sod.Emeasure()
        for metric in (sm, wfm, mae, em):
            metric.step(pred=pred, gt=gt)
        theirs = {"Sm": sm.get_results()["sm"], "wFm": wfm.get_results()["wfm"], "mae": mae.get_results()["mae"],
                  "em": em.get_results()["em"]["curve"]}
        if np.isnan(theirs["Sm"]):  # an empty quadrant: the package's SSIM of no pixels
            assert ours["undefined_in_reference"] == ["Sm"] and np.isfinite(ours["Sm"])
            nan_flagged += 1
            theirs["Sm"] = ours["Sm"]
        for key in worst:
            worst[key] = max(worst[key], float(np.max(np.abs(np.asarray(theirs[key]) - np.asarray(ours[key])))))
    assert all(value < 1e-9 for value in worst.values()), worst
    assert nan_flagged > 0  # the edge case was exercised


def test_the_conventions_differ_where_their_code_does():
    gt = np.zeros((20, 20), np.uint8)
    gt[5:12, 6:15] = 255
    pred = np.clip(gt.astype(int) // 2 + np.arange(20)[None, :] * 3, 0, 255).astype(np.uint8)
    uacanet, sod = seg.toolkit_scores(pred, gt), seg.toolkit_scores(pred, gt, convention="pysodmetrics")
    assert uacanet["Sm"] != pytest.approx(sod["Sm"], abs=1e-6)  # deviation and split differ
    assert uacanet["mae"] != pytest.approx(sod["mae"], abs=1e-6)  # the package stretches the map first
    with pytest.raises(ValueError, match="convention='matlab'"):
        seg.toolkit_scores(pred, gt, convention="matlab")


def test_uacanet_convention_equals_its_formulas_on_hundreds_of_cases():
    """The slow transcription of UACANet's formulas (reference.py) against the fast module: borders, empty and
    full ground truths, binary, grey and narrow-range predictions (sod_case), every column to 1e-9."""
    rng = np.random.default_rng(5)
    pairs = [sod_case(rng, index, shape=(24, 30)) for index in range(240)]
    expected = ref_toolkit(pairs)
    got = seg.summarize(seg.toolkit_scores(p, g) for p, g in pairs)
    for key in KEYS:
        assert got[key] == pytest.approx(expected[key], abs=1e-9), key
    for pred, gt in pairs[:60]:
        one, ref = seg.summarize([seg.toolkit_scores(pred, gt)]), ref_toolkit([(pred, gt)])
        assert all(one[key] == pytest.approx(ref[key], abs=1e-9) for key in KEYS)


def test_the_evaluate_module_takes_arrays_pil_images_and_png_bytes(tmp_path):
    import evaluate

    metric = evaluate.load(metric_path("segmentation"), cache_dir=str(tmp_path))
    rng = np.random.default_rng(2)
    pairs = [(grey_prediction(rng, gt), gt) for gt in (blob_gt(rng, (32, 40)) for _ in range(4))]
    expected = seg.summarize(seg.toolkit_scores(p, g) for p, g in pairs)
    forms = [(pairs[0][0], pairs[0][1] > 127),                                   # uint8 and bool arrays
             (Image.fromarray(pairs[1][0]), Image.fromarray(pairs[1][1])),       # PIL images
             (png_bytes(pairs[2][0]), png_bytes(pairs[2][1])),                   # PNG file bytes
             (seg.pack(pairs[3][0]), pairs[3][1])]                               # packed bytes and an array
    got = metric.compute(predictions=[p for p, _ in forms], references=[g for _, g in forms])
    assert got == pytest.approx(expected, abs=1e-12)
    for p, g in forms:  # one at a time as well
        metric.add(prediction=p, reference=g)
    assert metric.compute() == pytest.approx(expected, abs=1e-12)
