"""The padded-window sums by offset classes (``nestkernel._window_sums``) against the enumeration of every
configuration (``nestkernel._group_sums_enum``, which the kernel keeps for merged siblings and unions).

Both take a loop table with roles and return the three sums of a window group; the fast path must equal the
enumeration term by term on any role assignment, padding, stride and dilation it is used for (no unions),
merged siblings (DEDUP loops of both dims at one level) included. Whole evaluations against the brute-force
oracle are in test_nest_oracle.py.
"""

from __future__ import annotations

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hwmodel import nestkernel as nk
from hwmodel.layer import Layer
from hwmodel.nestmodel import layer_params

LEVELS = 3
#: Roles the fast path is used with (RO_UNION never; RO_DEDUP only on spatial loops).
TEMPORAL_ROLES = (nk.RO_SKIP, nk.RO_FREE, nk.RO_STEP, nk.RO_RESET, nk.RO_ZERO)
SPATIAL_ROLES = TEMPORAL_ROLES + (nk.RO_DEDUP,)


@st.composite
def window_groups(draw, merged: bool = False):
    """A window group's loop table with random roles; ``merged``: P and R both unrolled (DEDUP) below level 1,
    so siblings at one offset ``p*stride + r*dilation`` merge."""
    # merged siblings need room: padding empties the siblings past the layer's edge
    size_p, size_r = draw(st.integers(8 if merged else 1, 40)), draw(st.integers(3 if merged else 1, 7))
    stride, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    lp = layer_params(Layer(K=1, C=1, P=size_p, Q=1, R=size_r, S=1, stride=stride, dilation=dilation))
    tfac = np.ones((LEVELS, 8), dtype=np.int64)
    sfac = np.ones((LEVELS, 8), dtype=np.int64)
    for d in (nk.DIM_P, nk.DIM_R):
        for lvl in range(LEVELS):
            tfac[lvl, d] = draw(st.integers(1, 6))
            sfac[lvl, d] = draw(st.sampled_from((2, 3, 4) if merged and lvl == 1 else (1, 1, 2, 3, 4)))
    order = np.tile(np.arange(8, dtype=np.int64), (LEVELS, 1))
    for lvl in range(LEVELS):
        if draw(st.booleans()):
            order[lvl, [nk.DIM_P, nk.DIM_R]] = order[lvl, [nk.DIM_R, nk.DIM_P]]
    loops = np.zeros((nk.MAX_LOOPS, nk.LO_SIZE), dtype=np.int64)
    n = nk.build_loops(tfac, sfac, order, LEVELS, loops)
    roles = np.zeros(nk.MAX_LOOPS, dtype=np.int64)
    for j in range(n):
        if merged and loops[j, nk.LO_SPATIAL] and loops[j, nk.LO_LEVEL] == 1:
            roles[j] = nk.RO_DEDUP
        else:
            roles[j] = draw(st.sampled_from(SPATIAL_ROLES if loops[j, nk.LO_SPATIAL] else TEMPORAL_ROLES))
    ea, eb = draw(st.integers(1, size_p + 3)), draw(st.integers(1, size_r + 1))
    return lp, loops, n, roles, ea, eb


@settings(max_examples=400, deadline=None)
@given(st.one_of(window_groups(), window_groups(merged=True)))
def test_window_sums_equal_the_enumeration(group):
    lp, loops, n, roles, ea, eb = group
    involved = roles[:n] != nk.RO_SKIP
    summed = involved & (roles[:n] != nk.RO_RESET) & (roles[:n] != nk.RO_ZERO)
    configs = np.prod(np.where(summed, loops[:n, nk.LO_BOUND], 1))
    assume(configs <= nk.ENUM_LIMIT)
    sums = []
    for fn in (nk._window_sums, nk._group_sums_enum):
        gsum = np.full((nk.MAX_GROUPS, 3), -1.0)
        idx = np.zeros(nk.IDX_SCRATCH, dtype=np.int64)
        fn(nk.GK_WINDOW_H, nk.DIM_P, nk.DIM_R, lp, ea, eb, loops, n, roles, idx, gsum, 0)
        sums.append(gsum[0].copy())
    assert sums[0].tolist() == sums[1].tolist()


def test_window_sums_count_a_sliding_overlap():
    """By hand: P = 5 in tiles of 2 (a temporal loop of 3, the last tile padded), R = 3 whole, stride 1: each
    step of P moves the 4-row input tile by 2 rows; the padded last tile has 1 + 3 - 1 = 3 rows."""
    lp = layer_params(Layer(K=1, C=1, P=5, Q=1, R=3, S=1))
    loops = np.zeros((nk.MAX_LOOPS, nk.LO_SIZE), dtype=np.int64)
    tfac = np.ones((2, 8), dtype=np.int64)
    tfac[:, nk.DIM_P] = 3, 2  # the tile's own loop (below it: not summed) sets the outer loop's step
    n = nk.build_loops(tfac, np.ones((2, 8), dtype=np.int64), np.tile(np.arange(8), (2, 1)), 2, loops)
    assert n == 2 and loops[0, nk.LO_STEP] == 2
    roles = np.zeros(nk.MAX_LOOPS, dtype=np.int64)
    roles[0] = nk.RO_STEP
    gsum = np.zeros((nk.MAX_GROUPS, 3))
    nk._window_sums(nk.GK_WINDOW_H, nk.DIM_P, nk.DIM_R, lp, 2, 3, loops, n, roles,
                    np.zeros(nk.IDX_SCRATCH, dtype=np.int64), gsum, 0)
    # steps to offsets 2 (tile rows 2..5, 4 rows, overlap 2 with rows 0..3) and 4 (rows 4..6, 3 rows, overlap 2)
    assert gsum[0].tolist() == [4 + 3, 2 + 2, 0]
