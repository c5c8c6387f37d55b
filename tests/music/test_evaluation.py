"""Yang & Lerch objective evaluation: per-piece features on hand-built files, OA/KLD against scipy's KDE and
known distributions, whole folders through `musicgen evaluate --reference`."""

import json
import math

import numpy as np
import pytest
from scipy import integrate, stats

from musicgen_tf.music import evaluation, metrics
from musicgen_tf.music.midi_io import midi_file_to_note_sequence
from musicgen_tf.music.remi import RemiConverter
from tests import fixtures


def random_melody(rng, bars=4, low=55, high=79, quarter=0.5):
    """Random monophonic 4/4 melody on the 16th grid: (pitch, start, end, velocity) in seconds."""
    notes, step, total = [], 0, bars * 16
    while step < total:
        length = int(rng.choice([1, 2, 2, 4, 4, 4, 8]))
        length = min(length, total - step)
        notes.append((int(rng.integers(low, high + 1)), step * quarter / 4, (step + length) * quarter / 4, 80))
        step += length + int(rng.choice([0, 0, 0, 1]))
    return notes


def write_set(folder, rng, count, **options):
    for index in range(count):
        fixtures.write_midi(folder / f"piece_{index:03d}.mid", random_melody(rng, **options))
    return folder


def test_features_of_a_known_melody(tmp_path):
    # 120 qpm (0.5 s per quarter): C4 quarter, E4 eighth, G4 eighth, C5 half, F#4 dotted quarter, D4 8th-triplet
    notes = [(60, 0.0, 0.5, 100), (64, 0.5, 0.75, 100), (67, 0.75, 1.0, 50), (72, 1.0, 2.0, 100),
             (66, 2.0, 2.75, 100), (62, 2.75, 2.75 + 1 / 6, 100)]
    path = fixtures.write_midi(tmp_path / "known.mid", notes)
    features = evaluation.piece_features(evaluation.read_piece(path))
    assert features["note_count"] == 6
    assert features["pitch_count"] == 6
    assert features["pitch_range"] == 12
    assert features["mean_interval"] == pytest.approx(np.mean([4, 3, 5, 6, 4]))
    assert features["mean_ioi"] == pytest.approx(2.75 / 5)
    # velocity x seconds per pitch class: C 100*0.5 + 100*1.0, E 25, G 12.5, F# 75, D 100/6
    weights = np.zeros(12)
    weights[[0, 4, 7, 6, 2]] = [150, 25, 12.5, 75, 100 / 6]
    # (ticks round the triplet)
    np.testing.assert_allclose(features["pitch_class_histogram"], weights / weights.sum(), atol=1e-3)
    # classes: quarter(2), 8th(3) twice, half(1), dotted quarter(6), 8th triplet(11)
    expected = np.bincount([2, 3, 3, 1, 6, 11], minlength=12) / 6
    np.testing.assert_allclose(features["note_length_histogram"], expected)
    # C major holds C E G D but not F#: 5 of 6 notes; G major holds all 6
    assert features["scale_consistency"] == 1.0
    assert math.isnan(features["H4"])  # two bars only
    assert features["GS"] == pytest.approx(1 - 2 / 16)  # 16th steps 0 4 6 8 against 0 6


def test_scale_consistency_counts_notes_outside_the_best_key(tmp_path):
    notes = [(p, i * 0.5, (i + 1) * 0.5, 80) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 61])]
    features = evaluation.piece_features(evaluation.read_piece(fixtures.write_midi(tmp_path / "a.mid", notes)))
    assert features["scale_consistency"] == pytest.approx(7 / 8)


def test_mean_ioi_follows_tempo_changes(tmp_path):
    notes = [(60, i * 0.25, (i + 1) * 0.25, 80) for i in range(8)]  # eighths at 120 qpm -> 0.25 s apart
    path = fixtures.write_midi(tmp_path / "fast.mid", notes, tempo=120.0)
    assert evaluation.piece_features(evaluation.read_piece(path))["mean_ioi"] == pytest.approx(0.25, abs=1e-3)
    piece = evaluation.read_piece(path)
    piece.tempos = [(0, 120.0), (piece.tpq * 2, 60.0)]  # half speed after two quarters
    seconds = evaluation.ticks_to_seconds(np.array([0, piece.tpq * 2, piece.tpq * 3]), piece.tempos, piece.tpq)
    np.testing.assert_allclose(seconds, [0.0, 1.0, 2.0])


