from dataclasses import replace

import pytest
import torch

import core.data as data_module
from core.config import AUGMENTATIONS
from core.data import (
    BACKGROUND,
    MNIST_MEAN,
    MNIST_STD,
    RAW_FILES,
    DataError,
    MissingDataError,
    batches,
    data_present,
    download_mnist,
    load_mnist,
    split_size,
    standardise,
    to_pixels,
)
from core.digits.augment import _vary_stroke, augment, redraw_with_pen
from core.errors import reason
from core.thinning import thin_to_lines
from tests.conftest import TINY_TEST, TINY_TRAIN


def test_loads_tiny_idx_as_normalised_tensors(tiny_data_dir):
    data = load_mnist(tiny_data_dir, download=False)
    assert data.train.images.shape == (TINY_TRAIN, 1, 28, 28)
    assert data.test.images.shape == (TINY_TEST, 1, 28, 28)
    assert data.train.images.dtype == torch.float32 and data.train.labels.dtype == torch.int64
    # The bar pixels are 255, so the maximum is exactly (1 - mean) / std.
    assert data.train.images.max().item() == pytest.approx((1 - MNIST_MEAN) / MNIST_STD, abs=1e-5)
    assert set(data.train.labels.tolist()) == set(range(10))


def _rows(split) -> set[bytes]:
    """Each image as bytes: the tiny set's images are noise, so no two are alike."""
    return {image.numpy().tobytes() for image in split.images}


def test_validation_split_is_held_out_disjoint_and_seeded(tiny_data_dir):
    a = load_mnist(tiny_data_dir, download=False, val_size=100, seed=3)
    b = load_mnist(tiny_data_dir, download=False, val_size=100, seed=3)
    other = load_mnist(tiny_data_dir, download=False, val_size=100, seed=4)
    assert len(a.val) == 100 and len(a.train) == TINY_TRAIN - 100
    assert len(_rows(a.val) | _rows(a.train)) == TINY_TRAIN  # together all of them, none twice
    assert _rows(a.val) == _rows(b.val) and _rows(a.val) != _rows(other.val)


def test_data_dir_comes_from_env(tiny_data_dir, monkeypatch):
    monkeypatch.setenv("MNIST_DATA_DIR", str(tiny_data_dir))
    assert data_present()
    assert len(load_mnist(download=False).test) == TINY_TEST


def test_missing_data_names_the_four_files_and_the_folder(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    # Two mirrors on a closed local port: the real download path runs and fails at once, twice alike.
    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/", "http://127.0.0.1:9/"])
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MissingDataError) as info:
        load_mnist("nowhere", download=True)
    message = str(info.value)
    assert all(name in message for name in RAW_FILES)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in message  # absolute, though asked relatively
    assert "MNIST_DATA_DIR" in message and "\n" not in message
    assert message.count(info.value.why) == 1 and "; " not in info.value.why  # the same failure, once
    assert info.value.why.startswith("no connection to the internet")
    assert not (tmp_path / "nowhere").exists()  # no empty folders left behind


@pytest.mark.parametrize(
    "failure", [ImportError("cannot import name 'MNIST'"), PermissionError(13, "denied")]
)
def test_any_download_failure_is_one_message_saying_why(tmp_path, monkeypatch, failure):
    def fetch(*_):
        raise failure

    monkeypatch.setattr(data_module, "_fetch_archive", fetch)
    with pytest.raises(MissingDataError) as info:
        download_mnist(tmp_path / "here")
    assert info.value.why == reason(failure) and "\n" not in str(info.value)
    assert not (tmp_path / "here").exists()  # no empty folders left behind


def test_missing_data_without_downloads_says_so_in_one_line(tmp_path):
    with pytest.raises(MissingDataError) as info:
        load_mnist(tmp_path, download=False)
    assert info.value.why is None and "could not be downloaded" not in str(info.value)
    assert str(tmp_path / "MNIST" / "raw") in str(info.value) and "\n" not in str(info.value)


def test_download_reports_progress_per_file(offline_mirror, tmp_path):
    progress = []
    download_mnist(tmp_path, progress=lambda done, total: progress.append((done, total)))
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert [url.rsplit("/", 1)[1] for url in offline_mirror] == [f"{name}.gz" for name in RAW_FILES]
    assert len(load_mnist(tmp_path, download=False).test) == TINY_TEST
    download_mnist(tmp_path)  # present files are not fetched again
    assert len(offline_mirror) == len(RAW_FILES)


