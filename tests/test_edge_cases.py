"""Edge cases found by trying the commands as a user would (each once misbehaved)."""
from __future__ import annotations

import gzip
import io as _io
import os
import stat

import numpy as np

from lcconvert import io, synth
from lcconvert._proto import net_pb2
from lcconvert.formats import text

from conftest import LZ_0K, MAIA


def _classical_chess_text(tmp_path):
    """A classical chess net (one-value value bias, often negative) written as Lc0 text v2."""
    for seed in range(50):
        net = synth.make_network("chess", blocks=1, filters=8, se_ratio=None, policy="classical",
                                 value="classical", gammas=False, betas=False, biases=True, seed=seed)
        if net.ip2_val_b.values[0] < 0:
            path = tmp_path / "chess.txt"
            path.write_bytes(text.write(net))
            return path
    raise AssertionError("no seed gave a negative value bias")


def test_text_to_pb_is_readable_by_old_lc0_and_verifies(tmp_path, run_cli):
    src = _classical_chess_text(tmp_path)
    out = tmp_path / "chess.pb.gz"
    assert run_cli("convert", src, out, "--encoding", "linear16").exit_code == 0
    msg = net_pb2.Net.FromString(gzip.decompress(out.read_bytes()))
    # lc0 before v0.33 refuses a file whose Format.weights_encoding is not LINEAR16.
    assert msg.format.HasField("weights_encoding") and msg.format.weights_encoding == 1
    assert msg.min_version.minor < 33
    # The one-value layer stores min = 0, max = x < 0: valid, and verify must accept it.
    assert msg.weights.ip2_val_b.min_val > msg.weights.ip2_val_b.max_val
    r = run_cli("verify", out)
    assert r.exit_code == 0, r.output


def test_verify_flags_a_missing_weights_encoding(tmp_path, run_cli):
    msg = net_pb2.Net.FromString(gzip.decompress(MAIA.read_bytes()))
    msg.format.ClearField("weights_encoding")
    bad = tmp_path / "no-encoding.pb.gz"
    bad.write_bytes(gzip.compress(msg.SerializeToString()))
    r = run_cli("verify", bad)
    assert r.exit_code == 1 and "weights_encoding" in r.stdout


def test_encoding_is_refused_for_text_output(tmp_path, run_cli):
    out = tmp_path / "x.txt"
    r = run_cli("convert", LZ_0K, out, "--encoding", "float16")
    assert r.exit_code == 2 and "applies to protobuf output" in r.stderr and not out.exists()


def test_output_symlink_keeps_the_link_and_replaces_its_target(tmp_path, run_cli):
    target = tmp_path / "target.pb.gz"
    target.write_bytes(b"old")
    link = tmp_path / "link.pb.gz"
    link.symlink_to(target.name)
    assert run_cli("convert", MAIA, link, "--force").exit_code == 0
    assert link.is_symlink() and os.readlink(link) == target.name
    assert io.load(str(target)).blocks == 6


def test_output_to_a_device_writes_through_it(run_cli):
    before = os.stat("/dev/null")
    assert run_cli("convert", MAIA, "/dev/null", "--force").exit_code == 0
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev


def test_output_under_a_file_names_the_real_problem(tmp_path, run_cli):
    r = run_cli("convert", MAIA, tmp_path / "x" / "out.pb.gz")
    assert r.exit_code == 2 and "does not exist" in r.stderr
    (tmp_path / "file").write_bytes(b"")
    r = run_cli("convert", MAIA, tmp_path / "file" / "out.pb.gz")
    assert r.exit_code == 2 and "is not a folder" in r.stderr


def test_negative_seed_is_a_usage_error(run_cli):
    r = run_cli("verify", MAIA, "--seed", "-5")
    assert r.exit_code == 2 and "Traceback" not in r.output


def test_verify_against_another_family_is_refused(run_cli):
    r = run_cli("verify", MAIA, "--against", LZ_0K)
    assert r.exit_code == 2
    assert "go network cannot be compared" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_eval_planes_from_stdin_and_non_real_planes(tmp_path, run_cli):
    planes = np.load(MAIA.parent / "reference" / "maia-1100.lc0.npz")["planes"][:2]
    buf = _io.BytesIO()
    np.save(buf, planes)
    r = run_cli("eval", MAIA, "--planes", "-", "--json", input=buf.getvalue())
    assert r.exit_code == 0, r.stderr
    bad = tmp_path / "complex.npy"
    np.save(bad, planes.astype(np.complex64))
    r = run_cli("eval", MAIA, "--planes", bad)
    assert r.exit_code == 2 and "real numbers" in r.stderr


def test_text_overflow_and_trailing_spaces(tmp_path, run_cli):
    lines = LZ_0K.read_bytes().split(b"\r\n")
    spaced = tmp_path / "spaced.txt"
    spaced.write_bytes(b"\r\n".join([lines[0] + b"  "] + lines[1:]))  # "1  " as the version line
    assert run_cli("inspect", spaced).exit_code == 0
    overflow = tmp_path / "overflow.txt"
    overflow.write_bytes(b"\r\n".join(lines[:2] + [b"1e39 " + lines[2]] + lines[3:]))
    r = run_cli("inspect", overflow)
    assert r.exit_code == 2
    assert "line 3: value 1 ('1e39') overflows float32" in r.stderr
