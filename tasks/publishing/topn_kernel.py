"""The compiled inner loop of exact top-N selection (numba, no Python per score).

`keep_best` folds a tile of scores (rows = users, columns = products) into each row's
running best-n list, kept sorted best first by (score desc, product index asc). It is
called tile after tile while the tile is still in the CPU cache, right after the matrix
product that made it, so the scores are never written to memory and read back.

Per row, the tile is read in blocks of BLOCK scores. Each block is compared with the
row's current n-th best score into a 64-bit mask (a loop the compiler turns into SIMD
instructions); only the set bits are visited, found branch-free with a de Bruijn
multiplication. Once a row's list is full its n-th best rises quickly, so nearly every
mask is empty: the selection costs a fraction of the matrix product (measured ~7 µs per
user for 19,000 products, against ~25 µs for the product).

Rules that keep it exact, whatever order the products come in:
- a score enters if it beats the current n-th best, or equals it with a lower product
  index: ties go to the lower index;
- NaN never compares, and -inf never enters a list: neither ranks;
- excluded products (per row, sorted product indices) are skipped when they would enter,
  so a list is never left short by exclusions applied afterwards.
"""

from __future__ import annotations

import numpy as np
from numba import njit, uint64

BLOCK = 64  # scores per mask (one uint64); 16 or 32 left the compiler's loop unvectorised
_DE_BRUIJN = 0x03F79D71B4CB0A89  # (lowest set bit × this) >> 58 is unique per bit
_LOW_BIT = np.zeros(64, dtype=np.uint64)  # ... and this table turns it into the bit's index
for _bit in range(64):
    _LOW_BIT[((1 << _bit) * _DE_BRUIJN % 2**64) >> 58] = _bit
_DE_BRUIJN = np.uint64(_DE_BRUIJN)


@njit(nogil=True, cache=True, inline="always")
def _insert(values, items, size, n, value, item):
    """Insert (value, item) into the row's sorted best list, dropping the last entry if
    the list is full; return its new length."""
    pos = size if size < n else n - 1
    while pos > 0 and values[pos - 1] < value:
        values[pos] = values[pos - 1]
        items[pos] = items[pos - 1]
        pos -= 1
    while pos > 0 and values[pos - 1] == value and items[pos - 1] > item:
        values[pos] = values[pos - 1]
        items[pos] = items[pos - 1]
        pos -= 1
    values[pos] = value
    items[pos] = item
    return min(size + 1, n)


@njit(nogil=True, cache=True, inline="always")
def _excluded(excluded, start, stop, item):
    """Whether `item` is among the sorted excluded[start:stop]."""
    for e in range(start, stop):
        if excluded[e] >= item:
            return excluded[e] == item
    return False


@njit(nogil=True, cache=True)
def keep_best(tile, item_of, exclude_ptr, exclude_items, best_values, best_items, filled):
    """Fold tile (rows, columns) float32 into each row's best list (in place).

    item_of: product index of each tile column (any order). exclude_ptr/exclude_items: CSR
    of each row's excluded product indices (sorted). best_values/best_items: (rows, n),
    best first; filled: how many entries of each row are set (they start at 0).
    """
    rows, width = tile.shape
    n = best_values.shape[1]
    if n == 0:
        return
    blocks = width // BLOCK
    for r in range(rows):
        row = tile[r]
        values = best_values[r]
        items = best_items[r]
        size = filled[r]
        bar = values[n - 1] if size == n else np.float32(-np.inf)
        start, stop = exclude_ptr[r], exclude_ptr[r + 1]
        for block in range(uint64(0), uint64(blocks + 1)):
            begin = block * uint64(BLOCK)
            if block < blocks:
                mask = uint64(0)
                for k in range(uint64(BLOCK)):
                    mask |= uint64(row[begin + k] >= bar) << k
            else:
                mask = uint64(0)
                for k in range(uint64(width) - begin):
                    mask |= uint64(1) << k
            while mask:
                low = mask & (~mask + uint64(1))
                mask ^= low
                j = begin + _LOW_BIT[(low * _DE_BRUIJN) >> uint64(58)]
                value = row[j]
                if not value >= bar:
                    continue
                item = item_of[j]
                if not (value > bar or (size == n and item < items[n - 1])):
                    continue  # equal to the n-th best: only a lower product index enters
                if stop > start and _excluded(exclude_items, start, stop, item):
                    continue
                size = _insert(values, items, size, n, value, item)
                if size == n:
                    bar = values[n - 1]
        filled[r] = size
