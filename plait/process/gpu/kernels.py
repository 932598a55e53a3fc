"""Raw CUDA kernels of the GPU engine, as source text compiled by CuPy's RawKernel.

match_literals: one thread per record, naive scan of each pattern over the record's bytes.
Why naive: records are short (hundreds of bytes) and patterns few, so per-thread work is
small and branch-light; thousands of records run in parallel. Each thread writes only its
own record's bit words, so no atomics are needed and the result is deterministic.
"""

MATCH_LITERALS = r"""
extern "C" __global__ void match_literals(
    const unsigned char* __restrict__ data,      // record bytes, rebased to 0
    const long long* __restrict__ offsets,       // n + 1 record boundaries into data
    const unsigned char* __restrict__ valid,     // 1 where the record is not null
    const int n,
    const unsigned char* __restrict__ pats,      // all patterns' bytes back to back
    const int* __restrict__ pat_off,             // n_pats + 1 boundaries into pats
    const int n_pats,
    const int caseless,                          // fold ASCII A-Z only, as Hyperscan does
    unsigned int* __restrict__ hits,             // n * words bit words, zeroed by the host
    const int words)
{
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= n || !valid[r]) return;
    const long long s = offsets[r];
    const long long e = offsets[r + 1];
    for (int p = 0; p < n_pats; ++p) {
        const int ps = pat_off[p];
        const int pl = pat_off[p + 1] - ps;
        bool found = false;
        for (long long i = s; !found && i + pl <= e; ++i) {
            int j = 0;
            for (; j < pl; ++j) {
                unsigned char a = data[i + j];
                unsigned char b = pats[ps + j];
                if (caseless) {
                    if (a >= 'A' && a <= 'Z') a += 32;
                    if (b >= 'A' && b <= 'Z') b += 32;
                }
                if (a != b) break;
            }
            found = (j == pl);
        }
        if (found) hits[(long long)r * words + (p >> 5)] |= (1u << (p & 31));
    }
}
"""
