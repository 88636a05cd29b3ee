import time

from convbench.data import DATASETS, dataset_info

KEYS = {"name", "description", "classes", "image_shape", "train_size", "test_size", "found",
        "location", "how_to_get"}


def test_every_source_is_listed_with_all_keys():
    rows = dataset_info()
    assert [r["name"] for r in rows] == DATASETS.names()
    assert {"fashion-mnist", "mnist", "cifar10", "cifar100", "digits", "folder",
            "synthetic"} <= set(DATASETS.names())
    for row in rows:
        assert set(row) == KEYS and isinstance(row["how_to_get"], str)
    by = {r["name"]: r for r in rows}
    assert by["digits"]["found"] and by["synthetic"]["found"]
    assert not by["mnist"]["found"] and by["mnist"]["location"] is None
    assert by["cifar10"]["image_shape"] == (3, 32, 32) and by["cifar10"]["classes"] == 10


def test_presence_only_and_fast(idx_dir, image_folder):
    start = time.perf_counter()
    by = {r["name"]: r for r in dataset_info(str(idx_dir))}
    assert time.perf_counter() - start < 1.0  # no data set is read
    assert by["mnist"]["found"] and by["mnist"]["location"] == str(idx_dir)
    folder = {r["name"]: r for r in dataset_info(str(image_folder))}["folder"]
    assert folder["found"] and folder["classes"] == 3


def test_corrupt_files_still_count_as_present(idx_dir):
    # Presence is all dataset_info checks; reading (and failing) is load_data's job.
    (idx_dir / "train-images-idx3-ubyte.gz").write_bytes(b"garbage")
    assert {r["name"]: r for r in dataset_info(str(idx_dir))}["mnist"]["found"]
