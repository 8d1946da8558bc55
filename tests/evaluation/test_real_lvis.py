"""Real LVIS v0.5 records (lvis-api's 100-image val file, tests/data/README.md): loading,
long-tail statistics and evaluation of result variants against the official LVISEval."""

import copy
import json
import warnings
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
import pytest
from lvis_cases import reference_metrics

from lvisnb.annotations import statistics as analysis
from lvisnb.annotations import validate as data
from lvisnb.annotations.images import image_path, image_relpath
from lvisnb.annotations.tables import read_tables
from lvisnb.evaluation.evaluator import evaluate

REAL = Path(__file__).parents[1] / "fixtures" / "lvis_v0.5_val_100.json"


@pytest.fixture(scope="module")
def real_gt():
    return json.loads(REAL.read_text())


def test_real_file_loads_and_its_long_tail_is_counted(real_gt):
    tables = read_tables(REAL)
    assert len(tables.images) == 100 and len(tables.annotations) == 977
    assert len(tables.categories) == 1230
    assert set(tables.categories["frequency"]) == {"r", "c", "f"}
    per_image = tables.annotations.groupby("image_id").size()
    assert len(per_image) == 93  # 7 images have no annotation
    lvis_gt = data.load_lvis(REAL)
    assert len(lvis_gt.anns) == 977
    report = analysis.long_tail_report(tables)
    assert report.num_images == 100 and report.num_instances == 977
    assert report.fit.categories == 190  # categories annotated in these 100 images
    assert len(report.federated) == 100


def test_real_v05_records_resolve_to_coco_2017_files(real_gt, tmp_path):
    """Real v0.5 records name a COCO 2014 file (``COCO_val2014_...``); the pixels are COCO
    2017's ``val2017/<12-digit id>.jpg``, which ``coco_url`` gives."""
    for image in real_gt["images"]:
        assert image["file_name"].startswith("COCO_val2014_")
        assert image_relpath(image) == f"val2017/{image['id']:012d}.jpg"
    first = next(i for i in real_gt["images"] if i["id"] == 266409)
    assert image_path(first, tmp_path) == tmp_path / "val2017" / "000000266409.jpg"
    tables = read_tables(REAL)
    assert set(tables.images["path"]) == {f"val2017/{i:012d}.jpg" for i in tables.images["id"]}


def test_real_v05_images_load_from_a_coco_2017_tree(real_gt, tmp_path):
    """A dataset over the real file finds its images where COCO 2017 keeps them."""
    from PIL import Image

    from lvisnb.data.dataset import LVISDetection

    dataset = LVISDetection(REAL, tmp_path, skip_empty=False)
    (tmp_path / "val2017").mkdir()
    for index in range(3):
        image = dataset.image_info(index)
        path = tmp_path / "val2017" / f"{image['id']:012d}.jpg"
        Image.new("RGB", (image["width"], image["height"]), (90, 120, 30)).save(path)
        pixels, _ = dataset[index]
        info = dataset.image_info(index)
        assert tuple(pixels.shape) == (3, info["height"], info["width"])


def test_real_val_file_reports_lvis_train_counts_not_its_own(real_gt):
    """The file's ``image_count`` counts its own 100 images (handbag: 4); the per-category
    table reports LVIS v1 train's (handbag: 1,859), v0.5 categories joined by synset."""
    handbag = next(c for c in real_gt["categories"] if c["name"] == "handbag")
    assert handbag["image_count"] == 4
    results = _perfect(real_gt, np.random.default_rng(1))[:20]
    evaluation = evaluate(REAL, results, iou_types=("bbox",), fixed=False)
    row = evaluation.per_category.set_index("name").loc["handbag"]
    assert row["train_image_count"] == 1859 and row["val_images"] == 4
    assert evaluation.info["train_count_source"] == (
        "LVIS v1 train images (v0.5 categories by synset)"
    )
    table = evaluation.per_category
    assert table["train_image_count"].isna().sum() == 79  # v0.5 synsets that v1 dropped


