import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.config import ModelConfig
from core.data import BACKGROUND
from core.digits.predict import SALIENCY_STEPS, integrated_gradients, predict, predict_batch, saliency
from core.images import MAX_FILE_BYTES, ImageError, open_image
from core.nets import build_model
from core.preprocess import DASH, DIGIT_BOX, DOT, preprocess, to_ink
from tests.drawings import encode, pen, seven

DESK = (70, 50, 35)


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference of two 28x28 inputs, up to a one-pixel shift: centring moves a digit by
    whole pixels, as MNIST's did, so a centre of mass near a half pixel may land either way."""
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return min(float(np.abs(np.roll(a, shift, (0, 1)) - b).mean()) for shift in shifts)


def test_output_follows_the_mnist_recipe():
    out = preprocess(seven(box=(10, 10, 90, 120), width=6))  # small, in the top-left corner
    assert not out.blank and out.tensor.shape == (1, 1, 28, 28)
    ys, xs = np.nonzero(out.image28 > 0.05)
    assert ys.max() - ys.min() + 1 <= DIGIT_BOX + 1  # longer side scaled to the 20 px box
    mass = out.image28 / out.image28.sum()
    cy, cx = (mass.sum(1) * np.arange(28)).sum(), (mass.sum(0) * np.arange(28)).sum()
    # MNIST's centres of mass lie at pixel (14, 14) (its test set: 13.99 / 14.01), reached by whole pixels.
    assert abs(cy - 14.0) <= 0.5 and abs(cx - 14.0) <= 0.5
    assert set(out.stages) >= {"ink", "cleaned", "cropped", "mnist"}


@pytest.mark.parametrize(
    "image",
    [
        seven(),  # white on opaque black
        seven(bg=(0, 0, 0, 0), ink=(0, 0, 0, 255)),  # black on transparent
        seven(bg=(0, 0, 0, 0), ink=(255, 255, 255, 255)),  # white on transparent
        seven("RGB", bg=(250, 250, 245), ink=(20, 20, 20)),  # dark on paper
        seven("L", bg=255, ink=0),
        seven("LA", bg=(0, 0), ink=(0, 255)),
    ],
    ids=["white-black", "black-transparent", "white-transparent", "rgb-paper", "L", "LA"],
)
def test_every_polarity_and_mode_gives_the_same_digit_image(image):
    reference = preprocess(seven()).image28
    out = preprocess(encode(image))
    assert _difference(out.image28, reference) < 0.03


def test_sixteen_bit_cmyk_palette_and_exif_rotation():
    reference = preprocess(seven()).image28
    grey = np.asarray(seven("L", bg=0, ink=255), dtype=np.uint16) * 257
    sixteen = Image.fromarray(grey)
    cmyk = seven("RGB", bg=(255, 255, 255), ink=(0, 0, 0)).convert("CMYK")
    palette = seven("RGB", bg=(255, 255, 255), ink=(0, 0, 0)).convert("P")
    for image, fmt in [(sixteen, "PNG"), (cmyk, "JPEG"), (palette, "GIF")]:
        assert _difference(preprocess(encode(image, fmt)).image28, reference) < 0.05, image.mode
    rotated = seven().rotate(90, expand=True).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: stored turned 90 degrees counter-clockwise
    upright = preprocess(encode(rotated, "JPEG", exif=exif.tobytes(), quality=95)).image28
    assert np.abs(upright - reference).mean() < 0.05


