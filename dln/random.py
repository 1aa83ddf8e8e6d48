"""Counter-based random streams: run `b`'s draws depend only on its seed, the step and a stream id.

A draw is a pure function of `(seed, step, stream, j)` (`j` the index of the
number within the draw), so a run's numbers do not depend on the other runs of
its batch, on how many are still live, or on the order of the calls: row `b` of
a batched run equals the single run with the same seed, exactly.

Construction (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2, 3",
with the SplitMix64 finalizer of Steele, Lea & Flood 2014 as the mixing function):

    key     = mix(mix(mix(seed ^ K0) ^ step) ^ stream)          one per run
    x_j     = mix(key + (j + 1) * PHI)                          uint64, j = 0, 1, ...
    U_j     = ((x_j >> 11) + 1/2) / 2^53                        in (0, 1), 53 random bits
    Z_j     = sqrt(-2 log U_j) cos(2 pi U_(size+j))              N(0, 1) (Box-Muller), j < size

`mix` is the SplitMix64 finalizer (two xor-shift-multiply rounds, a bijection of
64-bit words with full avalanche); `PHI` is the golden-ratio increment of
SplitMix64. All arithmetic is vectorized uint64 numpy arithmetic (wrapping).
"""
import numpy as np

#: SplitMix64 increment (2^64 / golden ratio) and a key offset that keeps seed 0 away from the zero word
PHI = np.uint64(0x9E3779B97F4A7C15)
K0 = np.uint64(0xD1B54A32D192ED03)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)

#: stream ids of the algorithms that draw (distinct streams never share numbers)
STREAMS = {"batch": 1, "label_noise": 2}


def mix(x):
    """The SplitMix64 finalizer, elementwise on uint64 arrays (a bijection)."""
    x = np.asarray(x, np.uint64)
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def keys(seed, step, stream):
    """One 64-bit key per run, shape (B,), from the seeds (B,), the step (scalar or (B,)) and a stream id."""
    s = np.asarray(seed).astype(np.uint64)
    k = np.asarray(step).astype(np.uint64)
    return mix(mix(mix(s ^ K0) ^ k) ^ np.uint64(stream))


def uniform(seed, step, stream, size):
    """Uniforms in (0, 1), shape (B, size): row `b` depends on `(seed[b], step, stream)` only."""
    j = np.arange(1, size + 1, dtype=np.uint64) * PHI
    x = mix(keys(seed, step, stream)[:, None] + j[None, :])
    return ((x >> np.uint64(11)).astype(float) + 0.5) * 2.0**-53


def normal(seed, step, stream, size):
    """Standard normals, shape (B, size), by Box-Muller on `uniform(..., 2 size)` (one cosine per pair)."""
    U = uniform(seed, step, stream, 2 * size)
    return np.sqrt(-2 * np.log(U[:, :size])) * np.cos(2 * np.pi * U[:, size:])


def permutation(seed, step, stream, n):
    """A uniformly random permutation of `range(n)` per run, shape (B, n): the argsort of `n` uniforms
    (ties have probability ~ n^2 2^-53 and are broken by position, so the result is deterministic)."""
    return np.argsort(uniform(seed, step, stream, n), axis=1, kind="stable")
