"""One way to write a network: read → transform → serialize → verify against the input → atomic write.

Why one path: every command that writes a network (`convert`, `fold-bias`, and
any later writer such as a recalibration) owes the user the same promises — the
input is never modified, an existing OUT needs --force, `-` is standard output,
nothing is written unless the whole result exists and (when a check is given)
computes what the input computes, and a failure leaves no partial file. Written
once here, they cannot drift apart between commands.

The stages, in order:
  1. refuse an unusable OUT before any work (`files.check_output_path`);
  2. read IN by content (`io.load`), optionally with the ε its statistics were
     trained with, and refuse a network unfit to write from (`verify.require_usable`:
     NaN/Inf, σ²+ε ≤ 0, impossible LINEAR16 ranges, unknown or inconsistent format
     enums) — exit 2 naming the first bad layer;
  3. choose the output format (OUT's name or `to`) and encoding (`io.default_encoding`
     unless the user named one);
  4. apply the transform, a pure `Network → Network` map that receives the output
     encoding (a fold encodes the fields it computes in it);
  5. serialize, and re-read the very bytes about to be written — so a check sees
     what an engine will see, text formatting and LINEAR16 rounding included;
  6. refuse an output that `verify` would reject (every reason an engine would
     refuse or misread the file), then run the check (written network against the
     input network); a failure raises `VerificationFailed` (exit 1) carrying both
     reports, and nothing is written;
  7. compress (gzip level by format) or, when the payload is IN's own (the
     transform changed nothing; for protobuf the message the writer would build
     equals IN's, then nothing is serialized; for text the serialized bytes have
     IN's digest) and OUT has IN's form, copy IN's file in the kernel — no
     inflate-deflate round trip; write atomically.

Transforms and checks are plain callables so that this module knows no fold math
and no verification rule; the caller names what a failed check means.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from lcconvert import files, io, progress, verify
from lcconvert.codecs import Encoding
from lcconvert.errors import NetworkError, UnsupportedError, VerificationFailed
from lcconvert.network import Network
from lcconvert.transforms import stored_form


class TransformReport(Protocol):
    """What a transform reports; the pipeline adds the writer's notes and the written min_version."""

    notes: list[str]
    changed: bool  # False: the output network is the input network (same tensors, same header)
    min_version_after: tuple[int, int, int] | None

    def to_dict(self) -> dict: ...


# (network, output encoding or None) -> (new network, its report)
Transform = Callable[..., tuple[Network, TransformReport]]


@dataclass
class Check:
    """A check of the written network against the input: `run(written, source)` returns a report
    with `.passed` and `.reasons`; `failure` says what a failed check means, for the error line."""

    run: Callable[[Network, Network], object]
    failure: str
    # Which inputs the check is for (None: every input), decided once IN is read.
    applies: Callable[[Network], bool] | None = None


@dataclass
class Written:
    """What `write_file` did: the transform's report, the check's report, the output file."""

    out: str
    kind: str
    bytes_written: int
    copied_input: bool
    notes: list[str] = field(default_factory=list)
    report: TransformReport | None = None
    verification: object | None = None

    def to_dict(self, report_name: str = "report") -> dict:
        return {"output": self.out, "format": self.kind, "bytes": self.bytes_written,
                "copied_input": self.copied_input,
                report_name: self.report.to_dict() if self.report is not None else None,
                "verification": self.verification.to_dict() if self.verification is not None else None}


def read(src: str, *, epsilon: float | None = None, checkpoint_options: dict | None = None) -> Network:
    """IN as the pipeline transforms it: `epsilon` overrides the batch-norm ε its statistics were
    trained with (a fact about IN that no file records), and IN is evaluated with it everywhere."""
    net = io.load(src, checkpoint_options=checkpoint_options)
    if epsilon is not None:
        net.epsilon = float(epsilon)
    return net


