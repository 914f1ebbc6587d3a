"""Reading numbers from drawings the tests make, with the shipped number reader and CNN."""

import pytest
import torch
from PIL import ImageDraw

import core.numbers.read
from core.checkpoint import CheckpointError, load_checkpoint
from core.digits.predict import predict
from core.images import open_image
from core.numbers.read import NUMBER_WORK, read_number
from core.numbers.reader import CLASSES, HEIGHT, STRIDE, ReadDigit, to_line
from core.paths import SHIPPED_MODELS_DIR
from core.preprocess import _pieces, clean_ink
from tests.drawings import DIGIT_BOX, DIGIT_STROKES, TOUCHING, WHITE, encode, number, seven

BOX_TOLERANCE_PX = 4  # anti-aliased edges and the read boxes' rounding


@pytest.fixture(scope="module")
def cnn():
    return load_checkpoint(SHIPPED_MODELS_DIR / "cnn.pt").model


def test_separated_digits_are_read_left_to_right(cnn):
    reading = read_number(cnn, encode(number("2047")))
    assert reading.number == "2047"
    boxes = [d.box for d in reading.digits]
    assert [b[0] for b in boxes] == sorted(b[0] for b in boxes)  # left to right
    assert all(0 <= x0 < x1 <= 700 and 0 <= y0 < y1 <= 220 for x0, y0, x1, y1 in boxes)  # image pixels


def _drawn_extent(text: str, i: int, scale: float = 1.0) -> tuple[float, ...]:
    """Image pixels (x0, y0, x1, y1) of digit i's ink as tests.drawings.number draws it at its
    defaults (first box at x 60, 130 px apart, y from 30, a 16 px pen), the image scaled by `scale`."""
    points = [point for stroke in DIGIT_STROKES[text[i]] for point in stroke]
    left, half_pen = 60 + 130 * i, 8
    xs, ys = [left + x for x, _ in points], [30 + y for _, y in points]
    box = (min(xs) - half_pen, min(ys) - half_pen, max(xs) + half_pen, max(ys) + half_pen)
    return tuple(v * scale for v in box)


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_each_digits_box_is_where_it_was_drawn(cnn, scale):
    image = number("2047")
    image = image.resize((round(image.width * scale), round(image.height * scale)))
    reading = read_number(cnn, encode(image))
    assert reading.number == "2047"
    for i, digit in enumerate(reading.digits):
        assert digit.box == pytest.approx(_drawn_extent("2047", i, scale), abs=BOX_TOLERANCE_PX)


def test_a_seven_leaning_over_a_one_is_two_digits(cnn):
    image = number("")
    draw = ImageDraw.Draw(image)
    draw.line([(70, 40), (200, 40), (100, 182)], fill=WHITE, width=16, joint="curve")
    draw.line([(205, 90), (200, 190)], fill=WHITE, width=16)  # under the end of the 7's bar
    reading = read_number(cnn, encode(image))
    first, second = (d.box for d in reading.digits)
    assert reading.number == "71" and first[2] > second[0]  # their boxes overlap across the page


def test_a_four_in_two_strokes_and_a_five_with_a_lifted_bar_are_one_digit_each(cnn):
    assert read_number(cnn, encode(number("4"))).number == "4"
    assert read_number(cnn, encode(number("5"))).number == "5"
    assert read_number(cnn, encode(number("545"))).number == "545"


def _pieces_of_ink(png: bytes) -> int:
    ink, _ = clean_ink(open_image(png), NUMBER_WORK)
    return int(_pieces(ink > 0).max())


@pytest.mark.parametrize(
    ("text", "gap"), [*((t, -26) for t in ("20", "27", "44", "64", "75")), *TOUCHING.items()]
)
def test_touching_digits_are_read(cnn, text, gap):
    png = encode(number(text, gap=gap))  # the strokes run into each other
    assert _pieces_of_ink(png) == 1  # one piece of ink
    reading = read_number(cnn, png)
    assert reading.number == text
    centres = [60 + i * (DIGIT_BOX + gap) + DIGIT_BOX / 2 for i in range(len(text))]  # where each was drawn
    assert all(d.box[0] < centre < d.box[2] for d, centre in zip(reading.digits, centres, strict=True))


def test_a_zero_twice_as_wide_as_tall_stays_one_digit(cnn):
    image = number("1")
    ImageDraw.Draw(image).ellipse([200, 40, 500, 190], outline=WHITE, width=16)  # 300 x 150 px
    assert read_number(cnn, encode(image)).number == "10"


def test_a_stray_dot_beside_a_number_is_left_out(cnn):
    image = number("12")
    ImageDraw.Draw(image).ellipse([600, 100, 616, 116], fill=WHITE)
    assert read_number(cnn, encode(image)).number == "12"


def test_a_blank_image_is_no_number(cnn):
    reading = read_number(cnn, encode(number("")))
    assert reading.number == "" and reading.blank and reading.digits == []


def test_a_lone_digit_reads_as_predict_reads_it(cnn):
    image = seven()
    reading = read_number(cnn, encode(image))
    single = predict(cnn, encode(image))
    assert reading.number == str(single.digit) == "7"
    assert reading.digits[0].confidence == single.confidence  # the very same reading, not a blend
    assert (reading.digits[0].processed.image28 == single.processed.image28).all()


def test_a_reading_shows_the_line_and_its_probabilities_per_column(cnn):
    reading = read_number(cnn, encode(number("2047")))
    assert reading.line.shape[0] == HEIGHT
    assert reading.columns.shape == (reading.line.shape[1] // STRIDE, CLASSES)
    assert reading.columns.sum(1) == pytest.approx(1.0, abs=1e-4)
    peaks = [int(c) for c in reading.columns.argmax(1) if c < CLASSES - 1]
    assert "".join(str(p) for p in dict.fromkeys(peaks)) == "2047"  # each digit is some column's best


def test_without_the_reader_number_mode_says_why(cnn, monkeypatch):
    monkeypatch.setattr(core.numbers.read, "shipped_reader", lambda: None)
    with pytest.raises(CheckpointError, match="number reader"):
        read_number(cnn, encode(number("12")))


def _ink_and_line(text: str):
    ink, _ = clean_ink(open_image(encode(number(text))), NUMBER_WORK)
    return ink, to_line(ink.numpy())


def _read(confidences: list[float], line) -> list[ReadDigit]:
    """Digits as the reader might read them, evenly along the line, each as sure as asked."""
    columns = line.pixels.shape[1] // STRIDE
    peaks = [round((i + 0.5) * columns / len(confidences)) for i in range(len(confidences))]
    return [ReadDigit(1, c, peak, torch.full((10,), 0.1)) for c, peak in zip(confidences, peaks, strict=True)]


def test_narrow_pieces_win_over_a_digit_too_many_when_any_digit_read_is_unsure():
    ink, line = _ink_and_line("11")  # two narrow pieces, read as three digits
    unsure = core.numbers.read._parts(ink, line, _read([0.99, 0.99, 0.5], line))
    assert len(unsure) == 2 and all(part.apart and part.read is None for part in unsure)
    sure = core.numbers.read._parts(ink, line, _read([0.99, 0.99, 0.99], line))
    assert len(sure) == 3 and not any(part.apart for part in sure)  # then the alignment divides the ink


def test_a_lifted_bar_joins_the_digit_it_lies_over():
    ink, _ = _ink_and_line("55")
    first, second = core.numbers.read._digit_pieces(_pieces(ink > 0))
    first_end, second_start = core.numbers.read._span(first, 0)[1], core.numbers.read._span(second, 0)[0]
    assert first_end < second_start  # each 5 keeps its own bar, so they stand apart
