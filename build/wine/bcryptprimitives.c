/* bcryptprimitives.dll for Wine 8.0, which lacks it (Wine added it in 8.13): ProcessPrng, the
 * function through which Rust's standard library (cryptography's _rust.pyd) asks Windows for
 * random bytes, answered by RtlGenRandom (advapi32's SystemFunction036). Installed only into the
 * test prefix's system32, as Windows itself ships it: never bundled into SMail.exe. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T size)
{
    while (size > 0) {
        ULONG chunk = size > 0x10000000 ? 0x10000000 : (ULONG)size;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        size -= chunk;
    }
    return TRUE;
}

BOOL WINAPI DllMain(HINSTANCE instance, DWORD reason, LPVOID reserved)
{
    (void)instance; (void)reason; (void)reserved;
    return TRUE;
}
