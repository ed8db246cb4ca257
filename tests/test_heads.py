"""Heads against brute force: enumerate every label sequence of a tiny batch and compare.

Two entity types give 5 labels; sequences of at most 4 words give at most 625 paths each.
"""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from torchcrf import CRF

from ner.data.windows import collate, encode_sentence
from ner.heads import HEADS, CRFHead, Head, SoftmaxHead, build_head
from ner.heads.viterbi import DISALLOWED, viterbi_decode
from ner.model import NerTagger
from ner.tags import bio_constraints, build_labels

LABELS = build_labels(["DNA", "protein"])  # ['O', 'B-DNA', 'B-protein', 'I-DNA', 'I-protein']
NUM = len(LABELS)
LENGTHS = [4, 1, 3, 2]


def make_mask(lengths: list[int]) -> torch.Tensor:
    return torch.arange(max(lengths)).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)  # (batch, words)


def all_paths(length: int, valid_only: bool) -> torch.Tensor:
    """Every label sequence of `length` words (paths, length), optionally only the valid BIO ones."""
    paths = torch.tensor(list(itertools.product(range(NUM), repeat=length)))
    if valid_only:
        paths = paths[[is_valid(p) for p in paths.tolist()]]
    return paths


def is_valid(path: list[int]) -> bool:
    start, transitions, end = bio_constraints(LABELS)
    ok = bool(start[path[0]]) and bool(end[path[-1]])
    return ok and all(bool(transitions[a, b]) for a, b in itertools.pairwise(path))


def path_score(emissions, paths, transitions, start, end) -> torch.Tensor:
    """Score of each path (paths,) in float64: start + emissions + transitions + end."""
    e, t = emissions.double(), transitions.double()
    score = start.double()[paths[:, 0]] + end.double()[paths[:, -1]]
    score = score + e[torch.arange(paths.size(1)), paths].sum(dim=1)
    return score + t[paths[:, :-1], paths[:, 1:]].sum(dim=1)


def brute_best(emissions, mask, transitions, start, end, valid_only) -> list[list[int]]:
    best = []
    for i, n in enumerate(mask.sum(dim=1).tolist()):
        paths = all_paths(n, valid_only)
        best.append(paths[path_score(emissions[i, :n], paths, transitions, start, end).argmax()].tolist())
    return best


def random_crf_head(seed: int = 0) -> CRFHead:
    torch.manual_seed(seed)
    head = CRFHead(LABELS)
    with torch.no_grad():
        for p in head.parameters():
            p.normal_()  # the raw (unmasked) parameters under the parametrization
    return head


def raw(head: CRFHead, name: str) -> torch.Tensor:
    """The CRF's unconstrained parameter, so brute force does not reuse the code under test."""
    crf = head.crf
    return crf.parametrizations[name].original if name in crf.parametrizations else getattr(crf, name)


def test_bio_constraints_pairs():
    start, transitions, end = bio_constraints(LABELS)
    assert LABELS == ["O", "B-DNA", "B-protein", "I-DNA", "I-protein"]
    o, b_dna, b_prot, i_dna, i_prot = range(NUM)
    assert start.tolist() == [True, True, True, False, False]
    assert end.all()
    assert transitions[b_dna, i_dna] and transitions[i_dna, i_dna]
    assert not transitions[o, i_dna] and not transitions[b_prot, i_dna] and not transitions[i_prot, i_dna]
    assert transitions[:, o].all() and transitions[:, b_dna].all() and transitions[:, b_prot].all()
    assert not transitions[b_dna, i_prot] and transitions[b_prot, i_prot]


@pytest.mark.parametrize("constrained", [False, True])
@pytest.mark.parametrize("forbidden", [DISALLOWED, float("-inf")])
def test_viterbi_matches_brute_force(constrained, forbidden):
    torch.manual_seed(1)
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM) * 3
    transitions, start, end = torch.randn(NUM, NUM), torch.randn(NUM), torch.randn(NUM)
    if constrained:
        start_ok, transitions_ok, _ = bio_constraints(LABELS)
        transitions = transitions.masked_fill(~transitions_ok, forbidden)
        start = start.masked_fill(~start_ok, forbidden)
    expected = brute_best(emissions, mask, transitions, start, end, valid_only=constrained)
    assert viterbi_decode(emissions, mask, transitions, start, end) == expected


def test_viterbi_matches_pytorch_crf_decode():
    torch.manual_seed(2)
    crf = CRF(NUM, batch_first=True)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    lengths = [6, 1, 3, 6, 2, 5]
    mask = make_mask(lengths)
    emissions = torch.randn(len(lengths), 6, NUM)
    expected = crf.decode(emissions, mask)
    with torch.no_grad():
        got = viterbi_decode(emissions, mask, crf.transitions, crf.start_transitions, crf.end_transitions)
    assert got == expected