def write_file(src: str, out: str, *, to: str | None = None, encoding: Encoding | None = None,
               force: bool = False, transform: Transform | None = None, backwards_compatible: bool = False,
               check: Check | None = None, on_checked: Callable[[object], None] | None = None,
               epsilon: float | None = None, checkpoint_options: dict | None = None) -> Written:
    """Read SRC, transform it, check the result against SRC, write OUT atomically (module docstring).

    backwards_compatible: protobuf output defaults to LINEAR16, the encoding every
    engine reads (a fold's purpose). `on_checked` sees the check's report whether
    it passed or not (the CLI prints it).
    """
    files.check_output_path(out, [src], force)
    net = verify.require_usable(read(src, epsilon=epsilon, checkpoint_options=checkpoint_options))
    kind = io.output_kind(out, to)
    if kind == io.PB or io.wants_gzip(out, kind):
        files.refuse_terminal(out, force)
    if kind == io.TEXT and encoding is not None:
        raise UnsupportedError(out, f"--encoding {encoding.label} applies to protobuf output; "
                                    "text weights are always written as decimal float32")
    if encoding is None:
        encoding = io.default_encoding(net, kind, backwards_compatible=backwards_compatible)
    if check is not None and check.applies is not None and not check.applies(net):
        check = None
    result, report = (net, None) if transform is None else transform(net, encoding=encoding)
    if transform is not None:
        # Peak memory of big networks: IN keeps its bytes, not the decodes the transform made of them,
        # and the result keeps the bytes the writer will write, not the floats they were made from.
        for _, t in net.tensors():
            t.forget_decode()
        result = stored_form(result, encoding)
    same_form = kind == net.source.kind and io.wants_gzip(out, kind) == net.source.compressed and src != "-"
    # IN's own message, unchanged (a protobuf convert with nothing to change): the written network is
    # IN itself, so IN stands for the re-read, and in IN's form IN's bytes are the output — neither
    # serialized nor parsed again (seconds each for a 0.4 GB payload).
    unchanged = transform is None and epsilon is None and not io.rewrites_input(net, kind, encoding)
    if unchanged and same_form:
        data, notes = None, []
    else:
        data, notes = io.serialize(result, kind, encoding)
        # Text weights: the very bytes IN holds when they have its digest.
        unchanged = unchanged or (kind == net.source.kind and net.source.payload_digest is not None
                                  and io.payload_digest(data) == net.source.payload_digest)
    del result  # the bytes hold it now; on big networks every copy alive counts (peak memory)
    verification = None
    written = net if unchanged and epsilon is None else io.parse(data, kind, out)
    problems = verify.check(written)
    if problems:
        raise NetworkError(src, f"the output would carry a problem that engines refuse or misread: {problems[0]}; "
                                "nothing written")
    if report is not None or check is not None:
        if report is not None:
            report.notes += notes
            report.min_version_after = written.min_version
        if check is not None:
            verification = check.run(written, net)
            if on_checked is not None:
                on_checked(verification)
            if not verification.passed:
                err = VerificationFailed(out, f"{check.failure} ({verification.reasons[0]}); nothing written")
                err.verification = verification
                err.report = report
                raise err
    copied = same_form and (unchanged or (report is not None and not report.changed))
    del written
    if copied:
        del data  # the input's compressed bytes replace it
    with progress.stage(f"writing {out}"):
        if copied:
            size = files.copy_atomic(out, src)
        else:
            data = io.pack(data, out, kind)
            files.write_atomic(out, data)
            size = len(data)
    return Written(out, kind, size, copied, notes, report, verification)


def save(net: Network, path: str, to: str | None = None, encoding: Encoding | None = None,
         force: bool = False, inputs: tuple[str, ...] = (), level: int | None = None) -> list[str]:
    """Write an in-memory `net` to `path` atomically, by the same output rules; returns notes for the user.

    For networks that exist only in memory (generated ones, tests); files go through `write_file`.
    """
    files.check_output_path(path, list(inputs), force)
    kind = io.output_kind(path, to)
    if encoding is None:
        encoding = io.default_encoding(net, kind)
    data, notes = io.serialize(net, kind, encoding)
    files.write_atomic(path, io.pack(data, path, kind, level))
    return notes
