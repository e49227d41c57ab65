"""Engine generations (issue 11): emulations of lc0 ≥ 0.21, lc0 0.20.x and lc0 ≤ 0.19 against real engines' outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DATA, MAIA

from lcconvert import engines, fold, forward, io, verify

LEGACY = DATA / "legacy"
DEFINED_V020 = ("classic-neg-gamma", "se-mixed", "classic-plain")
ALL = (*DEFINED_V020, "classic-gb-bias")


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def nets():
    return {n: io.load(str(LEGACY / f"{n}.pb.gz")) for n in ALL}


@pytest.mark.parametrize("name", DEFINED_V020)
def test_v020_emulation_matches_the_real_v0202(nets, name):
    """Emulated v0.20.2 (its decode and its γ/β merge) against the real engine's log-probabilities.

    Measured: max |Δp| 3.1e-7 (classic-neg-gamma), 5.2e-8 (se-mixed), 9.9e-8 (classic-plain); |ΔQ| ≤ 6.5e-7.
    The bound 1e-5 is the issue's; it is 30× above those and far below the effect of a wrong reading
    (negative γ: 0.16, se-mixed: 0.52).
    """
    ref = np.load(LEGACY / f"{name}.lc0-0.20.2.npz")
    out = engines.evaluate(nets[name], ref["planes"], "lc0-0.20")
    assert np.abs(out.policy - np.exp(ref["logprobs"])).max() <= 1e-5
    assert np.abs(out.value - ref["q"]).max() <= 1e-5
    # The old engine really does differ from modern semantics on the nets with negative/zero γ.
    modern = engines.evaluate(nets[name], ref["planes"], "modern")
    differs = np.abs(modern.policy - out.policy).max()
    assert (differs > 1e-2) == (name != "classic-plain"), differs


def test_v020_decode_needs_its_single_rounding(nets):
    """On se-mixed the exactly-0 γ of the modern decode come out tiny but non-zero in v0.20.2 (which its
    merge turns into huge variances): the emulation's decode reproduces that, the modern decode does not."""
    block = nets["se-mixed"].input
    modern, old = block.gammas.values, engines.decode_v020(block.gammas)
    zero = modern == 0
    assert zero.any() and np.all(old[zero] != 0) and np.abs(old[zero]).max() < 1e-5


def test_v020_with_input_biases_and_gamma_beta_is_undefined(nets):
    net = nets["classic-gb-bias"]
    why = engines.undefined(net, "lc0-0.20")
    assert why and "undefined" in why and why.startswith("input")
    with pytest.raises(ValueError, match="undefined"):
        engines.evaluate(net, np.load(LEGACY / "classic-gb-bias.lc0.npz")["planes"], "lc0-0.20")
    # The real engine indeed gave NaN in 7 of 8 positions: nothing to reproduce.
    assert np.isnan(np.load(LEGACY / "classic-gb-bias.lc0-0.20.2.npz")["logprobs"]).any()
    result = verify.generations(net, positions=4).results
    assert [r.status for r in result] == ["correct", "undefined", "differs"]


@pytest.mark.parametrize("name", ALL)
def test_modern_emulation_matches_current_lc0(nets, name):
    """Measured: logits within 3e-5 and Q within 1.3e-6 of current lc0 (BLAS backend, float32)."""
    ref = np.load(LEGACY / f"{name}.lc0.npz")
    out = engines.evaluate(nets[name], ref["planes"], "modern")
    assert np.abs(out.policy_logits - ref["logits"]).max() <= 5e-5
    assert np.abs(out.policy - _softmax(ref["logits"].astype(np.float64))).max() <= 1e-5
    assert np.abs(out.value - ref["q"]).max() <= 5e-6


@pytest.mark.parametrize("name, correct_by", [
    ("classic-plain", ["modern", "lc0-0.20", "lc0-0.19"]),
    ("classic-neg-gamma", ["modern"]),
    ("se-mixed", ["modern"]),
    ("classic-gb-bias", ["modern"]),
])
def test_computed_correctly_by(nets, name, correct_by):
    report = verify.generations(nets[name], positions=8)
    assert report.correct_by == correct_by
    assert report.summary_line().startswith("computed correctly by: modern")


@pytest.mark.parametrize("name", ALL)
def test_fold_of_each_legacy_net_is_computed_by_every_generation(nets, name):
    """The folded file, read by emulated v0.20.2 and ≤ 0.19, reproduces current lc0's outputs of the original
    on the real reference positions, within the LINEAR16 rounding floor `verify --against` measures."""
    folded, _ = fold.fold(nets[name], encoding=None)
    folded = io.parse(io.serialize(folded, io.PB)[0], io.PB, "<folded>")  # the bytes an engine would read
    ref = np.load(LEGACY / f"{name}.lc0.npz")
    against = verify.compare(folded, nets[name], legacy=True, positions=32)
    assert against.passed, against.reasons
    floor = {h.head: h.floor for h in against.heads}
    expect = forward.evaluate(nets[name], ref["planes"], "modern", np.float64)
    for g in engines.OLDER:
        out = engines.evaluate(folded, ref["planes"], g)
        # 2× the floor measured on 32 random positions, plus lc0's own float32 arithmetic (1e-5).
        assert np.abs(out.policy - expect.policy).max() <= 2 * floor["policy"] + 1e-5, g
        assert np.abs(out.value - expect.value).max() <= 2 * floor["value"] + 1e-5, g
    assert verify.generations(folded, positions=8).correct_by == list(engines.GENERATIONS)


