"""Every command on every input of the deterministic damage corpus keeps lcconvert's promises (tests/mutations.py).

Over 1,600 runs: seven commands × 234 damaged inputs built from the real networks
in ../shared/data (an attention net among them) and a generated one (truncations, byte and bit flips, fields
duplicated and removed, shapes changed, NaN/Inf, unknown enums, concatenations,
decompression bombs). Outside CI, `python tests/mutations.py --seeds 20` runs 20
times as many mutations.
"""
from __future__ import annotations

import mutations


def test_damage_corpus_keeps_every_promise(tmp_path, monkeypatch):
    monkeypatch.setenv("LCCONVERT_MAX_INFLATE", mutations.BOMB_CAP)
    corpus = mutations.cases(tmp_path)
    assert len(corpus) >= 1000
    assert {c.command for c in corpus} == set(mutations.COMMANDS)
    base_files = {}
    for name, (data, suffix, _) in mutations.bases(tmp_path).items():
        base_files[name] = tmp_path / f"base-{name}{suffix}"
        base_files[name].write_bytes(data)
    work = tmp_path / "work"
    work.mkdir()
    outcomes = mutations.run_all(corpus, work, base_files)
    report = mutations.summary(outcomes)
    assert not any(o.violations for o in outcomes), report
    # The corpus must exercise both sides: damage refused (exit 2) and inputs that still work (exit 0).
    codes = {o.exit_code for o in outcomes}
    assert {0, 2} <= codes, report
    # Every bomb is refused by the cap, not by memory.
    bombs = [o for o in outcomes if ":bomb" in o.case]
    assert bombs and all(o.exit_code == 2 and "LCCONVERT_MAX_INFLATE" in o.first_line for o in bombs), report
