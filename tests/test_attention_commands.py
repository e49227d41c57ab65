"""Attention-era networks through the commands: eval, verify, inspect, diff, convert --encoding, fold-bias."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from conftest import DATA
from lcconvert import forward, io, versions
from lcconvert.formats import lc0_proto

ATTENTION = DATA / "attention"
BODY = ATTENTION / "attn-body-headformat.pb.gz"
MULTI = ATTENTION / "attn-multihead.pb.gz"
FP16 = ATTENTION / "attn-multihead-fp16.pb.gz"
CONV = ATTENTION / "conv-attnpolicy.pb.gz"


def _ref(path):
    return np.load(str(path).replace(".pb.gz", ".lc0.npz"))


def _write_edited(path, src, edit):
    msg = lc0_proto.net_pb2.Net()
    msg.ParseFromString(gzip.decompress(src.read_bytes()))
    edit(msg.weights)
    path.write_bytes(gzip.compress(msg.SerializeToString()))
    return path


# -- eval -----------------------------------------------------------------------------------------

def test_eval_matches_lc0_with_every_head(tmp_path, run_cli):
    planes = ATTENTION / "attn-multihead.lc0.npz"
    ref = _ref(MULTI)
    for head, key in ((None, "logits"), ("soft", "logits_soft"), ("opponent", "logits_opponent")):
        out = tmp_path / f"{head}.npz"
        args = ["eval", MULTI, "--planes", planes, "--out", out] + (["--policy-head", head] if head else [])
        r = run_cli(*args)
        assert r.exit_code == 0, r.stderr
        got = np.load(out)
        assert np.abs(got["policy_logits"] - ref[key]).max() < 1e-4  # measured ≤ 5.6e-6
    r = run_cli("eval", MULTI, "--planes", planes, "--value-head", "st", "--json")
    assert r.exit_code == 0
    assert np.abs(np.array(json.loads(r.stdout)["wdl"]) - ref["wdl_st"]).max() < 1e-5


def test_eval_unknown_head_is_exit_2(run_cli):
    r = run_cli("eval", MULTI, "--planes", ATTENTION / "attn-multihead.lc0.npz", "--policy-head", "optimistic_st")
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.strip() == (f"lcconvert: {MULTI}: policy head 'optimistic_st' does not exist in this network "
                                "(heads: vanilla, optimistic, soft, opponent)")


def test_eval_mismatched_encoder_layer_is_exit_2(tmp_path, run_cli):
    def bad(w):
        w.encoder[0].ffn.dense2_b.params = w.encoder[0].ffn.dense2_b.params[:-2]
    src = _write_edited(tmp_path / "bad.pb.gz", BODY, bad)
    r = run_cli("eval", src, "--planes", ATTENTION / "attn-body-headformat.lc0.npz")
    assert r.exit_code == 2
    assert r.stderr.strip() == f"lcconvert: {src}: encoder.0.ffn.dense2_b: 31 values, expected 32"
    r = run_cli("verify", src)  # verify lists it as a structure problem: a failed check, exit 1
    assert r.exit_code == 1 and "encoder.0.ffn.dense2_b: 31 values, expected 32" in r.stdout


def test_reader_names_a_bad_layer_for_every_command(tmp_path, run_cli):
    def bad(w):
        w.policy_heads.opponent.ip4_pol_w.params = w.policy_heads.opponent.ip4_pol_w.params[:-2]
    src = _write_edited(tmp_path / "bad.pb.gz", MULTI, bad)
    out = tmp_path / "out.pb.gz"
    for args in (("convert", src, out), ("inspect", src), ("diff", MULTI, src), ("fold-bias", src, out)):
        r = run_cli(*args)
        assert r.exit_code == 2 and not out.exists(), args
        assert r.stderr.strip() == f"lcconvert: {src}: policy_heads.opponent.ip4_pol_w: 255 values, expected 256 (4×64)"


def test_rpe_net_is_read_but_not_evaluated(tmp_path, run_cli):
    src = _write_edited(tmp_path / "rpe.pb.gz", BODY, lambda w: w.encoder[0].mha.rpe_q.CopyFrom(w.encoder[0].mha.q_b))
    assert run_cli("inspect", src).exit_code == 0
    r = run_cli("eval", src, "--planes", ATTENTION / "attn-body-headformat.lc0.npz")
    assert r.exit_code == 2 and r.stderr.strip() == (f"lcconvert: {src}: encoder.0.mha: RPE weights file not supported "
                                                     "(lc0 refuses relative position encodings the same way)")


def test_missing_head_is_exit_2(tmp_path, run_cli):
    src = _write_edited(tmp_path / "nohead.pb.gz", MULTI, lambda w: w.policy_heads.ClearField("vanilla"))
    out = tmp_path / "out.pb.gz"
    r = run_cli("convert", src, out, "--encoding", "float16")
    assert r.exit_code == 2 and not out.exists()
    assert r.stderr.strip().endswith("policy_heads.vanilla: missing (lc0 reads its policy from it)")


# -- verify, inspect, diff -------------------------------------------------------------------------

@pytest.mark.parametrize("path", [BODY, MULTI, FP16, CONV])
def test_verify_passes(run_cli, path):
    r = run_cli("verify", path, "--positions", "4")
    assert r.exit_code == 0, r.stdout
    assert "structure and numerics: ok" in r.stdout
    # No engine that ignores γ/β runs attention at all: --legacy must fail.
    assert run_cli("verify", path, "--legacy", "--positions", "4").exit_code == 1


def test_verify_against_compares_every_head(run_cli):
    r = run_cli("verify", FP16, "--against", MULTI, "--positions", "8", "--json")
    assert r.exit_code == 0
    heads = {h["head"]: h for h in json.loads(r.stdout)["against"]["heads"]}
    assert {"policy", "policy[optimistic]", "policy[soft]", "policy[opponent]", "value[q]", "wdl[st]"} <= set(heads)
    # The README's figure: FLOAT16 moves the logits by up to 6e-3 — far from zero, within 2× the floor.
    assert all(0 < h["max_abs"] <= h["limit"] for h in heads.values())


def test_verify_against_detects_a_changed_head(tmp_path, run_cli):
    def change(w):
        layer = w.policy_heads.soft.ip2_pol_b
        layer.max_val = layer.max_val + 0.5
    other = _write_edited(tmp_path / "other.pb.gz", MULTI, change)
    r = run_cli("verify", other, "--against", MULTI, "--positions", "8")
    assert r.exit_code == 1 and "policy[soft]" in r.stderr


def test_inspect_attention(run_cli):
    info = json.loads(run_cli("inspect", MULTI, "--json").stdout)
    a = info["attention"]
    assert (a["embedding"], a["heads"], a["encoder"]["layers"], a["encoder"]["ffn"]) == (64, 4, 2, 128)
    assert a["input_embedding"] == "PE_DENSE" and a["pe_dense_channels"] == 4 and a["gating"]
    assert a["encoder"]["smolgen"] == {"channels_per_square": 8, "hidden": 64, "generated": 64}
    assert a["activations"] == {"default": "mish", "ffn": "mish", "smolgen": "swish"}
    assert a["policy_heads"] == ["vanilla", "optimistic", "soft", "opponent"] and a["value_heads"] == ["winner", "q", "st"]
    assert info["min_version"] == info["required_min_version"] == "0.31.0"
    text = run_cli("inspect", BODY).stdout
    assert "attention: 2 encoder layers, embedding 32, 2 heads, PE_MAP, input gating" in text
    assert "FFN 64 (relu_2), smolgen 4 ch/square → 32 → 32 (swish)" in text
    assert "lc0 reads     input_embedding unset: INPUT_EMBEDDING_PE_MAP" in text
    conv = run_cli("inspect", CONV).stdout
    assert "4 blocks x 32 filters, SE 8 channels" in conv and "1 encoder layer(s), 2 heads" in conv and "(selu)" in conv


def test_diff_attention(run_cli):
    r = run_cli("diff", MULTI, FP16)
    assert r.exit_code == 0
    assert "attention body: 2 encoder layers x 64 embedding, 4 heads" in r.stdout
    assert "115 of 115 tensors differ" in r.stdout and "encoder.0.mha.smolgen.dense1_w" in r.stdout
    assert "no differences: all 115 tensors identical" in run_cli("diff", MULTI, MULTI).stdout
    r = run_cli("diff", MULTI, CONV)
    assert r.exit_code == 2 and "not the same architecture" in r.stderr


# -- convert --encoding -----------------------------------------------------------------------------

def test_float16_linear16_round_trip(tmp_path, run_cli):
    l16, f16 = tmp_path / "l16.pb.gz", tmp_path / "f16.pb.gz"
    r = run_cli("convert", FP16, l16, "--encoding", "linear16")
    assert r.exit_code == 0, r.stderr
    assert "against" in r.stderr and ": pass" in r.stderr  # verified against IN before writing
    net = io.load(str(l16))
    assert net.encodings == ["LINEAR16"] and net.min_version == (0, 31, 0)  # multihead needs 0.31
    r = run_cli("convert", l16, f16, "--encoding", "float16")
    assert r.exit_code == 0, r.stderr
    back = io.load(str(f16))
    assert back.encodings == ["FLOAT16"] and back.min_version == versions.LAYER_ENCODINGS
    # The round trip is within the noise floor of the original FLOAT16 file.
    r = run_cli("verify", f16, "--against", FP16, "--positions", "8")
    assert r.exit_code == 0, r.stdout
    # And still computes lc0's outputs within LINEAR16's rounding (measured 1.6e-4 logits, 1.2e-5 WDL).
    ref = _ref(FP16)
    out = forward.evaluate(back, ref["planes"])
    assert np.abs(out.policy_logits - ref["logits"]).max() < 1e-3
    assert np.abs(out.wdl - ref["wdl"]).max() < 1e-4


@pytest.mark.parametrize("encoding,version", [("bfloat16", (0, 33, 0)), ("float32", (0, 33, 0)),
                                              ("linear16", (0, 30, 0))])
def test_convert_encodings_set_min_version(tmp_path, run_cli, encoding, version):
    out = tmp_path / "out.pb.gz"
    r = run_cli("convert", BODY, out, "--encoding", encoding)
    assert r.exit_code == 0, r.stderr
    net = io.load(str(out))
    assert net.min_version == version and net.encodings == [encoding.upper()]
    layer = net.attention.get("encoder.1.mha.smolgen.dense2_w")
    assert layer.encoding.label == encoding


def test_convert_without_encoding_keeps_the_bytes(tmp_path, run_cli):
    out = tmp_path / "out.pb"
    assert run_cli("convert", FP16, out).exit_code == 0
    assert out.read_bytes() == gzip.decompress(FP16.read_bytes())


def test_conv_body_attention_policy_min_version():
    assert versions.required(io.load(str(CONV))) == (0, 29, 0)  # attention policy (and mish): lc0 0.29
    assert versions.required(io.load(str(BODY))) == (0, 30, 0)


# -- fold-bias ---------------------------------------------------------------------------------------

def test_fold_conv_body_with_attention_policy(tmp_path, run_cli):
    out = tmp_path / "folded.pb.gz"
    r = run_cli("fold-bias", CONV, out)
    assert r.exit_code == 0, r.stderr
    assert "folded 11 of 11 batch-norm blocks" in r.stdout and "(legacy vs modern): pass" in r.stdout
    folded = io.load(str(out))
    assert all(b.gammas is None and b.betas is None for _, b in folded.bn_blocks())
    # The attention policy head is carried over untouched, byte for byte.
    src = io.load(str(CONV))
    assert all(folded.attention.get(p).raw == t.raw for p, t in src.attention.tensors.items())
    # End to end against lc0: the folded file, read as an engine ignoring γ/β would, computes what lc0
    # computes on the original (measured: logits 7.3e-4, WDL 6e-5 — the LINEAR16 re-encoding of the
    # folded batch-norm fields); the original read that way does not.
    ref = _ref(CONV)
    legacy = forward.evaluate(folded, ref["planes"], semantics="legacy")
    assert np.abs(legacy.policy_logits - ref["logits"]).max() < 2e-3
    assert np.abs(legacy.wdl - ref["wdl"]).max() < 2e-4
    unfolded = forward.evaluate(src, ref["planes"], semantics="legacy")
    assert np.abs(unfolded.wdl - ref["wdl"]).max() > 1e-2


@pytest.mark.parametrize("path", [BODY, FP16])
def test_fold_attention_body_leaves_the_file(tmp_path, run_cli, path):
    out = tmp_path / "out.pb.gz"
    r = run_cli("fold-bias", path, out, "--no-verify")
    assert r.exit_code == 0
    assert "no batch norm to fold: attention body" in r.stdout and "unchanged" in r.stderr
    assert out.read_bytes() == path.read_bytes()


# -- inspect per-layer statistics ------------------------------------------------------------------

def test_layer_norm_statistics(run_cli):
    doc = json.loads(run_cli("inspect", MULTI, "--gammas", "--json").stdout)
    rows = {r["name"]: r for r in doc["gammas"]["layers"]}
    assert set(rows) == {"ip_emb_ln", "ip_emb_ffn_ln"} | {f"encoder.{i}.{n}" for i in (0, 1) for n in
                                                        ("ln1", "ln2", "mha.smolgen.ln1", "mha.smolgen.ln2")}
    g = io.load(str(MULTI)).attention.get("encoder.1.ln2_gammas").values
    assert rows["encoder.1.ln2"]["mean"] == pytest.approx(float(g.mean())) and rows["encoder.1.ln2"]["channels"] == 64
    # The data README: LN gammas U[0.6, 1.4].
    assert 0.6 <= doc["gammas"]["summary"]["min"] and doc["gammas"]["summary"]["max"] <= 1.4
    text = run_cli("inspect", CONV, "--betas").stdout
    assert "residual.3.conv2" in text and "pol_encoder.0.ln2" in text and "layer-norm betas" in text
    layers = run_cli("inspect", BODY, "--layers").stdout
    assert "encoder.1.mha.smolgen.dense2_w" in layers and "74 tensors, 312,924 parameters" in layers


def test_verify_against_notices_a_dropped_head(tmp_path, run_cli):
    src = _write_edited(tmp_path / "fewer.pb.gz", MULTI, lambda w: w.value_heads.ClearField("st"))
    r = run_cli("verify", src, "--against", MULTI, "--positions", "4")
    assert r.exit_code == 1 and "REF has value head(s) st, NET has not" in r.stderr