def test_cli_verify_engines(run_cli):
    net = LEGACY / "classic-neg-gamma.pb.gz"
    r = run_cli("verify", net, "--engine", "lc0-0.20")
    assert r.exit_code == 1
    assert "computed correctly by: modern (lc0 ≥ 0.21)\n" in r.stdout
    assert "lc0-0.20  lc0 0.20.x                differs" in r.stdout
    assert "lc0-0.19" not in r.stdout.split("computed correctly by")[1]  # only the asked generation
    r = run_cli("verify", net, "--engine", "modern")
    assert r.exit_code == 0, r.output
    r = run_cli("verify", LEGACY / "classic-plain.pb.gz", "--legacy", "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.stdout)
    assert info["engines"]["correct_by"] == ["modern", "lc0-0.20", "lc0-0.19"]
    r = run_cli("verify", LEGACY / "classic-gb-bias.pb.gz")  # plain verify: the line, no failure for it
    assert "computed correctly by: modern (lc0 ≥ 0.21)" in r.stdout


def test_cli_inspect_and_fold_bias_say_which_generations(run_cli, tmp_path):
    r = run_cli("inspect", LEGACY / "classic-neg-gamma.pb.gz")
    assert r.exit_code == 0 and "computed correctly by: modern (lc0 ≥ 0.21)" in r.stdout
    out = tmp_path / "folded.pb.gz"
    r = run_cli("fold-bias", LEGACY / "classic-neg-gamma.pb.gz", out)
    assert r.exit_code == 0, r.output
    assert ("computed correctly by: modern (lc0 ≥ 0.21), lc0-0.20 (lc0 0.20.x), lc0-0.19 (lc0 ≤ 0.19 / "
            "Leela Zero)") in r.stdout
    r = run_cli("inspect", out, "--json")
    assert json.loads(r.stdout)["computed_correctly_by"] == ["modern", "lc0-0.20", "lc0-0.19"]
    r = run_cli("inspect", MAIA)
    assert "computed correctly by: modern (lc0 ≥ 0.21), lc0-0.20 (lc0 0.20.x)\n" in r.stdout + "\n"


# -- shared evaluations: each forward pass once, none that is another by construction --------------

def _folded(net):
    folded, _ = fold.fold(net, encoding=None)
    return io.parse(io.serialize(folded, io.PB)[0], io.PB, "<folded>")


@pytest.mark.parametrize("name", ("classic-neg-gamma", "se-mixed"))
def test_without_gamma_beta_every_generation_is_modern_arithmetic_bit_for_bit(nets, name):
    """The identity `Evaluations` relies on to skip passes, checked by running the passes it skips: on a
    folded file (no γ/β layer, the engines' ε) legacy semantics give modern's outputs bit for bit, and
    lc0 0.20 gives its own decode evaluated with modern semantics bit for bit."""
    folded = _folded(nets[name])
    assert engines.same_in_every_generation(folded)
    planes = np.load(LEGACY / f"{name}.lc0.npz")["planes"][:8]
    modern = forward.Model(folded, "modern", np.float64)(planes)
    legacy = forward.Model(folded, "legacy", np.float64)(planes)
    v020 = engines.model(folded, "lc0-0.20")(planes)
    decoded = forward.Model(engines.decoded_as(folded, "lc0-0.20"), "modern", np.float64)(planes)
    for head in ("policy", "value", "wdl"):
        a, b = getattr(modern, head), getattr(legacy, head)
        if a is not None:
            assert np.array_equal(a, b), head
            assert np.array_equal(getattr(v020, head), getattr(decoded, head)), head
    # The original carries γ/β: no identity, every computation is its own.
    assert not engines.same_in_every_generation(nets[name])


def test_evaluations_run_each_distinct_pass_once(nets):
    net = nets["se-mixed"]
    planes = np.load(LEGACY / "se-mixed.lc0.npz")["planes"][:4]
    runs = engines.Evaluations(net, planes)
    for what in ("modern", "legacy", "lc0-0.19", "lc0-0.20", "lc0-0.20 decode", "modern", "lc0-0.19"):
        runs(what)
    assert runs.passes == 4  # modern, legacy (= lc0-0.19), lc0-0.20, its decode
    assert np.array_equal(runs("legacy").policy, forward.Model(net, "legacy", np.float64)(planes).policy)
    folded = engines.Evaluations(_folded(net), planes)
    for what in ("modern", "legacy", "lc0-0.19", "lc0-0.20", "lc0-0.20 decode"):
        folded(what)
    assert folded.passes == 2  # modern (= legacy = lc0-0.19) and lc0 0.20's decode (= lc0-0.20)
    with pytest.raises(ValueError):
        runs("lc0-0.18")


def test_fold_check_runs_three_forward_passes(nets, monkeypatch):
    """fold-bias's verification of a LINEAR16 input: REF, OUT (its legacy pass is its modern pass, and no
    older generation needs one of its own) and the rounding floor — 3 passes, not the 7 that the checks
    ran when asked separately; the verdicts are the same as those of the passes it skips."""
    net = nets["se-mixed"]
    folded = _folded(net)
    calls = []
    real = forward.Model.heads
    monkeypatch.setattr(forward.Model, "heads", lambda self, *a, **k: calls.append(self.semantics) or real(self, *a, **k))
    check = verify.fold_check(folded, net, positions=8)
    assert len(calls) == 3, calls
    assert check.passed and check.engines.correct_by == list(engines.GENERATIONS)
    monkeypatch.setattr(forward.Model, "heads", real)
    measured = verify.generations(folded, positions=8)
    assert measured.correct_by == list(engines.GENERATIONS)
    assert all(h.passed for r in measured.results for h in r.heads)