def _perfect(gt: dict, rng) -> list[dict]:
    """Every GT instance found (its polygon as an RLE, its box), scores random."""
    images = {i["id"]: i for i in gt["images"]}
    out = []
    for ann in gt["annotations"]:
        image = images[ann["image_id"]]
        h, w = image["height"], image["width"]
        rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], h, w))
        out.append(
            {
                "image_id": ann["image_id"],
                "category_id": ann["category_id"],
                "score": float(rng.uniform(0.05, 1.0)),
                "bbox": list(ann["bbox"]),
                "segmentation": {"size": [h, w], "counts": rle["counts"].decode()},
            }
        )
    return out


def _variants(gt: dict) -> dict[str, list[dict]]:
    rng = np.random.default_rng(0)
    perfect = _perfect(gt, rng)
    jittered = copy.deepcopy(perfect)
    for record in jittered:
        x, y, w, h = record["bbox"]
        dx, dy = rng.normal(0, 0.1, 2) * (w, h)
        record["bbox"] = [x + dx, y + dy, w, h]
    fewer = [r for i, r in enumerate(perfect) if i % 3]
    negatives = copy.deepcopy(perfect)
    images = {i["id"]: i for i in gt["images"]}
    for record in perfect[::5]:  # a copy on a negative category of its image, if any
        neg = images[record["image_id"]]["neg_category_ids"]
        if neg:
            negatives.append(record | {"category_id": neg[0], "score": 0.99})
    empty = copy.deepcopy(jittered)
    for record in empty[::7]:
        size = record["segmentation"]["size"]
        zero = mask_utils.encode(np.zeros(size, dtype=np.uint8, order="F"))
        record["segmentation"] = {"size": size, "counts": zero["counts"].decode()}
        record["bbox"][2] = 0.0
    ties = copy.deepcopy(jittered)
    for record in ties:
        record["score"] = round(record["score"], 1)
    box_only = [{k: v for k, v in r.items() if k != "segmentation"} for r in jittered]
    mask_only = [{k: v for k, v in r.items() if k != "bbox"} for r in fewer]
    return {
        "perfect": perfect,
        "jittered": jittered,
        "fewer": fewer,
        "negatives": negatives,
        "empty masks": empty,
        "ties": ties,
        "box only": box_only,
        "mask only": mask_only,
    }


@pytest.fixture(scope="module")
def variants(real_gt):
    return _variants(real_gt)


VARIANTS = [
    "perfect",
    "jittered",
    "fewer",
    "negatives",
    "empty masks",
    "ties",
    "box only",
    "mask only",
]


@pytest.fixture(scope="module")
def references(real_gt, variants):
    """The official metrics of each variant and IoU type, computed once."""
    cache = {}

    def reference(variant: str, iou_type: str) -> dict:
        if (variant, iou_type) not in cache:
            cache[variant, iou_type] = reference_metrics(real_gt, variants[variant], iou_type)
        return cache[variant, iou_type]

    return reference


# the lvis backend runs the same official code as the reference: a few variants suffice
CASES = [(v, "fast") for v in VARIANTS] + [(v, "lvis") for v in ("jittered", "empty masks")]


