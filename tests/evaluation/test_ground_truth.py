"""Training counts reported beside per-category AP (issue: a val file's ``image_count``
counts val images)."""

import json

from lvisnb.evaluation.ground_truth import load_ground_truth, train_image_counts


def _file(tmp_path, name, categories, annotations):
    path = tmp_path / name
    images = [
        {
            "id": i,
            "height": 10,
            "width": 10,
            "coco_url": f"http://x/train2017/{i}.jpg",
            "neg_category_ids": [],
            "not_exhaustive_category_ids": [],
        }
        for i in (1, 2, 3)
    ]
    anns = [
        {
            "id": n + 1,
            "image_id": i,
            "category_id": c,
            "bbox": [0, 0, 2, 2],
            "area": 4.0,
            "segmentation": [[0, 0, 2, 0, 2, 2, 0, 2]],
        }
        for n, (i, c) in enumerate(annotations)
    ]
    path.write_text(json.dumps({"images": images, "categories": categories, "annotations": anns}))
    return path


def _category(category_id, image_count):
    return {
        "id": category_id,
        "name": f"c{category_id}",
        "synset": f"c{category_id}.n.01",
        "frequency": "r",
        "image_count": image_count,
    }


def test_counts_from_a_train_file(tmp_path):
    # category 1: images 1, 2 (twice on image 1); 2: listed, no annotation; 3: not in train
    train = _file(
        tmp_path, "train.json", [_category(1, 99), _category(2, 99)], [(1, 1), (1, 1), (2, 1)]
    )
    records = [_category(1, 7), _category(2, 7), _category(3, 7)]
    counts, source = train_image_counts(records, train)
    assert counts.tolist() == [2, 0, -1]
    assert source == "training images (train.json)"


def test_a_file_of_its_own_reports_unknown_not_its_image_count(tmp_path):
    val = _file(tmp_path, "val.json", [_category(1, 500), _category(2, 500)], [(1, 1), (3, 1)])
    truth = load_ground_truth(val)
    assert truth.train_image_count.tolist() == [-1, -1]
    assert truth.train_count_source == "unknown (no train file given)"
    assert truth.image_count.tolist() == [2, 0]
    train = _file(tmp_path, "train.json", [_category(1, 0), _category(2, 0)], [(1, 2)])
    again = load_ground_truth(truth, train_ann=train)
    assert again.train_image_count.tolist() == [0, 1] and again.image_count.tolist() == [2, 0]