def test_crf_nll_matches_brute_force():
    head = random_crf_head()
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM)
    gold = [all_paths(n, valid_only=True)[-1].tolist() for n in LENGTHS]  # e.g. B-protein I-protein ...
    tags = torch.tensor([g + [-100] * (4 - len(g)) for g in gold])  # padding must be ignored
    params = [raw(head, name) for name in ("transitions", "start_transitions", "end_transitions")]
    nll = []
    for i, n in enumerate(LENGTHS):
        valid = all_paths(n, valid_only=True)
        log_z = torch.logsumexp(path_score(emissions[i, :n], valid, *params), dim=0)
        nll.append(log_z - path_score(emissions[i, :n], torch.tensor([gold[i]]), *params)[0])
    expected = torch.stack(nll).mean()
    loss = head(emissions, tags, mask)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    torch.testing.assert_close(loss.double(), expected, rtol=1e-5, atol=1e-4)


def test_crf_decode_matches_brute_force():
    head = random_crf_head(3)
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM) * 2
    params = [raw(head, name) for name in ("transitions", "start_transitions", "end_transitions")]
    assert head.decode(emissions, mask) == brute_best(emissions, mask, *params, valid_only=True)


@pytest.mark.parametrize("head_name,options", [("crf", {}), ("softmax", {"decode": "viterbi"})])
def test_constrained_decode_never_invalid(head_name, options):
    head = build_head(head_name, LABELS, **options)
    generator = torch.Generator().manual_seed(4)
    for trial in range(30):
        lengths = torch.randint(1, 7, (8,), generator=generator)
        lengths[0] = 6
        mask = make_mask(lengths.tolist())
        scale = [1.0, 30.0, 1000.0][trial % 3]
        emissions = torch.randn(8, 6, NUM, generator=generator) * scale
        emissions[..., 3:] += scale * 3  # push I- labels everywhere, including first words
        paths = head.decode(emissions, mask)
        assert [len(p) for p in paths] == lengths.tolist()
        assert all(is_valid(p) for p in paths)


def test_crf_no_gradient_into_disallowed_entries():
    head = random_crf_head(5)
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM, requires_grad=True)
    tags = torch.tensor([[1, 3, 0, 2], [0, 0, 0, 0], [2, 4, 4, 0], [1, 0, 0, 0]])
    head(emissions, tags, mask).backward()
    start_ok, transitions_ok, _ = bio_constraints(LABELS)
    for name, allowed in (("transitions", transitions_ok), ("start_transitions", start_ok)):
        grad = raw(head, name).grad
        assert (grad[~allowed] == 0).all()
        assert (grad[allowed] != 0).any()
    assert emissions.grad is not None


def test_crf_under_bf16_autocast():
    head = random_crf_head(6)
    mask = make_mask(LENGTHS)
    tags = torch.tensor([[1, 3, 0, 2], [0, 0, 0, 0], [2, 4, 4, 0], [1, 0, 0, 0]])
    projection = torch.nn.Linear(8, NUM)
    hidden = torch.randn(len(LENGTHS), 4, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        emissions = projection(hidden)
        assert emissions.dtype == torch.bfloat16
        loss = head(emissions, tags, mask)
        paths = head.decode(emissions, mask)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    torch.testing.assert_close(loss, head(emissions.float(), tags, mask))
    assert paths == head.decode(emissions.float(), mask)
    loss.backward()
    assert projection.weight.grad is not None


def test_crf_marginals_match_brute_force():
    head = random_crf_head(7)
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM)
    params = [raw(head, name) for name in ("transitions", "start_transitions", "end_transitions")]
    marginals = head.marginals(emissions, mask)
    assert marginals.dtype == torch.float32
    for i, n in enumerate(LENGTHS):
        valid = all_paths(n, valid_only=True)
        weights = path_score(emissions[i, :n], valid, *params).softmax(dim=0)  # (paths,)
        expected = torch.zeros(n, NUM, dtype=torch.float64)
        for t in range(n):
            expected[t].index_add_(0, valid[:, t], weights)
        torch.testing.assert_close(marginals[i, :n].double(), expected, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(marginals[i, :n].sum(dim=1), torch.ones(n))
    paths = head.decode(emissions, mask)
    scores = head.scores(emissions, mask, paths)
    for i, path in enumerate(paths):
        assert scores[i] == pytest.approx([marginals[i, t, label].item() for t, label in enumerate(path)])


def test_softmax_loss_is_masked_cross_entropy():
    torch.manual_seed(8)
    head = SoftmaxHead(LABELS)
    assert list(head.parameters()) == []
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM)
    tags = torch.randint(0, NUM, (len(LENGTHS), 4)).masked_fill(~mask, -100)
    torch.testing.assert_close(head(emissions, tags, mask), F.cross_entropy(emissions[mask], tags[mask]))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert head(emissions.bfloat16(), tags, mask).dtype == torch.float32


def test_softmax_argmax_decode_and_scores():
    torch.manual_seed(9)
    head = SoftmaxHead(LABELS, decode="argmax")
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM)
    paths = head.decode(emissions, mask)
    assert paths == [emissions[i, :n].argmax(dim=1).tolist() for i, n in enumerate(LENGTHS)]
    probs = emissions.softmax(dim=-1)
    expected = [[probs[i, t, label].item() for t, label in enumerate(p)] for i, p in enumerate(paths)]
    assert head.scores(emissions, mask, paths) == [pytest.approx(e) for e in expected]