@pytest.mark.parametrize("seed,meters", [(0, ((4, 4, 0.0),)), (1, ((4, 4, 0.0),)), (2, ((3, 4, 0.0),))])
def test_h1_h4_gs_match_music_metrics(tmp_path, seed, meters):
    rng = np.random.default_rng(seed)
    notes = random_melody(rng, bars=9)
    if meters[0][0] == 3:
        notes = [n for n in notes if n[1] < 9 * 1.5]
    path = fixtures.write_midi(tmp_path / "m.mid", notes, time_signatures=meters)
    ours = evaluation.bar_features(evaluation.read_piece(path))
    theirs = metrics.metrics_from_note_sequence(midi_file_to_note_sequence(str(path)), RemiConverter(chords="none"))
    for name in ("H1", "H4", "GS"):
        assert ours[name] == pytest.approx(theirs[name], abs=1e-9), name


def test_overlap_and_kl_match_scipy_kde_and_quad():
    """OA: quad of min(gaussian_kde_A, gaussian_kde_B) over the real line; mgeval's utils.overlap_area: the same
    over both samples' range only."""
    rng = np.random.default_rng(0)
    a, b = rng.gamma(2.0, 1.0, 300), rng.gamma(3.0, 1.2, 400)
    kde_a, kde_b = stats.gaussian_kde(a), stats.gaussian_kde(b)
    lo, hi = min(a.min(), b.min()), max(a.max(), b.max())
    expected_oa = integrate.quad(lambda x: min(kde_a(x)[0], kde_b(x)[0]), lo, hi, limit=200)[0]
    grid = np.linspace(lo, hi, 4000)
    expected_kl = stats.entropy(kde_a(grid), kde_b(grid))
    overlap = evaluation.overlap_and_kl(a, b)
    assert overlap.oa_mgeval == pytest.approx(expected_oa, abs=1e-3)
    assert overlap.kld == pytest.approx(expected_kl, rel=1e-2)
    whole_line = integrate.quad(lambda x: min(kde_a(x)[0], kde_b(x)[0]), -np.inf, np.inf, limit=400)[0]
    assert overlap.oa == pytest.approx(whole_line, abs=1e-3)
    assert overlap.oa > overlap.oa_mgeval + 0.01  # gamma samples pile up near 0: the KDEs spill below it


@pytest.mark.parametrize("shift", [0.0, 1.0, 2.0])
def test_overlap_of_shifted_normals_is_known(shift):
    rng = np.random.default_rng(1)
    oa, kl, oa_mgeval = evaluation.overlap_and_kl(rng.normal(0, 1, 20000), rng.normal(shift, 1, 20000))
    assert oa == pytest.approx(2 * stats.norm.cdf(-shift / 2), abs=0.015)  # two samples: KDE noise ~1%
    assert oa_mgeval == pytest.approx(2 * stats.norm.cdf(-shift / 2), abs=0.025)  # less the tails beyond the samples
    assert kl == pytest.approx(shift ** 2 / 2, rel=0.05, abs=0.01)  # on the samples' range only


@pytest.mark.parametrize("shift", [0.0, 1.0, 3.0])
def test_feature_shifted_by_known_amount_gives_folded_normal_overlap(shift):
    """Reference ~ N(0, 1), generated ~ N(shift, 1): intra-set distances are half-normal with scale sqrt(2),
    inter-set distances folded normal around `shift`; OA is the integral of the smaller of the two."""
    rng = np.random.default_rng(2)
    reference, generated = rng.normal(0, 1, 600), rng.normal(shift, 1, 600)
    result = evaluation.compare_feature(generated, reference)
    s, r = math.sqrt(2), np.linspace(0, 12, 24001)
    intra = 2 * stats.norm.pdf(r / s) / s
    inter = (stats.norm.pdf((r - shift) / s) + stats.norm.pdf((r + shift) / s)) / s
    expected = np.trapezoid(np.minimum(intra, inter), r)
    assert result["oa"] == pytest.approx(expected, abs=0.04)
    assert result["inter"]["mean"] > result["intra_reference"]["mean"] - 0.05


