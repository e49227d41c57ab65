"""`lcconvert diff`: per-tensor differences, with known answers on maia-1100."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import MAIA, ROOT

from lcconvert import diff, io, pipeline
from lcconvert.codecs import Encoding
from lcconvert.errors import NetworkError
from lcconvert.tensor import Tensor


@pytest.fixture(scope="module")
def maia():
    return io.load(str(MAIA))


def f32(x):
    return Tensor.from_values(np.asarray(x, dtype=np.float32), Encoding.FLOAT32)


def test_diff_with_itself_is_all_zero(run_cli):
    result = run_cli("diff", MAIA, MAIA, "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["differing"] == [] and doc["metadata"] == []
    assert doc["compared"] == len(list(io.load(str(MAIA)).tensors())) == len(doc["tensors"])
    for t in doc["tensors"]:
        assert t["status"] == "same" and t["max_abs"] == t["mean_abs"] == t["rel_l2"] == 0.0
    text = run_cli("diff", MAIA, MAIA)
    assert text.exit_code == 0 and f"no differences: all {doc['compared']} tensors identical" in text.stdout


def test_decoded_copy_compares_equal(maia):
    """Same values through the decode path (no shared bytes) are still "same"."""
    fresh = io.load(str(MAIA))
    report = diff.compare(maia, fresh)
    assert report.differing == []


def edited(maia):
    """maia with four known edits; returns (net, expected {name: status})."""
    net = maia.copy()
    w = net.residual[2].conv1.weights.values.copy()
    w[123] += np.float32(0.5)
    net.residual[2].conv1 = net.residual[2].conv1.replace(weights=f32(w))
    # Same values, other encoding: LINEAR16 decodes to float32 values FLOAT32 holds exactly.
    net.ip2_val_b = f32(maia.ip2_val_b.values)
    net.value = net.value.replace(gammas=None)  # all ones: engines read the absence as 1
    net.policy1 = net.policy1.replace(biases=f32(np.full(64, 0.25)))
    expected = {
        "residual.2.conv1.weights": diff.CHANGED,
        "ip2_val_b": diff.REENCODED,
        "value.gammas": diff.ONLY_A,
        "policy1.biases": diff.ONLY_B,
    }
    return net, expected


def test_known_edits(maia):
    net, expected = edited(maia)
    report = diff.compare(maia, net)
    assert {t.name: t.status for t in report.differing} == expected
    by_name = {t.name: t for t in report.tensors}
    w = by_name["residual.2.conv1.weights"]
    a = maia.residual[2].conv1.weights.values.astype(np.float64)
    # The edited element is |w| + 0.5 < 2, so float32 rounding of w + 0.5 is ≤ 2^-24·2 ≈ 1.2e-7.
    assert w.max_abs == pytest.approx(0.5, abs=2e-7) and w.max_abs_index == 123
    assert w.mean_abs == pytest.approx(0.5 / a.size, rel=1e-6)
    assert w.rel_l2 == pytest.approx(0.5 / np.linalg.norm(a), rel=1e-6)
    assert (w.encoding_a, w.encoding_b) == ("LINEAR16", "FLOAT32")
    assert by_name["ip2_val_b"].max_abs == 0.0
    # Against the engine defaults: absent gammas = 1 (value gammas are exactly 1), absent biases = 0.
    assert by_name["value.gammas"].max_abs == 0.0
    assert by_name["policy1.biases"].max_abs == 0.25 and by_name["policy1.biases"].rel_l2 is None
    # B-only tensors sit where B has them: biases right after policy1.weights.
    names = [t.name for t in report.tensors]
    assert names.index("policy1.biases") == names.index("policy1.weights") + 1
    text = diff.render(report)
    assert "4 of 106 tensors differ" in text
    for name in expected:
        assert any(line.startswith(name + " ") for line in text.splitlines())


def test_cli_names_exactly_the_changed_tensors(maia, tmp_path, run_cli):
    net, expected = edited(maia)
    path = tmp_path / "edited.pb.gz"
    pipeline.save(net, str(path))
    doc = json.loads(run_cli("diff", MAIA, path, "--json").stdout)
    assert set(doc["differing"]) == set(expected)
    # FLOAT32 layers need lc0 ≥ 0.33: the header change is reported too.
    assert any(m["field"] == "min_version" for m in doc["metadata"])


def test_mismatched_architecture(maia, tmp_path, run_cli):
    small = maia.copy()
    small.residual = small.residual[:5]
    assert diff.architecture_problems(maia, small) == ["blocks: A has 6, B has 5"]
    path = tmp_path / "five.pb.gz"
    pipeline.save(small, str(path))
    result = run_cli("diff", MAIA, path)
    assert result.exit_code == 2
    assert result.stderr == f"lcconvert: {path}: not the same architecture as {MAIA}: blocks: A has 6, B has 5\n"
    # Same block structure, one tensor of another length.
    odd = maia.copy()
    odd.ip1_val_w = f32(np.zeros(maia.ip1_val_w.size - 64))
    with pytest.raises(NetworkError, match=r"ip1_val_w: 262144 values in A, 262080 in B"):
        diff.compare(maia, odd)


def test_missing_file(run_cli, tmp_path):
    result = run_cli("diff", MAIA, tmp_path / "nope.pb.gz")
    assert result.exit_code == 2 and result.stderr.endswith("nope.pb.gz: no such file\n")


def test_diff_against_fold_names_changed_tensors(maia, tmp_path, run_cli):
    """An independent expectation from maia's facts (FORMATS.md §2, data README): a variances fold
    with β into the means rewrites, in each of the 15 batch-norm blocks, the means, removes γ and β,
    adds biases, and changes the variances only where γ ≠ 1 (input and every conv2); conv weights,
    SE units, FC layers and the conv policy are untouched."""
    out = tmp_path / "folded.pb.gz"
    assert run_cli("fold-bias", MAIA, out, "--gamma-into", "variances", "--no-verify").exit_code == 0
    report = diff.compare(maia, io.load(str(out)))
    learned_gamma = {"input"} | {f"residual.{i}.conv2" for i in range(6)}
    expected = set()
    for name, _ in maia.bn_blocks():
        expected |= {f"{name}.means", f"{name}.gammas", f"{name}.betas", f"{name}.biases"}
        if name in learned_gamma:
            expected.add(f"{name}.variances")
    assert {t.name for t in report.differing} == expected


def test_diff_all_lists_every_architecture_difference(run_cli):
    example = ROOT / "examples" / "example-4x32-se.pb.gz"
    r = run_cli("diff", MAIA, example)
    assert r.exit_code == 2 and "(and 2 more; --all lists them)" in r.stderr and r.stdout == ""
    r = run_cli("diff", MAIA, example, "--all")
    assert r.exit_code == 2 and r.stdout.splitlines() == [
        "blocks: A has 6, B has 4", "filters: A has 64, B has 32",
        "heads: A has ('policy1', 'policy', 'value'), B has ('policy1', 'policy', 'value', 'moves_left')"]