def test_softmax_viterbi_is_best_valid_path_of_log_probs():
    torch.manual_seed(10)
    head = SoftmaxHead(LABELS, decode="viterbi")
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM) * 3
    zeros = torch.zeros(NUM, NUM), torch.zeros(NUM), torch.zeros(NUM)
    expected = brute_best(emissions.log_softmax(dim=-1), mask, *zeros, valid_only=True)
    assert head.decode(emissions, mask) == expected


def test_decode_modes_and_exported_decoders():
    torch.manual_seed(11)
    mask = make_mask(LENGTHS)
    emissions = torch.randn(len(LENGTHS), 4, NUM) * 3
    argmax, viterbi = SoftmaxHead(LABELS), SoftmaxHead(LABELS, decode="viterbi")
    assert (argmax.decode_modes, viterbi.decode_modes) == (("argmax", "viterbi"), ("viterbi", "argmax"))
    # either mode on request, whatever the head was configured with
    assert argmax.decode(emissions, mask, "viterbi") == viterbi.decode(emissions, mask)
    assert viterbi.decode(emissions, mask, "argmax") == argmax.decode(emissions, mask)
    assert argmax.export_decoder() is None and argmax.export_decoder("viterbi").kind == "softmax_viterbi"
    crf = random_crf_head(12)
    assert crf.decode_modes == ("crf",)
    with pytest.raises(ValueError, match="crf"):
        crf.decode(emissions, mask, "argmax")
    exported = crf.export_decoder()
    # the exported scores are the constrained ones: Viterbi with them is the head's own decode
    assert exported.kind == "crf" and not exported.transitions.requires_grad
    decoded = viterbi_decode(emissions, mask, exported.transitions, exported.start, exported.end)
    assert decoded == crf.decode(emissions, mask)
    for head in (argmax, viterbi, crf):  # what every caller relies on, checked at run time
        assert isinstance(head, Head) and set(head.decode_modes) <= {"argmax", "viterbi", "crf"}
    assert set(HEADS) == {"softmax", "crf"}


class WindowedEmissions:
    """Stands in for `NerTagger` in `NerTagger.sentence_emissions`: its forward gives fixed emissions."""

    def __init__(self, emissions: torch.Tensor) -> None:
        self.emissions = emissions

    def _emissions(self, batch: dict) -> torch.Tensor:
        return self.emissions


@pytest.mark.parametrize("head_name,options", [("crf", {}), ("softmax", {"decode": "viterbi"})])
def test_window_seams_never_give_invalid_bio(head_name, options):
    """A long sentence in several windows, with emissions that make every seam tempt an invalid join:
    the window owning the word before the seam says `O` there, the next window says `B-DNA I-DNA` across
    it. Each window's best path is valid on its own; cut at the seam and joined, they read `O I-DNA`."""
    head = build_head(head_name, LABELS, **options)
    o, b_dna, i_dna = LABELS.index("O"), LABELS.index("B-DNA"), LABELS.index("I-DNA")
    generator = torch.Generator().manual_seed(13)
    for trial in range(10):
        n_words = 30 + trial
        sentence = encode_sentence(0, [[7]] * n_words, [0] * n_words, ([1], [2]), max_length=10)
        batch = collate([(sentence, True)], pad_id=0)
        windows = sentence.windows
        assert len(windows) >= 5
        emissions = torch.randn(len(windows), batch["word_mask"].size(1), NUM, generator=generator)
        for a, b in itertools.pairwise(windows):
            seam = a.start + max(i for i, owned in enumerate(a.owned) if owned)  # last word `a` owns
            assert b.owned[seam + 1 - b.start] and seam >= b.start  # `b` owns the next one, and sees both
            emissions[windows.index(a), seam - a.start, o] = 50.0
            emissions[windows.index(b), seam - b.start, b_dna] = 50.0
            emissions[windows.index(b), seam + 1 - b.start, i_dna] = 50.0
        # the construction is adversarial: decoding window by window and joining the owned words fails
        joined = []
        for window, path in zip(windows, head.decode(emissions, batch["word_mask"]), strict=True):
            joined += [label for label, owned in zip(path, window.owned, strict=True) if owned]
        assert len(joined) == n_words and not is_valid(joined)
        # the model's path: emissions merged into the sentence first, then one decode over all its words
        merged, mask = NerTagger.sentence_emissions(WindowedEmissions(emissions), batch)
        (path,) = head.decode(merged, mask)
        assert len(path) == n_words and is_valid(path)
        assert path != [o] * n_words  # not vacuous: the strong labels are kept where they can be


def test_build_head_and_bad_options():
    assert isinstance(build_head("crf", LABELS, constrained=False), CRFHead)
    assert isinstance(build_head("softmax", LABELS), SoftmaxHead)
    with pytest.raises(ValueError, match="crf"):
        build_head("nope", LABELS)
    with pytest.raises(ValueError, match="argmax"):
        SoftmaxHead(LABELS, decode="beam")
    with pytest.raises(ValueError, match="mask"):
        CRFHead(LABELS).decode(torch.zeros(2, 3, NUM), torch.zeros(2, 3, dtype=torch.bool))
