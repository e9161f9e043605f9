"""The findings sentences say what the numbers say: best layers with intervals, confusions, quality, baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from loce.report.data import ReportData
from loce.report.findings import (
    Finding,
    baseline_findings,
    best_layer_findings,
    concept_counts,
    confusion_findings,
    convergence_findings,
    overlap_chance,
    purity_chance,
    shuffled_purity,
    weights_findings,
    with_interval,
)
from loce.report.render import render_report


def _headline(p1, low, high, layers=("l1", "l2", "l3"), model="m"):
    return pd.DataFrame(
        {
            "model": model,
            "layer": list(layers),
            "precision_at_1": p1,
            "precision_at_1_ci_low": low,
            "precision_at_1_ci_high": high,
            "protocol": "default",
            "interval": "bootstrap over images, 95%",
        }
    )


def test_best_layer_is_named_with_interval_and_separated_from_the_runner_up():
    head = _headline([0.5, 0.8, 0.6], [0.45, 0.75, 0.55], [0.55, 0.85, 0.65])
    (finding,) = best_layer_findings(head, "precision_at_1", "retrieval precision@1", "r")
    assert "best layer l2 with 0.800 [0.750, 0.850]" in finding.text
    assert "ahead of l3 with 0.600 [0.550, 0.650]" in finding.text
    assert "intervals (bootstrap over images, 95%) do not overlap" in finding.text
    assert "distinguishably better" in finding.text
    assert "protocol: default" in finding.text and finding.link == "r"


def test_overlapping_intervals_are_reported_as_not_distinguishable():
    head = _headline([0.5, 0.62, 0.6], [0.45, 0.55, 0.52], [0.55, 0.70, 0.68])
    (finding,) = best_layer_findings(head, "precision_at_1", "retrieval precision@1", "r")
    assert "best layer l2" in finding.text and "overlap: l2 and l3 are not distinguishable" in finding.text


def test_zero_width_intervals_of_one_repeated_sample_are_not_called_distinguishable():
    # The paper protocol on concepts of at most 100 LoCEs: every seed draws the whole concept, so the "spread over
    # seeds" is a point; two different points must not be reported as a real difference.
    head = _headline([0.5, 0.8, 0.6], [0.5, 0.8, 0.6], [0.5, 0.8, 0.6]).assign(
        protocol="paper", interval="spread over 10 seeds, 95%", n_distinct_samples=1
    )
    (finding,) = best_layer_findings(head, "precision_at_1", "retrieval precision@1", "r")
    assert "best layer l2" in finding.text
    assert "distinguishably better" not in finding.text
    assert "no width" in finding.text and "cannot tell whether the difference is real" in finding.text


def test_without_intervals_the_sentence_says_the_difference_cannot_be_judged():
    head = pd.DataFrame({"model": "m", "layer": ["a", "b"], "purity": [0.4, 0.3]})
    (finding,) = best_layer_findings(head, "purity", "concept purity", None)
    assert "best layer a with 0.400, ahead of b with 0.300" in finding.text
    assert "cannot be judged" in finding.text


def test_one_finding_per_model_and_chance_level_when_given():
    head = pd.concat([_headline([0.5, 0.8, 0.6], [0.4] * 3, [0.9] * 3, model=m) for m in ("a", "b")])
    findings = best_layer_findings(head, "precision_at_1", "p@1", None, chance={("a", "l2"): 0.09})
    assert [f.text.split(",")[0] for f in findings] == ["a", "b"]
    assert "chance 0.090" in findings[0].text and "chance" not in findings[1].text


def test_with_interval_formats_low_and_high():
    assert with_interval({"x": 0.25, "x_ci_low": 0.2, "x_ci_high": 0.3}, "x", 2) == "0.25 [0.20, 0.30]"
    assert with_interval({"x": 0.25}, "x", 2) == "0.25"


def test_confused_pairs_are_taken_at_the_best_retrieval_layer():
    head = _headline([0.5, 0.8, 0.6], [0.4] * 3, [0.9] * 3)
    pairs = pd.DataFrame(
        {
            "model": "m",
            "layer": ["l1", "l2", "l2", "l2"],
            "rank": [1, 1, 2, 3],
            "concept_a": ["x", "car", "cup", "a"],
            "concept_b": ["y", "bus", "mug", "b"],
            "score": [0.9, 0.8, 0.7, 0.1],
            "overlap": [0.5, 0.4, 0.3, 0.0],
        }
    )
    (finding,) = confusion_findings(pairs, head, "sep", n=2)
    assert "at m · l2" in finding.text
    assert "car / bus (score 0.80, overlap 0.40); cup / mug (score 0.70, overlap 0.30)" in finding.text
    assert "x / y" not in finding.text and "a / b" not in finding.text


def test_concepts_with_many_non_converged_loces_are_named_with_counts():
    quality = pd.DataFrame(
        {
            "model": "m",
            "layer": "l1",
            "concept": ["duck", "cup", "mug"],
            "LoCEs": [10, 20, 30],
            "iou_zero": [4, 1, 0],
            "mean_iou": [0.2, 0.5, 0.6],
        }
    )
    (finding,) = convergence_findings(quality, "quality")
    assert "5 (8.3%) did not converge" in finding.text  # 5 of 60
    assert "duck at m · l1 4 of 10 (40%)" in finding.text and "cup at" not in finding.text
    assert f"mean IoU {(0.2 * 10 + 0.5 * 20 + 0.6 * 30) / 60:.3f}" in finding.text


def test_baselines_are_compared_plainly():
    comparison = pd.DataFrame(
        {
            "model": "m",
            "method": ["loce", "loce", "crop", "window"],
            "layer": ["l1", "l2", "_avg_pooling", "l2"],
            "precision_at_1": [0.59, 0.41, 0.97, 0.3],
        }
    )
    (finding,) = baseline_findings(comparison, "methods")
    assert (
        "the crop baseline retrieves better than LoCE: precision@1 0.97 (_avg_pooling) against LoCE's 0.59 (l1)"
        in (finding.text)
    )
    assert "the window baseline retrieves worse than LoCE: precision@1 0.30" in finding.text


def test_two_runs_of_one_model_are_compared_each_on_its_own():
    # the same model on two datasets: run a's crop (0.97) must not be set against run b's LoCE (0.80)
    comparison = pd.DataFrame(
        {
            "run": ["a", "a", "b", "b"],
            "model": "m",
            "method": ["loce", "crop", "loce", "crop"],
            "layer": ["l1", "_avg_pooling", "l1", "_avg_pooling"],
            "precision_at_1": [0.59, 0.97, 0.80, 0.50],
        }
    )
    first, second = baseline_findings(comparison, "methods")
    assert first.text.startswith("a · m: the crop baseline retrieves better than LoCE: precision@1 0.97")
    assert "against LoCE's 0.59" in first.text
    assert second.text.startswith("b · m: the crop baseline retrieves worse than LoCE: precision@1 0.50")
    assert "against LoCE's 0.80" in second.text
    (one,) = baseline_findings(comparison[comparison["run"] == "a"], "methods")  # one run: no label
    assert one.text.startswith("m: the crop baseline")


def test_random_and_unknown_weights_are_warnings():
    manifests = {
        "run": {
            "jobs": [
                {"name": "a", "model": "resnet", "method": "loce",
                 "model_identity": {"pretrained": False, "weights_source": "random init", "fingerprint": "ab" * 32}},
                {"name": "b", "model": "lite0", "method": "loce",
                 "model_identity": {"pretrained": True, "weights_source": "package weights file"}},
                {"name": "c", "model": "old", "method": "loce"},
                {"name": "d", "model": "crop-model", "method": "crop"},
            ]
        }
    }  # fmt: skip
    found = {f.text.split(":")[0]: f for f in weights_findings(manifests, "overview")}
    assert set(found) == {"resnet", "lite0", "old"}
    assert "RANDOM WEIGHTS (random init, fingerprint abababababab)" in found["resnet"].text
    assert found["resnet"].level == "warning" and found["old"].level == "warning"
    assert found["lite0"].level == "info" and "pretrained weights" in found["lite0"].text


def test_findings_come_first_with_links_and_a_loud_banner():
    data = ReportData(
        "r",
        overview={"LoCEs": 3},
        findings=[
            Finding("provenance", "m: RANDOM WEIGHTS (random init).", "overview", level="warning"),
            Finding("which layer", "best layer l2", "overview"),
            Finding("which layer", "dangling", "no-such-section"),
        ],
    )
    page = render_report(data, lambda p: p.as_posix())
    assert page.index('id="findings"') < page.index('id="overview"')
    assert 'class="banner warning"' in page and "RANDOM WEIGHTS" in page
    assert 'href="#overview" class="finding-link"' in page
    assert "#no-such-section" not in page
    assert page.count("<details") >= 1  # sections fold


def test_shuffled_purity_is_the_expected_majority_share_by_hand():
    # two clusters of 2 from concepts a, a, b, b: a shuffle keeps both pure (purity 1) in 2 of the 6 ways to fill
    # the first cluster, else both are mixed (purity 1/2): 1/3 + 2/3 * 1/2 = 2/3
    assert shuffled_purity([2, 2], [2, 2], permutations=4000, seed=1) == pytest.approx(2 / 3, abs=0.02)
    # one cluster holding everything: the majority concept's share, whatever the shuffle
    assert shuffled_purity([10], [7, 3], permutations=5) == pytest.approx(0.7)
    # singletons are always pure
    assert shuffled_purity([1] * 6, [3, 3], permutations=5) == 1.0
    assert np.isnan(shuffled_purity([3], [2, 2]))  # the clusters do not hold the counted LoCEs


def test_overlap_chance_matches_overlap_measured_with_shuffled_labels():
    from loce.analysis.separation import separation_overlap

    rng = np.random.default_rng(0)
    measured = []
    for _ in range(30):
        X = rng.normal(size=(80, 5))
        labels = rng.permutation(np.repeat(["i", "j"], [60, 20]))
        sep = separation_overlap(X, labels, metric="euclidean")
        measured.append(sep.overlap[list(sep.concepts).index("i"), list(sep.concepts).index("j")])
    assert np.mean(measured) == pytest.approx(overlap_chance(60, 20), abs=0.03)  # 20 / 79
    assert overlap_chance(60, 20) == pytest.approx(20 / 79)


def test_purity_chance_and_overlap_chance_stand_beside_their_numbers():
    retrieval = pd.DataFrame(
        {"model": "m", "layer": "l2", "concept": ["car", "bus", "(all)"], "n_queries": [30, 10, 40]}
    )
    counts = concept_counts(retrieval)
    assert counts == {("m", "l2"): {"car": 30, "bus": 10}}
    clusters = pd.DataFrame({"model": "m", "layer": "l2", "size": [40]})
    assert purity_chance(clusters, counts) == {("m", "l2"): pytest.approx(0.75)}
    head = pd.DataFrame(
        {"model": "m", "layer": ["l1", "l2"], "purity": [0.8, 0.9], "precision_at_1": [0.1, 0.2]}
    )
    (finding,) = best_layer_findings(
        head, "purity", "purity", None, chance={("m", "l2"): 0.75, ("m", "l1"): 0.7}
    )
    assert "best layer l2 with 0.900 (chance 0.750), ahead of l1 with 0.800 (chance 0.700)" in finding.text
    pairs = pd.DataFrame(
        {"model": "m", "layer": "l2", "rank": [1], "concept_a": ["car"], "concept_b": ["bus"], "score": [1.0],
         "overlap": [0.4]}
    )  # fmt: skip
    (finding,) = confusion_findings(pairs, head, "sep", counts=counts)
    level = (10 / 39 + 30 / 39) / 2
    assert (
        f"car / bus (score 1.00, overlap 0.40 ({level:.2f} if the two were indistinguishable))"
        in finding.text
    )
    assert "Scores are relative" in finding.text


def test_mean_separation_stands_beside_its_shuffled_chance_level_in_the_confusions():
    head = pd.DataFrame(
        {"model": "m", "layer": ["l1", "l2"], "precision_at_1": [0.1, 0.2], "mean_separation": [0.3, 0.25],
         "mean_separation_ci_low": [0.2, 0.21], "mean_separation_ci_high": [0.4, 0.3],
         "mean_separation_chance": [0.01, 0.02]}
    )  # fmt: skip
    pairs = pd.DataFrame(
        {"model": "m", "layer": "l2", "rank": [1], "concept_a": ["car"], "concept_b": ["bus"], "score": [1.0]}
    )
    (finding,) = confusion_findings(pairs, head, "sep")
    assert finding.text.endswith(
        "Mean separation there: 0.250 [0.210, 0.300] (chance, concepts shuffled: 0.020)."
    )
    (finding,) = confusion_findings(pairs, head.drop(columns=["mean_separation_chance"]), "sep")
    assert finding.text.endswith("Mean separation there: 0.250 [0.210, 0.300].")


def test_findings_are_ordered_by_the_first_screen_questions():
    topics = ["baselines", "paper protocol", "provenance", "which layer", "ground truth", "LoCE quality"]
    data = ReportData(
        "r", findings=[Finding(t, f"sentence about {t}", None) for t in topics + ["confusions"]]
    )
    page = render_report(data, lambda p: p.as_posix())
    order = [
        "which layer",
        "confusions",
        "LoCE quality",
        "baselines",
        "provenance",
        "ground truth",
        "paper protocol",
    ]
    positions = [page.index(f"sentence about {t}") for t in order]
    assert positions == sorted(positions)