def test_identical_sets_overlap_and_disjoint_sets_do_not():
    rng = np.random.default_rng(3)
    values = rng.normal(10, 2, 200)
    same = evaluation.compare_feature(values.copy(), values)
    assert same["oa"] > 0.98 and same["kld"] < 0.01
    apart = evaluation.compare_feature(values + 100.0, values)
    assert apart["oa"] < 0.01 and apart["kld"] > 5
    histograms = rng.dirichlet(np.ones(12), 100)
    assert evaluation.compare_feature(histograms.copy(), histograms)["oa"] > 0.98


def test_point_masses():
    assert evaluation.overlap_and_kl(np.zeros(10), np.zeros(12)) == (1.0, 0.0, 1.0)
    assert evaluation.overlap_and_kl(np.zeros(10), np.arange(12.0))[0] == 0.0


def test_folders_identical_disjoint_and_too_short_features(tmp_path):
    rng = np.random.default_rng(4)
    reference = write_set(tmp_path / "ref", rng, 40, bars=4)
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in reference.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    result = evaluation.evaluate_folders(copy, reference)
    assert set(result["features"]) == set(evaluation.FEATURES)
    # mgeval's OA is not 1: it integrates over [smallest, largest distance] only, and for discrete features (40
    # pitch ranges take 7 values) a large share of the distances is exactly 0, half of whose KDE mass lies below 0.
    for name, values in result["features"].items():
        assert values["oa"] > 0.97, name
        assert values["oa_mgeval"] > 0.8, name
        assert values["kld"] < 0.05, name
    assert result["mean_oa"] > 0.97 and result["mean_oa_mgeval"] < result["mean_oa"]
    high = write_set(tmp_path / "high", rng, 30, bars=4, low=90, high=96)
    result = evaluation.evaluate_folders(high, reference)
    assert result["features"]["pitch_range"]["oa"] < 0.3  # 6 semitones at most against about 24
    one_bar = write_set(tmp_path / "one_bar", rng, 10, bars=1)
    result = evaluation.evaluate_folders(one_bar, reference)
    assert set(result["skipped_features"]) == {"H4", "GS"}


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no MIDI files"):
        evaluation.extract_folder(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        evaluation.extract_folder(tmp_path / "missing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "garbage.mid").write_bytes(b"not midi")
    fixtures.write_midi(bad / "silent.mid", [])
    with pytest.raises(ValueError, match="none of its 2 MIDI files"):
        evaluation.extract_folder(bad)
    write_set(bad, np.random.default_rng(5), 3)
    features = evaluation.extract_folder(bad)
    assert len(features.files) == 3
    assert "not a readable MIDI file" in features.skipped["garbage.mid"]
    assert features.skipped["silent.mid"] == "no pitched notes"


def test_cli_evaluate_reference_json_table_and_plot(tmp_path, capsys):
    from musicgen_tf.cli import main

    rng = np.random.default_rng(6)
    generated, reference = write_set(tmp_path / "gen", rng, 12), write_set(tmp_path / "ref", rng, 16)
    plot = tmp_path / "dist.png"
    assert main(["evaluate", "--midi", str(generated), "--reference", str(reference), "--json",
                 "--plot", str(plot)]) == 0
    document = json.loads(capsys.readouterr().out)
    assert set(document["features"]) == set(evaluation.FEATURES)
    assert 0.0 <= document["mean_oa"] <= 1.0
    assert 0.0 <= document["mean_oa_mgeval"] <= 1.0
    assert {"oa", "kld", "oa_mgeval", "oa_generated", "kld_generated", "intra_reference", "inter"} <= set(
        document["features"]["pitch_range"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["evaluate", "--midi", str(generated), "--reference", str(reference)]) == 0
    table = capsys.readouterr().out
    assert "scale_consistency" in table and "mean OA" in table and "mgeval" in table
    (tmp_path / "none").mkdir()
    assert main(["evaluate", "--midi", str(tmp_path / "none"), "--reference", str(reference)]) == 2
    assert "holds no MIDI files" in capsys.readouterr().err
    assert main(["evaluate", "--midi", str(generated), "--plot", str(plot)]) == 2
    assert "--plot needs --reference" in capsys.readouterr().err