def _deep_grey(image: Image.Image, mode: str) -> Image.Image:
    """An 8-bit L image in a 16- or 32-bit greyscale mode, its values spread over that mode's range."""
    values = np.asarray(image, dtype=np.float64) / 255
    if mode == "F":
        return Image.fromarray(values.astype(np.float32))
    sixteen = (values * 65535).astype(np.uint16)
    if mode == "I;16B":  # as a big-endian TIFF holds it (Pillow's convert to I;16B clips at 255)
        return Image.frombytes(mode, image.size, sixteen.astype(">u2").tobytes())
    deep = Image.fromarray(sixteen)  # I;16
    return deep if mode == "I;16" else deep.convert(mode)


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I", "F"])
@pytest.mark.parametrize("size", [(200, 200), (3000, 2000)])
def test_sixteen_and_thirty_two_bit_greyscale_read_like_eight_bit_at_any_size(mode, size):
    """A dark 0 on white paper: big images are reduced first, which must not clip 16-bit values."""
    paper = Image.new("L", size, 255)
    w, h = size
    ImageDraw.Draw(paper).ellipse([w * 0.3, h * 0.15, w * 0.7, h * 0.85], outline=40, width=max(4, h // 25))
    deep = _deep_grey(paper, mode)
    assert deep.mode == mode
    reference = preprocess(paper)
    out = preprocess(deep)
    assert not out.blank and _difference(out.image28, reference.image28) < 0.02
    assert out.image28[14, 14] < 0.1 and out.image28.max() > 0.9  # a ring: the middle stays dark


def _stroke_width(image28: np.ndarray) -> float:
    """Mean stroke width of a 28x28 input in pixels: 2 x inked area / boundary length."""
    ink = image28 > 0.3
    padded = np.pad(ink, 1)
    inner = ink & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return 2 * ink.sum() / (ink & ~inner).sum()


# Stroke width in 28x28 by _stroke_width: MNIST's test digits measure 3.0 px (median), 2.2-4.4 px
# (5th-95th percentile). Unthinned and unthickened, a 3 px pen would measure 2.0 and an 80 px one 6.5.
@pytest.mark.parametrize("pen_px, low, high", [(3, 2.5, 4.0), (80, 2.5, 6.2)])
def test_hairline_and_marker_pens_come_out_with_mnist_like_strokes(pen_px, low, high):
    width = _stroke_width(preprocess(seven(width=pen_px, box=(40, 40, 240, 250))).image28)
    assert low <= width <= high


def test_a_file_over_20_mb_is_refused_before_decoding(tmp_path):
    big = encode(seven()) + bytes(MAX_FILE_BYTES)
    assert MAX_FILE_BYTES == 20 * 2**20
    with pytest.raises(ImageError, match="larger than 20 MB"):
        open_image(big)
    (tmp_path / "big.png").write_bytes(big)
    with pytest.raises(ImageError, match="larger than 20 MB"):
        open_image(tmp_path / "big.png")


def test_a_faint_smudge_on_paper_is_blank():
    paper = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(paper).ellipse([60, 40, 140, 160], outline=245, width=8)  # 4 % darker than paper
    assert preprocess(paper).blank


@pytest.mark.parametrize("mode", ["I;16", "F"])
def test_a_faint_sixteen_bit_smudge_keeps_its_low_contrast_and_is_blank(mode):
    paper = Image.new("L", (200, 200), 255)
    ImageDraw.Draw(paper).ellipse([60, 40, 140, 160], outline=245, width=8)  # 4 % darker than paper
    assert preprocess(_deep_grey(paper, mode)).blank


@pytest.mark.parametrize("radius", [3, 9, 20, 30])
def test_a_dot_or_a_tap_is_not_a_digit(radius):
    out = preprocess(pen([(140, 140)], width=2 * radius))
    assert out.blank and out.not_a_digit == DOT


@pytest.mark.parametrize("length", [40, 80, 160])
def test_a_flat_dash_is_not_a_digit(length):
    out = preprocess(pen([(140 - length // 2, 150), (140 + length // 2, 150)]))
    assert out.blank and out.not_a_digit == DASH


@pytest.mark.parametrize("length", [8, 16, 22, 30])
@pytest.mark.parametrize("width", [5, 10, 18, 30])
def test_a_short_flat_dash_is_not_a_digit_whatever_the_pen(length, width):
    """However short, a flat stroke is a dash (or, shorter than the pen is wide, a dot): the one from
    0.45 to 0.53 of the canvas with the default pen was read as a 2."""
    out = preprocess(pen([(140 - length / 2, 140), (140 + length / 2, 140)], width))
    assert out.blank and out.not_a_digit in (DASH, DOT)
    if length >= width:
        assert out.not_a_digit == DASH


@pytest.mark.parametrize("width", [5, 18, 30])
def test_a_short_upright_stroke_is_read_as_a_digit(width):
    """A short 1, three pen widths long or more: taller than a tap, not flat like a dash."""
    length = max(40, 2 * width)
    out = preprocess(pen([(140, 140 - length // 2), (140, 140 + length // 2)], width))
    assert not out.blank and out.not_a_digit is None


def test_uneven_lighting_is_removed():
    image = np.asarray(seven("L", bg=255, ink=30), dtype=np.float32)
    gradient = np.linspace(0.55, 1.0, 280)[None, :]
    lit = Image.fromarray((image * gradient).astype(np.uint8))
    out = preprocess(encode(lit, "JPEG", quality=70))
    assert _difference(out.image28, preprocess(seven()).image28) < 0.05


def test_the_desk_past_the_paper_edge_is_left_out():
    photo = seven("RGB", bg=(235, 235, 230), ink=(20, 20, 20))
    draw = ImageDraw.Draw(photo)
    draw.rectangle([0, 0, 29, 279], fill=DESK)  # left of the paper
    draw.rectangle([0, 0, 279, 19], fill=DESK)  # above it
    out = preprocess(encode(photo, "JPEG", quality=85))
    assert _difference(out.image28, preprocess(seven()).image28) < 0.01


def test_a_tight_crop_keeps_a_stroke_that_runs_from_a_corner():
    image = seven()
    tight = image.crop(image.convert("L").getbbox())  # the 7's bar now runs along the top from a corner
    assert _difference(preprocess(encode(tight)).image28, preprocess(image).image28) < 0.02


def test_a_thick_upright_stroke_keeps_its_length():
    # A round-capped brush stroke, as the canvas draws a 1. It fills its crop from side to side, so
    # its width must count the crop's sides as edges.
    image = Image.new("RGBA", (280, 280), (0, 0, 0, 0))
    ImageDraw.Draw(image).rounded_rectangle([120, 40, 159, 239], radius=20, fill=(0, 0, 0, 255))
    ys, xs = np.nonzero(preprocess(encode(image)).image28 > 0.5)
    assert ys.max() - ys.min() + 1 >= DIGIT_BOX - 1 and xs.max() - xs.min() + 1 <= 5


@pytest.mark.parametrize("style", ["canvas", "paper"])
def test_a_stray_dot_apart_from_the_digit_is_left_out(style):
    # A click of the pen on the canvas, a speck on the paper: about as long as it is wide.
    bg, ink = ((0, 0, 0, 255), (255, 255, 255, 255)) if style == "canvas" else ((235, 235, 230), (20, 20, 20))
    clean = seven("RGBA" if style == "canvas" else "RGB", bg=bg, ink=ink)
    dotted = clean.copy()
    ImageDraw.Draw(dotted).ellipse([236, 236, 260, 260], fill=ink)
    assert _difference(preprocess(encode(dotted)).image28, preprocess(encode(clean)).image28) < 0.01


def test_a_stroke_apart_from_the_rest_of_the_digit_stays():
    five = Image.new("RGBA", (280, 280), (0, 0, 0, 255))
    draw = ImageDraw.Draw(five)
    body = [(100, 100), (95, 150), (160, 150), (175, 190), (160, 235), (95, 240)]
    draw.line(body, fill=(255, 255, 255, 255), width=18, joint="curve")
    draw.line([(105, 45), (190, 45)], fill=(255, 255, 255, 255), width=18)  # the top bar, lifted off
    image = preprocess(encode(five)).image28 > 0.5
    top_row = image[image.any(1)][0]
    assert top_row.sum() >= 6  # the bar, not the tip of the body's stem


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (280, 280), (0, 0, 0, 255)),
        Image.new("RGBA", (280, 280), (0, 0, 0, 0)),
        Image.new("RGB", (280, 280), (255, 255, 255)),
        Image.new("L", (1, 1), 0),
        Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)),
    ],
    ids=["black", "transparent", "white", "1x1", "noise"],
)
def test_nothing_drawn_is_blank(image):
    assert preprocess(encode(image)).blank


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "empty"),
        (b"hello, this is text", "not an image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", "not an image"),
        (encode(seven())[:300], "damaged or truncated"),
    ],
)
def test_unreadable_input_gets_its_own_message(payload, message):
    with pytest.raises(ImageError, match=message):
        open_image(payload)


def test_decompression_bomb_is_refused_before_decoding():
    bomb = encode(Image.new("1", (10_000, 10_000)))  # 100 M pixels, a tiny file
    with pytest.raises(ImageError, match="too large"):
        open_image(bomb)


def test_first_frame_of_an_animated_gif():
    frames = [seven("L", bg=0, ink=255), Image.new("L", (280, 280), 0)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    assert not preprocess(buffer.getvalue()).blank


def test_to_ink_makes_ink_bright():
    ink = to_ink(seven("L", bg=255, ink=0))
    assert ink.max() > 0.9 and np.median(ink) < 0.1


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model(ModelConfig("mlp", hidden=32)).eval()


def test_predict_returns_a_digit_and_probabilities(model):
    p = predict(model, encode(seven()))
    assert p.digit in range(10) and not p.blank
    assert len(p.probabilities) == 10 and sum(p.probabilities) == pytest.approx(1, abs=1e-5)
    assert p.confidence == max(p.probabilities)


def test_blank_prediction_has_no_digit(model):
    p = predict(model, Image.new("RGBA", (280, 280), (0, 0, 0, 0)))
    assert p.blank and p.digit is None and p.probabilities == [0.0] * 10


def test_batch_matches_single_predictions(model):
    images = [seven(), Image.new("L", (50, 50), 0), seven(box=(20, 20, 120, 200))]
    batch = predict_batch(model, images)
    singles = [predict(model, im) for im in images]
    assert [b.digit for b in batch] == [s.digit for s in singles]
    assert batch[1].blank
    assert batch[2].probabilities == pytest.approx(singles[2].probabilities, abs=1e-5)


def _linear_model() -> torch.nn.Module:
    """Logits = W x + b with W set by hand: digit d weighs pixel i by sin(i * (d + 1))."""
    linear = torch.nn.Linear(784, 10)
    with torch.no_grad():
        pixels, digits = torch.arange(784.0), torch.arange(1.0, 11.0)
        linear.weight.copy_(torch.sin(digits[:, None] * pixels[None, :] / 100))
        linear.bias.copy_(digits)
    return torch.nn.Sequential(torch.nn.Flatten(), linear).eval()


def test_integrated_gradients_of_a_linear_model_are_input_times_weight_and_add_up():
    model, processed = _linear_model(), preprocess(seven())
    x, weights = processed.tensor, model[1].weight
    blank = torch.full_like(x, BACKGROUND)
    for digit in (7, 3):
        attribution = integrated_gradients(model, x, digit)
        expected = ((x - blank).flatten() * weights[digit]).view(28, 28)
        assert torch.allclose(attribution, expected, atol=1e-5)
        with torch.no_grad():
            gain = model(x)[0, digit] - model(blank)[0, digit]
        assert float(attribution.sum()) == pytest.approx(float(gain), rel=1e-4)
    heat_7, heat_3 = (saliency(model, x, d) for d in (7, 3))
    assert heat_7.max() == pytest.approx(1.0) and np.abs(heat_7 - heat_3).max() > 0.5  # another map


class _SumOfSquares(torch.nn.Module):
    """score_d = sum_i c_di * (x_i - blank)^2: its gradient grows along the path from the blank input,
    so integrated gradients differ from any single step's gradient times the input."""

    def __init__(self):
        super().__init__()
        self.weights = torch.sin(torch.arange(1.0, 11.0)[:, None] * torch.arange(784.0)[None, :] / 100)

    def forward(self, x):
        return ((x - BACKGROUND).flatten(1) ** 2) @ self.weights.T


def test_integrated_gradients_average_the_gradient_along_the_whole_path():
    model, x = _SumOfSquares(), preprocess(seven()).tensor
    blank = torch.full_like(x, BACKGROUND)
    squares = ((x - blank) ** 2).flatten()
    for digit in (7, 3):
        attribution = integrated_gradients(model, x, digit)
        # The mean of alpha over the path's samples 1/S, 2/S, ..., 1 is (S + 1) / 2S; the gradient at
        # alpha is 2 alpha c (x - blank): each pixel gets c (x - blank)^2 (1 + 1/S).
        expected = (model.weights[digit] * squares * (1 + 1 / SALIENCY_STEPS)).view(28, 28)
        assert torch.allclose(attribution, expected, atol=1e-4)
        gain = float(model(x)[0, digit] - model(blank)[0, digit])
        assert float(attribution.sum()) == pytest.approx(gain * (1 + 1 / SALIENCY_STEPS), rel=1e-4)


def test_saliency_credits_only_ink_and_leaves_the_model_untouched(model):
    p = predict(model, seven())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    heat = saliency(model, p.processed.tensor, p.digit)
    assert heat.shape == (28, 28) and heat.max() == pytest.approx(1.0)
    assert heat[p.processed.image28 == 0].max() < 1e-6  # background pixels get no credit
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(param.grad is None for param in model.parameters())
