/* A stand-in for bcryptprimitives.dll, for the Windows lane under wine only.
 *
 * Rust's standard library gets its randomness from ProcessPrng in bcryptprimitives.dll,
 * which every Windows since 10 has but wine 8 lacks: without it every binary exits at
 * start (status 53). This shim exports ProcessPrng over RtlGenRandom (advapi32's
 * SystemFunction036). It is built by mingw into the test prefix's system32 by .ci/run,
 * and never shipped: real Windows has the DLL. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
    while (length > 0) {
        ULONG chunk = length > 0x7fffffff ? 0x7fffffff : (ULONG)length;
        if (!SystemFunction036(data, chunk)) {
            return FALSE;
        }
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