@pytest.mark.parametrize(("variant", "backend"), CASES)
def test_real_file_evaluation_equals_lvis_eval(variants, references, variant, backend):
    results = variants[variant]
    iou_types = ("bbox",) if variant == "box only" else ("bbox", "segm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        got = evaluate(REAL, results, iou_types=iou_types, backend=backend, fixed=False)
    for iou_type in iou_types:
        want = references(variant, iou_type)
        for name, value in want.items():
            assert got.metrics[iou_type][name] == pytest.approx(value, abs=1e-12), (
                variant,
                iou_type,
                name,
            )


def test_real_file_segm_area_box_equals_raw_lvis_eval(real_gt, variants):
    results = copy.deepcopy(variants["negatives"])  # false positives whose box is 3x wider
    for record in results:
        record["bbox"][2] *= 3
    want = reference_metrics(real_gt, results, "segm", segm_area="box")
    default = reference_metrics(real_gt, results, "segm")
    assert want["APs"] != default["APs"]  # the rule matters on real records
    for backend in ("fast", "lvis"):
        got = evaluate(
            REAL, results, iou_types=("segm",), backend=backend, fixed=False, segm_area="box"
        )
        for name, value in want.items():
            assert got.metrics["segm"][name] == pytest.approx(value, abs=1e-12), name


def test_a_train_file_of_another_version_or_vocabulary_is_refused(real_gt, tmp_path):
    """Counts are joined by id: a v1 train file for v0.5 ground truth would give "acorn" the
    count of v1's id 1, "aerosol_can"."""
    from lvisnb.annotations.categories import _raw
    from lvisnb.evaluation.ground_truth import load_ground_truth

    images = [dict(i) for i in real_gt["images"][:1]]
    anns = [
        {
            "id": 1,
            "image_id": images[0]["id"],
            "category_id": 3,
            "bbox": [1, 1, 9, 9],
            "area": 81.0,
            "segmentation": [[1, 1, 10, 1, 10, 10, 1, 10]],
        }
    ]
    v1 = {"images": images, "annotations": anns, "categories": [dict(c) for c in _raw("v1")]}
    for c in v1["categories"]:
        c.pop("train_image_count", None)
    path = tmp_path / "lvis_v1_train.json"
    path.write_text(json.dumps(v1))
    with pytest.raises(ValueError, match=r"is LVIS v1 \(1203 categories\) but LVIS v0.5"):
        load_ground_truth(REAL, train_ann=path)
    few = {"images": images, "annotations": anns, "categories": v1["categories"][:5]}
    path.write_text(json.dumps(few))  # not a whole set, yet ids 1..5 name other categories
    with pytest.raises(ValueError, match="names 5 category id"):
        load_ground_truth(REAL, train_ann=path)


def test_the_train_file_is_an_input_even_when_given_at_load(real_gt, tmp_path):
    from lvisnb.evaluation.ground_truth import load_ground_truth
    from lvisnb.evaluation.report import save_metrics

    train = tmp_path / "train.json"
    train.write_text(REAL.read_text())
    with pytest.warns(UserWarning, match="both the ground truth and the train file"):
        load_ground_truth(train, train_ann=train)
    truth = load_ground_truth(REAL, train_ann=train)
    evaluation = evaluate(truth, _perfect(real_gt, np.random.default_rng(2))[:5], fixed=False)
    assert evaluation.info["train_ann"] == str(train)
    with pytest.raises(FileExistsError, match="is one of the inputs"):
        save_metrics(train, evaluation, overwrite=True)
    assert load_ground_truth(REAL, train_ann="").train_ann is None  # "" is no file


def test_results_with_the_other_versions_ids_are_flagged(real_gt):
    """Perfect results written with LVIS v1 ids score near zero on v0.5 ground truth (the ids
    are legal there); the evaluation warns, naming both versions."""
    from lvisnb.annotations.categories import _raw

    v1_id = {c["synset"]: c["id"] for c in _raw("v1")}
    synset = {c["id"]: c["synset"] for c in real_gt["categories"]}
    perfect = _perfect(real_gt, np.random.default_rng(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right ids: no warning
        right = evaluate(REAL, perfect, iou_types=("bbox",), fixed=False)
    as_v1 = [
        r | {"category_id": v1_id[synset[r["category_id"]]]}
        for r in perfect
        if synset[r["category_id"]] in v1_id
    ]
    with pytest.warns(UserWarning, match=r"look like LVIS v1's, but the ground truth is LVIS v0.5"):
        wrong = evaluate(REAL, as_v1, iou_types=("bbox",), fixed=False)
    assert right.metrics["bbox"]["AP"] == pytest.approx(1.0)
    assert wrong.metrics["bbox"]["AP"] < 0.5