def test_damaged_file_is_reported(tiny_data_dir, tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in RAW_FILES:
        (raw / name).write_bytes((tiny_data_dir / "MNIST" / "raw" / name).read_bytes())
    train_images = raw / "train-images-idx3-ubyte"
    train_images.write_bytes(train_images.read_bytes()[:1000])
    with pytest.raises(DataError, match="damaged"):
        load_mnist(tmp_path, download=False)


def test_shuffled_batches_cover_every_sample_once(tiny_data_dir):
    split = load_mnist(tiny_data_dir, download=False).test
    seen = [labels for _, labels in batches(split, 64, torch.Generator().manual_seed(0))]
    assert [len(b) for b in seen] == [64, 64, 64, 8]
    assert sorted(torch.cat(seen).tolist()) == sorted(split.labels.tolist())
    assert not torch.equal(torch.cat(seen), split.labels)  # actually shuffled


def test_augment_changes_its_share_of_the_batch_and_keeps_background_and_ink():
    images = _bar_images()
    ranges = AUGMENTATIONS["strong"]
    out = augment(images, torch.Generator().manual_seed(0), ranges)
    changed = round(64 * ranges.share)
    assert out.shape == images.shape and 0 < changed < 64
    assert all(not torch.equal(out[i], images[i]) for i in range(changed))
    assert torch.equal(out[changed:], images[changed:])
    # The corners stay empty and each image keeps ink near its original amount.
    assert torch.allclose(out[:, :, 0, 0], torch.full((64, 1), BACKGROUND), atol=1e-5)
    ink_ratio = (out > 0).flatten(1).sum(1).float() / (images > 0).flatten(1).sum(1)
    assert ink_ratio.min() > 0.3 and ink_ratio.max() < 3.0


def _bar_images(n: int = 64) -> torch.Tensor:
    images = torch.full((n, 1, 28, 28), BACKGROUND)
    images[:, :, 10:18, 12:16] = 2.0
    return images


def test_thinning_leaves_a_line_one_pixel_thick_as_long_as_the_stroke():
    mask = torch.zeros(1, 1, 56, 56)
    mask[:, :, 20:29, 8:48] = 1  # a bar 9 px thick, 40 px long
    line = thin_to_lines(mask)[0, 0]
    thickness = line.sum(0)[line.sum(0) > 0]
    assert thickness.max() == 1 and len(thickness) >= 30
    assert line[:20].sum() == 0 and line[29:].sum() == 0  # inside the bar


@pytest.mark.parametrize("steps", [1, 2, 3])
def test_a_redrawn_stroke_has_the_pens_width_whatever_its_width_was(steps):
    strokes = torch.zeros(2, 1, 28, 28)
    strokes[0, :, 6:22, 13:15] = 1  # an upright stroke 2 px wide ...
    strokes[1, :, 6:22, 11:17] = 1  # ... and one 6 px wide
    redrawn = to_pixels(redraw_with_pen(standardise(strokes), torch.full((2,), steps)))
    width = redrawn[:, 0, 14].sum(1)  # ink across the middle row, px
    assert torch.allclose(width, torch.full((2,), steps + 0.5), atol=0.3), width  # (2 steps + 1) / 2


def test_the_pen_augmentation_redraws_its_share_of_the_batch():
    images = _bar_images()
    ranges = replace(AUGMENTATIONS["pen"], share=0.0)  # re-drawn, not warped
    out = augment(images, torch.Generator().manual_seed(0), ranges)
    redrawn = [not torch.equal(out[i], images[i]) for i in range(64)]
    assert 16 < sum(redrawn) < 48  # about pen_share = half
    assert (to_pixels(out) > 0.5).flatten(1).sum(1).min() > 0  # every digit keeps its stroke


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.cuda
@needs_cuda
def test_stroke_change_on_a_gpu_matches_the_cpu():
    # The GPU masks where the CPU indexes the picked images; the images must come out the same.
    images, pick = _bar_images(), torch.rand(64, generator=torch.Generator().manual_seed(0))
    on_cpu = _vary_stroke(images, pick, 0.5)
    on_gpu = _vary_stroke(images.cuda(), pick.cuda(), 0.5).cpu()
    assert not torch.equal(on_cpu, images) and torch.allclose(on_gpu, on_cpu, atol=1e-6)


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("strength", ["strong", "pen"])
def test_augmenting_on_a_gpu_never_waits_for_it(strength):
    # A sync per batch (nonzero, item) would stall the GPU between steps.
    images, generator = _bar_images().cuda(), torch.Generator("cuda").manual_seed(0)
    torch.cuda.set_sync_debug_mode("error")
    try:
        out = augment(images, generator, AUGMENTATIONS[strength])
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert out.shape == images.shape


def test_split_sizes_come_from_the_idx_headers(tiny_data_dir):
    assert split_size(True, tiny_data_dir) == TINY_TRAIN and split_size(False, tiny_data_dir) == TINY_TEST


def test_standardise_and_to_pixels_are_inverse():
    pixels = torch.linspace(0, 1, 11)
    assert torch.allclose(to_pixels(standardise(pixels)), pixels, atol=1e-6)
    assert standardise(torch.tensor(0.0)).item() == pytest.approx(BACKGROUND)


def test_a_mirror_that_fails_gives_way_to_the_next(offline_mirror, tmp_path, monkeypatch):
    from torchvision.datasets import MNIST
    from torchvision.datasets import utils as tv_utils

    serve = tv_utils.download_and_extract_archive
    first = MNIST.mirrors[0]

    def first_mirror_down(url, *args, **kwargs):
        if url.startswith(first):
            raise OSError("connection refused")
        return serve(url, *args, **kwargs)

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", first_mirror_down)
    download_mnist(tmp_path)
    assert len(load_mnist(tmp_path, download=False).test) == TINY_TEST
    assert len(offline_mirror) == len(RAW_FILES)  # each file from the second mirror


@pytest.mark.parametrize("val_size", [-1, TINY_TRAIN, TINY_TRAIN + 1])
def test_a_validation_split_must_leave_training_images(tiny_data_dir, val_size):
    with pytest.raises(ValueError, match=f"val_size must be between 1 and {TINY_TRAIN - 1}"):
        load_mnist(tiny_data_dir, download=False, val_size=val_size)
