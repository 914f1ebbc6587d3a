"""core.digits.inside on models and data made here: shapes, the contribution identity, feature maps against a
forward written out by hand, a deterministic map, and a model left as it was."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from core.config import ModelConfig
from core.data import BACKGROUND, Split
from core.digits.inside import (
    DIVERGING_STOPS,
    GAP_RGB,
    SEQUENTIAL_STOPS,
    build_map,
    colour,
    drawing_views,
    first_layer_weights,
    look_inside,
    tile,
)
from core.nets import build_model


def _model(config: ModelConfig, seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    model = build_model(config)
    # BatchNorm statistics away from their defaults, so that a forward that skipped them would differ.
    for layer in model.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.running_mean.uniform_(-0.5, 0.5)
            layer.running_var.uniform_(0.5, 2.0)
    return model.eval()


def _inputs(n: int = 1, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def _split(n: int = 300) -> Split:
    return Split(_inputs(n, seed=2), torch.arange(n) % 10)


@pytest.mark.parametrize("hidden", [7, 37])
def test_mlp_views_have_the_shapes_of_any_hidden_size(hidden):
    model = _model(ModelConfig("mlp", hidden=hidden))
    inside = look_inside(model, _inputs())
    assert inside.logits.shape == (10,) and inside.hidden.shape == inside.contributions.shape == (hidden,)
    assert inside.feature_maps == [] and inside.digit == int(model(_inputs()).argmax())
    assert first_layer_weights(model).shape == (hidden, 28, 28)
    assert torch.equal(first_layer_weights(model)[3].flatten(), model[1].weight[3])  # unit 3's inputs


@pytest.mark.parametrize("channels", [(4,), (4, 6), (16, 32, 64)])
def test_cnn_views_have_the_shapes_of_any_channels(channels):
    model = _model(ModelConfig("cnn", hidden=20, channels=channels))
    inside = look_inside(model, _inputs())
    sides = [28 // 2 ** (i + 1) for i in range(len(channels))]
    assert [tuple(m.shape) for m in inside.feature_maps] == [
        (c, s, s) for c, s in zip(channels, sides, strict=True)
    ]
    assert inside.hidden.shape == (20,) and first_layer_weights(model).shape == (channels[0], 5, 5)


@pytest.mark.parametrize("config", [ModelConfig("mlp", hidden=50), ModelConfig("cnn", hidden=30)])
def test_the_contributions_and_the_bias_add_up_to_the_logit(config):
    model = _model(config)
    for seed in range(5):
        inside = look_inside(model, _inputs(seed=seed))
        logit = float(inside.logits[inside.digit])
        assert float(inside.contributions.sum()) + inside.bias == pytest.approx(logit, abs=1e-5)
        weights = model[-1].weight[inside.digit]
        assert torch.allclose(inside.contributions, inside.hidden * weights)
        assert (inside.hidden >= 0).all()  # after ReLU


def test_cnn_feature_maps_equal_a_forward_written_out_by_hand():
    model = _model(ModelConfig("cnn", channels=(4, 6)))
    x = _inputs()
    expected = []
    for conv, norm in [(model[0], model[1]), (model[4], model[5])]:
        x = F.conv2d(x, conv.weight, padding=conv.kernel_size[0] // 2)
        x = F.batch_norm(x, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
        x = F.max_pool2d(F.relu(x), 2)
        expected.append(x[0])
    inside = look_inside(model, _inputs())
    for got, want in zip(inside.feature_maps, expected, strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_top_units_are_the_strongest_pushes_of_each_sign():
    model = _model(ModelConfig("mlp", hidden=8))
    inside = look_inside(model, _inputs())
    inside.contributions = torch.tensor([0.5, -2.0, 3.0, 0.0, -0.1, 1.0, -1.0, 0.2])
    assert inside.top_units(3) == ([2, 5, 0], [1, 6, 4])
    inside.contributions = torch.tensor([1.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5])
    assert inside.top_units(2) == ([1, 0], [])  # no unit pushed against


def test_the_map_is_the_same_for_a_seed_and_places_its_own_digits_where_they_are():
    model, split = _model(ModelConfig("mlp", hidden=16)), _split()
    first, again, other = (
        build_map(model, split, 100),
        build_map(model, split, 100),
        build_map(model, split, 100, 1),
    )
    assert torch.equal(first.indices, again.indices) and torch.equal(first.points, again.points)
    assert not torch.equal(first.indices, other.indices)
    assert first.points.shape == (100, 2) and len(first.thumbnails) == 100
    assert torch.allclose(first.axes.T @ first.axes, torch.eye(2), atol=1e-5)  # orthonormal directions
    # The principal directions and their shares of the variance, found another way: the eigenvectors
    # of the features' covariance, each pointing where its largest loading is positive.
    centred = (first.features - first.features.mean(0)).double()
    variances, vectors = torch.linalg.eigh(centred.T @ centred)
    top = vectors[:, -2:].flip(1)
    top *= torch.sign(top.gather(0, top.abs().argmax(0, keepdim=True)))
    assert torch.allclose(first.axes.double(), top, atol=1e-4)
    shares = (variances.flip(0)[:2] / variances.sum()).tolist()
    assert first.explained == pytest.approx(shares, rel=1e-4)
    assert first.place(first.features[7]) == pytest.approx(first.points[7].tolist(), abs=1e-4)
    assert first.nearest(first.features[7])[0] == 7  # a digit is its own nearest neighbour
    assert first.thumbnails[0].startswith("data:image/png;base64,")


@pytest.mark.parametrize("config", [ModelConfig("mlp", hidden=12), ModelConfig("cnn", channels=(4, 6))])
def test_looking_inside_leaves_no_gradient_hook_or_change_on_the_model(config):
    model = _model(config)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    embedding = build_map(model, _split(), 50)
    views = drawing_views(model, _inputs(), np.zeros((28, 28)), embedding)
    assert len(views.nearest) == 8 and views.position is not None
    assert all(p.grad is None for p in model.parameters()) and not model.training
    for layer in model.modules():
        assert not (layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks)
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_drawing_views_give_templates_for_an_mlp_and_feature_maps_for_a_cnn():
    ink = np.zeros((28, 28))
    ink[5:20, 13:15] = 1.0
    mlp = drawing_views(_model(ModelConfig("mlp", hidden=12)), _inputs(), ink, None)
    assert len(mlp.templates) == len(mlp.towards + mlp.against) > 0 and mlp.feature_maps == []
    assert mlp.templates[0].shape == (28, 28, 3) and mlp.position is None and mlp.nearest == []
    # The ink is drawn dark over the template: its pixels are darker than the same template without it.
    bare = drawing_views(_model(ModelConfig("mlp", hidden=12)), _inputs(), np.zeros((28, 28)), None)
    assert (mlp.templates[0][5:20, 13:15] < bare.templates[0][5:20, 13:15]).all()
    cnn = drawing_views(_model(ModelConfig("cnn", channels=(4, 6))), _inputs(), ink, None)
    assert cnn.templates == [] and [m.shape[-1] for m in cnn.feature_maps] == [3, 3]


def test_tile_lays_images_out_in_rows_with_gaps():
    images = torch.arange(3 * 2 * 2, dtype=torch.float32).reshape(3, 2, 2)
    mosaic = tile(images, columns=2, gap=-1.0)
    assert mosaic.shape == (5, 5)
    assert mosaic[:2, :2].tolist() == [[0, 1], [2, 3]] and mosaic[:2, 3:].tolist() == [[4, 5], [6, 7]]
    assert mosaic[3:, :2].tolist() == [[8, 9], [10, 11]] and (mosaic[2] == -1).all()  # the gap row
    assert (mosaic[3:, 3:] == -1).all()  # no fourth image


def test_colours_are_diverging_around_zero_or_sequential_from_zero():
    values = torch.tensor([[-4.0, 0.0, 4.0, float("nan")]])
    assert colour(values, diverging=True)[0].tolist() == [*map(list, DIVERGING_STOPS), list(GAP_RGB)]
    ramp = colour(torch.tensor([[0.0, 2.0, 4.0]]), diverging=False)[0].tolist()
    assert ramp == [list(stop) for stop in SEQUENTIAL_STOPS]
    assert colour(torch.full((2, 2), BACKGROUND), diverging=True).shape == (2, 2, 3)
